package memcall

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/windows"
)

func winProt(p Prot) uint32 {
	switch p {
	case ReadOnly:
		return windows.PAGE_READONLY
	case ReadWrite:
		return windows.PAGE_READWRITE
	}
	return windows.PAGE_NOACCESS
}

// Map returns n bytes of committed memory with protection p (VirtualAlloc).
func Map(n int, p Prot) ([]byte, error) {
	addr, err := windows.VirtualAlloc(0, uintptr(n), windows.MEM_COMMIT|windows.MEM_RESERVE, winProt(p))
	if err != nil {
		return nil, err
	}
	// addr is memory the Go runtime does not manage; reinterpret it
	// without a uintptr-to-pointer conversion that vet would flag.
	ptr := *(*unsafe.Pointer)(unsafe.Pointer(&addr))
	return unsafe.Slice((*byte)(ptr), n), nil
}

func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// Unmap releases a mapping returned by Map (VirtualFree MEM_RELEASE).
func Unmap(b []byte) error { return windows.VirtualFree(addrOf(b), 0, windows.MEM_RELEASE) }

// Protect sets the protection of the pages that b spans (VirtualProtect).
func Protect(b []byte, p Prot) error {
	var old uint32
	return windows.VirtualProtect(addrOf(b), uintptr(len(b)), winProt(p), &old)
}

// Lock locks the pages of b in the working set (VirtualLock). It fails
// with ERROR_WORKING_SET_QUOTA when the working-set minimum is too small.
func Lock(b []byte) error { return windows.VirtualLock(addrOf(b), uintptr(len(b))) }

// Unlock unlocks the pages of b (VirtualUnlock).
func Unlock(b []byte) error { return windows.VirtualUnlock(addrOf(b), uintptr(len(b))) }

// DontDump does nothing: Windows has no per-page exclusion from crash dumps.
func DontDump(b []byte) error { return nil }

// WipeOnFork does nothing: Windows has no fork.
func WipeOnFork(b []byte) error { return nil }

// HasDumpExclusion reports whether DontDump really keeps pages out of core
// dumps on this platform.
const HasDumpExclusion = false

// ReadLimits reports the working-set limits as the lock limits.
func ReadLimits() Limits {
	l := Limits{MemlockSoft: -1, MemlockHard: -1, Locked: -1, MapCount: -1, MaxMapCount: -1}
	var lo, hi uintptr
	var flags uint32
	windows.GetProcessWorkingSetSizeEx(windows.CurrentProcess(), &lo, &hi, &flags)
	if lo != 0 {
		l.MemlockSoft = int64(lo)
		l.MemlockHard = int64(hi)
	}
	return l
}

// IsQuotaError reports whether err is VirtualLock's working-set quota error.
func IsQuotaError(err error) bool {
	return errors.Is(err, windows.ERROR_WORKING_SET_QUOTA)
}

// DisableCoreDumps is not supported on Windows.
func DisableCoreDumps() error { return errors.ErrUnsupported }

// IsResourceError reports whether err from Map, Protect or Lock means a
// resource limit was hit rather than a bad argument.
func IsResourceError(err error) bool {
	return IsQuotaError(err) || errors.Is(err, windows.ERROR_NOT_ENOUGH_MEMORY) ||
		errors.Is(err, windows.ERROR_COMMITMENT_LIMIT)
}
