//go:build linux || darwin || freebsd

package memcall

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

func unixProt(p Prot) int {
	switch p {
	case ReadOnly:
		return unix.PROT_READ
	case ReadWrite:
		return unix.PROT_READ | unix.PROT_WRITE
	}
	return unix.PROT_NONE
}

// Map returns n bytes (a multiple of PageSize) of private anonymous memory
// with protection p. On FreeBSD the mapping is also MAP_NOCORE.
func Map(n int, p Prot) ([]byte, error) {
	ptr, err := unix.MmapPtr(-1, 0, nil, uintptr(n), unixProt(p), unix.MAP_PRIVATE|unix.MAP_ANON|mapFlags)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(ptr), n), nil
}

// Unmap releases a mapping returned by Map. b must be the whole mapping.
func Unmap(b []byte) error {
	return unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b)))
}

// Protect sets the protection of the pages that b spans.
func Protect(b []byte, p Prot) error { return unix.Mprotect(b, unixProt(p)) }

// Lock locks the pages of b in RAM (mlock).
func Lock(b []byte) error { return unix.Mlock(b) }

// Unlock unlocks the pages of b (munlock).
func Unlock(b []byte) error { return unix.Munlock(b) }

// IsResourceError reports whether err from Map, Protect or Lock means a
// resource limit was hit (ENOMEM, EAGAIN, or EPERM from mlock when
// RLIMIT_MEMLOCK is 0), rather than a bad argument.
func IsResourceError(err error) bool {
	return err == unix.ENOMEM || err == unix.EAGAIN || err == unix.EPERM
}

// IsQuotaError reports whether err is a lock-quota error that only the
// lock limit can explain (EPERM from mlock with RLIMIT_MEMLOCK 0).
func IsQuotaError(err error) bool { return err == unix.EPERM }
