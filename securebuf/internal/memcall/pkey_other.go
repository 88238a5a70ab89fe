//go:build !(linux && amd64)

package memcall

import "errors"

// HasPKey reports whether this build can use memory protection keys
// (linux/amd64 only).
const HasPKey = false

// CPUHasPKU is false where HasPKey is false.
func CPUHasPKU() bool { return false }

// CPUHasOSPKE is false where HasPKey is false.
func CPUHasOSPKE() bool { return false }

// ReadPKRU must not be called where HasPKey is false.
func ReadPKRU() uint32 { panic("memcall: ReadPKRU without protection-key support") }

// WritePKRU must not be called where HasPKey is false.
func WritePKRU(uint32) { panic("memcall: WritePKRU without protection-key support") }

// PKeyAlloc fails with errors.ErrUnsupported.
func PKeyAlloc() (int, error) { return -1, errors.ErrUnsupported }

// PKeyFree fails with errors.ErrUnsupported.
func PKeyFree(int) error { return errors.ErrUnsupported }

// PKeyProtect fails with errors.ErrUnsupported.
func PKeyProtect([]byte, Prot, int) error { return errors.ErrUnsupported }
