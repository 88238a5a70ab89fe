package memcall

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// HasPKey reports whether this build can use memory protection keys
// (linux/amd64). Whether the CPU and kernel can is CPUHasOSPKE's and
// PKeyAlloc's business.
const HasPKey = true

const pkeyDisableAccess = 0x1 // PKEY_DISABLE_ACCESS

// cpuidMaxLeaf returns EAX of CPUID leaf 0, the highest standard leaf.
func cpuidMaxLeaf() uint32

// cpuid7ECX returns ECX of CPUID leaf 7, subleaf 0.
func cpuid7ECX() uint32

// rdpkru and wrpkru are the RDPKRU and WRPKRU instructions
// (pkey_linux_amd64.s). They are valid only when CR4.PKE is set, which
// CPUHasOSPKE reports.
func rdpkru() uint32
func wrpkru(v uint32)

// CPUHasPKU reports whether the CPU implements protection keys (CPUID.7.0:
// ECX bit 3), whether or not the kernel enabled them.
func CPUHasPKU() bool { return cpuidMaxLeaf() >= 7 && cpuid7ECX()&(1<<3) != 0 }

// CPUHasOSPKE reports whether the kernel enabled protection keys (CPUID.7.0:
// ECX bit 4, OSPKE, a copy of CR4.PKE). Only then are ReadPKRU and
// WritePKRU legal; on any other CPU they raise #UD.
func CPUHasOSPKE() bool { return cpuidMaxLeaf() >= 7 && cpuid7ECX()&(1<<4) != 0 }

// ReadPKRU returns the calling thread's PKRU register (RDPKRU). The caller
// must have checked CPUHasOSPKE and should hold runtime.LockOSThread, since
// the value belongs to one thread.
func ReadPKRU() uint32 { return rdpkru() }

// WritePKRU sets the calling thread's PKRU register (WRPKRU). The same
// conditions as for ReadPKRU apply.
func WritePKRU(v uint32) { wrpkru(v) }

// PKeyAlloc allocates a protection key with every access disabled for the
// calling thread (pkey_alloc(0, PKEY_DISABLE_ACCESS)).
func PKeyAlloc() (int, error) {
	k, _, errno := unix.RawSyscall(unix.SYS_PKEY_ALLOC, 0, pkeyDisableAccess, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(k), nil
}

// PKeyFree releases a key from PKeyAlloc (pkey_free).
func PKeyFree(key int) error {
	if _, _, errno := unix.RawSyscall(unix.SYS_PKEY_FREE, uintptr(key), 0, 0); errno != 0 {
		return errno
	}
	return nil
}

// PKeyProtect sets the protection of the pages that b spans to p and tags
// them with key (pkey_mprotect). Tag pages only after they are locked and
// faulted in: mlock of a page whose key the calling thread may not access
// fails with ENOMEM.
func PKeyProtect(b []byte, p Prot, key int) error {
	_, _, errno := unix.Syscall6(unix.SYS_PKEY_MPROTECT, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		uintptr(unixProt(p)), uintptr(key), 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
