package memcall

// Memory protection keys (x86 MPK/PKU): a page carries one of 16 keys in
// its page-table entry, and each thread's PKRU register holds two bits per
// key that decide whether that thread may read and write pages with the
// key, on top of the page protection. Changing PKRU is one unprivileged
// instruction (WRPKRU), with no system call and no TLB shootdown.
//
// PKRU bits of key k: bit 2k is AD (access disable), bit 2k+1 is WD (write
// disable).

// PKRUMask returns the two PKRU bits of key (AD and WD).
func PKRUMask(key int) uint32 { return 3 << (2 * uint(key)) }

// PKRUDenied is the PKRU value v with every access to key disabled.
func PKRUDenied(v uint32, key int) uint32 { return v&^PKRUMask(key) | 1<<(2*uint(key)) }

// PKRURead is the PKRU value v with key readable and not writable.
func PKRURead(v uint32, key int) uint32 { return v&^PKRUMask(key) | 2<<(2*uint(key)) }

// PKRUWrite is the PKRU value v with key readable and writable.
func PKRUWrite(v uint32, key int) uint32 { return v &^ PKRUMask(key) }

// PKRUDeniesAccess reports whether v disables every access to key.
func PKRUDeniesAccess(v uint32, key int) bool { return v&(1<<(2*uint(key))) != 0 }
