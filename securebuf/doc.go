// Package securebuf keeps secrets (encryption keys) in protected memory.
//
// # What a Secret is
//
// A Secret lives in memory mapped with mmap (VirtualAlloc on Windows),
// never in the Go heap, so the garbage collector never copies it and Close
// can wipe the only copy. Its pages are
//
//   - excluded from core dumps (MADV_DONTDUMP, set before any byte is
//     written; a failure is an error, ErrNoDontDump, because a page that is
//     merely no-access still lands in a dump),
//   - wiped in a forked child (MADV_WIPEONFORK, best effort),
//   - locked in RAM (mlock; a failure is ErrLockLimit unless the Factory is
//     built WithRequireLock(false)),
//   - unreadable at rest and read-only while a WithBytes callback runs,
//     also closed again when the callback fails or panics: by default
//     through the page protection (a reader count makes the first reader
//     open the pages and the last reader close them), or, with
//     WithAccessMode(AccessPKey), through an x86 memory protection key
//     opened for the calling thread alone (see "Access modes"),
//   - surrounded by two unlocked no-access guard pages, with the data
//     right-aligned against the trailing one so an overrun faults at once,
//     and a random canary in front of the data that Close checks (ErrCanary).
//
// Guard pages and the canary can be turned off per Factory (WithGuardPages,
// WithCanary) when thousands of secrets must fit under vm.max_map_count.
//
// # Contracts
//
//   - Factory.New copies its input in constant time and then wipes the
//     input; on error the input is left untouched. CreateRandom reads
//     crypto/rand straight into the locked page.
//   - The slice given to a WithBytes callback is valid only during the call
//     and must not be kept; writing to it faults. In AccessPKey mode only
//     the goroutine that called WithBytes may read it: hand the bytes to
//     no other goroutine.
//   - Every method of a Secret and a Factory is safe for concurrent use.
//     Close waits for running callbacks, then wipes and unmaps; it is
//     idempotent and every call returns the first result. After Close every
//     method returns an error matching ErrClosed. Close must not be called
//     from inside a callback of the same secret (it would wait for itself).
//   - A Secret is owned by whoever created it, who must Close it. A Secret
//     dropped without Close is closed by the garbage collector, which counts
//     it (FinalizedUnclosed) and tells the Logger with the stack that
//     created it: a leak detector, not a way to manage secrets.
//   - Failures are errors, never panics; a failure never touches other
//     secrets, never purges anything, leaves no mapping behind, and no
//     package lock is held while a metrics, Logger or user callback runs, so
//     those may call back into the package (even Purge) without deadlock.
//   - ErrLockLimit and ErrMapLimit are returned as *LimitError, whose
//     message gives RLIMIT_MEMLOCK (soft and hard), the bytes locked now,
//     the request and how to raise the limit, or the mapping count and
//     vm.max_map_count. Preflight checks the limits at start-up.
//   - Formatting a Secret or a Scratch (String, GoString, every fmt verb)
//     prints a redaction.
//   - Importing the package changes nothing in the process: it sets no
//     rlimit and installs no signal handler. DisableCoreDumps, Purge and
//     PurgeOnSignal do those things when called.
//
// # Scratch slots
//
// Creating and closing a Secret costs eight system calls (tens of
// microseconds on a 2-vCPU VM; see docs/PERFORMANCE.md), far more than
// encrypting a small record. Keys that live for one record, such as
// Asherah's per-record data keys, belong in a Scratch slot instead: a
// fixed 64-byte slot carved from pages that were mapped, locked and excluded
// from core dumps once, handed out from a free list and wiped on Release.
// Slots stay read-write (no no-access state at rest, no guard between
// slots), which is the price of their near-heap cost. The arena is bounded
// (WithScratchPages) and fails with ErrScratchFull rather than grow without
// limit. Factory.WithScratch is the allocation-free, scoped form.
//
// # Access modes
//
// AccessMprotect (the default) and AccessPKey differ only in how a
// secret's data pages are kept unreadable at rest and opened in WithBytes;
// mlock, MADV_DONTDUMP, MADV_WIPEONFORK, the guard pages, the canary, the
// wipe on Close and Close waiting for readers are the same in both.
// AccessAuto picks AccessPKey where it works; Factory.AccessMode says which
// mode a factory uses and PKeyAvailable why AccessPKey cannot be used.
//
// AccessMprotect: the data pages are PROT_NONE at rest. The first reader
// makes them PROT_READ and the last one PROT_NONE again: two mprotect
// calls per WithBytes, each a TLB shootdown on every CPU the process runs
// on (about 2.4 µs each on a 2-vCPU VM; docs/PERFORMANCE.md). While any
// callback runs, every thread of the process can read the pages.
//
// AccessPKey (linux/amd64 with PKU and OSPKE): the process allocates one
// protection key (pkey_alloc, on first use, kept for the life of the
// process) with access disabled. A secret's data pages are made read-write
// in the page tables and tagged with the key (pkey_mprotect) once, when the
// secret is created, before a byte is written; they are mlocked with the
// key opened for the allocating thread (mlock refuses pages the calling
// thread may not write). At rest every thread's PKRU register denies the
// key, so any read or write by any thread faults (SIGSEGV with
// SEGV_PKUERR; "unexpected fault address" and exit status 2, or a panic
// under debug.SetPanicOnFault). WithBytes calls runtime.LockOSThread,
// sets the key to read-only in this thread's PKRU (WRPKRU, one
// unprivileged instruction: no system call, no TLB shootdown), runs the
// callback, restores the key's previous bits (so nested callbacks keep
// their access) and calls runtime.UnlockOSThread, also when the callback
// fails or panics. New, CreateRandom and Close's wipe open the key for
// writing on their own thread only. Guard pages are PROT_NONE and keep key
// 0.
//
// Why no other goroutine or thread gains access, in terms of the Go 1.26
// runtime (line numbers of src/runtime/proc.go in Go 1.26.8):
//
//   - PKRU belongs to one OS thread, and a locked goroutine runs on no
//     other thread, while no other goroutine runs on its thread: while it
//     blocks, its M sleeps in stoplockedm (proc.go:3250) and a P is handed
//     to another M. The key is closed again before UnlockOSThread, so a
//     thread that goes back to serving other goroutines has it closed.
//   - The kernel copies PKRU into a thread it clones. Go creates threads
//     in newm (proc.go:2857); when the calling M is locked (lockedExt != 0,
//     proc.go:2873) newm does not clone it but hands the creation to the
//     template thread (templateThread, proc.go:2963), which was started by
//     the first LockOSThread "while we're in a known-good state"
//     (proc.go:5623-5629), that is before any key was opened, since
//     WithBytes opens the key only after LockOSThread returns. So a thread
//     the runtime creates while a callback is open (for example to run a
//     goroutine the callback starts) starts with the key denied. The
//     template thread itself never opens a key. Threads that C code
//     creates itself (through cgo, from inside a callback) are clones of
//     the calling thread and do inherit the open key: do not call C code
//     that starts threads from inside a callback.
//   - Signal handlers (the runtime's preemption signal among them) run with
//     the kernel's init PKRU, which denies the key, and sigreturn restores
//     the interrupted thread's PKRU from the signal frame, so a callback
//     keeps its access across signals and asynchronous preemption.
//   - PKeyAvailable refuses the mode when the thread that allocates the key
//     could already access it before pkey_alloc (a non-default init_pkru,
//     or other code opening unallocated keys): threads inherit PKRU, so the
//     others could too.
//
// Tests check each point on the running machine: reads from other locked
// threads during a callback fault, threads created during a callback are
// denied, PKRU survives hundreds of signals inside a callback, and after a
// concurrent stress run every thread denies the key.
//
// Security compared. In AccessPKey mode, access during a callback is
// granted to one thread, where AccessMprotect opens the pages to every
// thread while any reader is inside; that is stronger. It is coarser in
// one way: there is one key per process (x86 has 15), so a thread inside
// any callback can read every AccessPKey secret of the process, not only
// the one it opened. At rest, AccessPKey pages are denied to every thread
// by the hardware, but /proc/self/smaps shows them rw-p with a
// "ProtectionKey:" line instead of ---p; code that writes PKRU itself
// (WRPKRU is unprivileged) can open them, as code that calls mprotect can
// open PROT_NONE pages. Kernel paths that ignore protections, ptrace and
// /proc/pid/mem (gdb, gcore), read the pages in either mode: only
// MADV_DONTDUMP keeps them out of core dumps, in both modes. System calls
// that write into a secret from the kernel honour the key of the calling
// thread.
//
// # Threat model: what this protects and what it does not
//
// Protected: the key bytes at rest in this process's memory against core
// dumps and gcore (Linux, FreeBSD), swap (when locked), forked children
// (Linux), stray reads through dangling or overrunning slices (no-access
// pages and guard pages fault instead of leaking), accidental logging
// (redacted formatting), and lingering copies after Close (wiped).
//
// Not protected:
//
//   - Anything derived from the key outside this package. crypto/aes and
//     crypto/cipher build their key schedules and GCM tables on the Go
//     heap; a cipher.AEAD made inside WithBytes holds expanded key material
//     that the GC may copy and never wipes. Keep such objects short-lived.
//     Go 1.26's runtime/secret (GOEXPERIMENT=runtimesecret, linux/amd64 and
//     arm64 only) can erase the registers, stack and heap temporaries of
//     code run inside secret.Do; it is an optional helper for the code that
//     uses a key, and it does not lock, protect or hide memory that lives
//     across calls.
//   - Bytes a caller copies out (NewReader, WithBytesFunc results, copies
//     made inside callbacks).
//   - A reader inside WithBytes: the pages are readable then, by any
//     goroutine in AccessMprotect mode (by the calling goroutine only, and
//     every AccessPKey secret of the process to it, in AccessPKey mode),
//     and in every mode by anyone who can read this process's memory
//     (ptrace, /proc/pid/mem as the same user or root), at rest too for
//     AccessPKey pages. DisableCoreDumps on Linux also marks the process
//     not dumpable, which stops same-user ptrace.
//   - Scratch slots are always readable and writable while mapped.
//   - macOS and Windows have no per-page exclusion from crash dumps; there
//     only DisableCoreDumps (macOS) or the system's dump settings help.
//   - Hibernation images, a hostile kernel or hypervisor, and side channels
//     other than comparison timing (Equal and EqualBytes are constant time
//     for equal lengths).
//
// # Platforms
//
// Linux has everything above; AccessPKey needs linux/amd64. macOS and
// FreeBSD use mmap, mlock and mprotect (FreeBSD maps with MAP_NOCORE and
// MADV_NOCORE; macOS has no dump exclusion and no wipe-on-fork). Windows
// uses VirtualAlloc, VirtualLock (limited by the working-set quota; raise it
// with SetProcessWorkingSetSize) and VirtualProtect. On every platform but
// linux/amd64, AccessAuto is AccessMprotect and AccessPKey fails with
// ErrNoPKey.
package securebuf
