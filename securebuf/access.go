package securebuf

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// AccessMode is how a Factory's secrets are kept unreadable at rest and made
// readable inside WithBytes. The package documentation compares the modes
// under "Access modes".
type AccessMode int

const (
	// AccessMprotect, the default, keeps a secret's data pages no-access
	// at rest and changes their page protection (mprotect; VirtualProtect
	// on Windows) when the first callback enters and when the last one
	// leaves: two system calls per WithBytes, and while any callback runs
	// the pages are readable by every thread of the process.
	AccessMprotect AccessMode = iota
	// AccessPKey tags a secret's data pages with the process's x86 memory
	// protection key, and every thread's PKRU register denies that key at
	// rest. WithBytes locks the goroutine to its thread and grants that
	// one thread read access with the WRPKRU instruction: no system call,
	// and no other thread can read the pages meanwhile. linux/amd64 only,
	// on CPUs with PKU and kernels that enable it; elsewhere NewFactory
	// fails with an error matching ErrNoPKey and errors.ErrUnsupported.
	AccessPKey
	// AccessAuto is AccessPKey where it is available and AccessMprotect
	// otherwise. Factory.AccessMode tells which one was chosen.
	AccessAuto
)

// String returns "mprotect", "pkey" or "auto", the names ParseAccessMode
// accepts.
func (m AccessMode) String() string {
	switch m {
	case AccessMprotect:
		return "mprotect"
	case AccessPKey:
		return "pkey"
	case AccessAuto:
		return "auto"
	}
	return fmt.Sprintf("AccessMode(%d)", int(m))
}

// ParseAccessMode parses "mprotect", "pkey" or "auto" (any case).
func ParseAccessMode(s string) (AccessMode, error) {
	for _, m := range []AccessMode{AccessMprotect, AccessPKey, AccessAuto} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, fmt.Errorf("securebuf: unknown access mode %q (want mprotect, pkey or auto)", s)
}

// WithAccessMode chooses how secrets are protected at rest and opened in
// WithBytes (default AccessMprotect). With AccessPKey, NewFactory fails with
// an error matching ErrNoPKey (and errors.ErrUnsupported) when the CPU,
// kernel or platform lacks memory protection keys; AccessAuto falls back to
// AccessMprotect instead. The mode applies to secrets; scratch slots are
// always read-write.
func WithAccessMode(m AccessMode) Option {
	return func(o *options) error {
		switch m {
		case AccessMprotect, AccessPKey, AccessAuto:
			o.access = m
			return nil
		}
		return fmt.Errorf("securebuf: WithAccessMode(%d): want AccessMprotect, AccessPKey or AccessAuto", int(m))
	}
}

// AccessMode returns the mode the factory's secrets use: AccessMprotect or
// AccessPKey, never AccessAuto.
func (f *Factory) AccessMode() AccessMode {
	if f.pkey != noPKey {
		return AccessPKey
	}
	return AccessMprotect
}

// ErrNoPKey is matched by the error of NewFactory(WithAccessMode(AccessPKey))
// and of PKeyAvailable when memory protection keys cannot be used. Those
// errors also match errors.ErrUnsupported, and the system error when a
// system call failed.
var ErrNoPKey = errors.New("securebuf: memory protection keys are not available")

type noPKeyError struct {
	reason string
	err    error // the system error, if any
}

func (e *noPKeyError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%v: %s: %v", ErrNoPKey, e.reason, e.err)
	}
	return fmt.Sprintf("%v: %s", ErrNoPKey, e.reason)
}

func (e *noPKeyError) Is(target error) bool {
	return target == ErrNoPKey || target == errors.ErrUnsupported
}

func (e *noPKeyError) Unwrap() error { return e.err }

// PKeyAvailable reports whether AccessPKey can be used in this process: nil,
// or an error matching ErrNoPKey that says why not. The first call (or the
// first Factory that wants a key) allocates the process's one protection
// key, which is kept for the life of the process; later calls return the
// same answer.
func PKeyAvailable() error {
	_, err := processPKey()
	return err
}

// noPKey is Factory.pkey in AccessMprotect mode.
const noPKey = -1

var processKey struct {
	once sync.Once
	key  int
	err  error
}

// processPKey returns the process's protection key, allocating it on the
// first call. Every PKey-mode factory shares it: x86 has only 15 keys to
// give out, and one key is enough to deny every secret at rest.
func processPKey() (int, error) {
	processKey.once.Do(func() { processKey.key, processKey.err = allocPKey() })
	return processKey.key, processKey.err
}

func allocPKey() (int, error) {
	if !memcall.HasPKey {
		return noPKey, &noPKeyError{reason: fmt.Sprintf("they are supported on linux/amd64 only, not %s/%s", runtime.GOOS, runtime.GOARCH)}
	}
	if !memcall.CPUHasOSPKE() {
		if memcall.CPUHasPKU() {
			return noPKey, &noPKeyError{reason: "the CPU has PKU but the kernel did not enable it (no ospke in /proc/cpuinfo; booted with nopku?)"}
		}
		return noPKey, &noPKeyError{reason: "the CPU has no PKU (no pku in /proc/cpuinfo)"}
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := memcall.ReadPKRU()
	k, err := memcall.PKeyAlloc()
	if err != nil {
		return noPKey, &noPKeyError{reason: "pkey_alloc", err: err}
	}
	// Threads inherit PKRU from the thread that creates them, all the way
	// back to the kernel's init_pkru, which denies every key but 0. If this
	// thread could already access the new key, so may the others, and
	// pages tagged with it would not be protected at rest.
	if !memcall.PKRUDeniesAccess(before, k) {
		_ = memcall.PKeyFree(k)
		return noPKey, &noPKeyError{reason: fmt.Sprintf("threads start with access to the new key %d (PKRU %#08x): the kernel's init_pkru or other code in the process grants it", k, before)}
	}
	return k, nil
}

// pkeyOpen gives the calling thread read access (write: read-write) to key
// and returns the PKRU it had. The caller holds runtime.LockOSThread until
// it has called pkeyRestore.
func pkeyOpen(key int, write bool) uint32 {
	old := memcall.ReadPKRU()
	v := memcall.PKRURead(old, key)
	if write {
		v = memcall.PKRUWrite(old, key)
	}
	if v != old {
		memcall.WritePKRU(v)
	}
	return old
}

// pkeyRestore puts back key's bits of old, the value pkeyOpen returned,
// leaving the bits of other keys as they are now.
func pkeyRestore(key int, old uint32) {
	cur := memcall.ReadPKRU()
	m := memcall.PKRUMask(key)
	if v := cur&^m | old&m; v != cur {
		memcall.WritePKRU(v)
	}
}

// withPKeyAccess runs fn with read (write: read-write) access to key granted
// to the calling thread only, and restores the thread's PKRU and unlocks it
// when fn returns or panics.
func withPKeyAccess(key int, write bool, fn func()) {
	runtime.LockOSThread()
	old := pkeyOpen(key, write)
	defer func() {
		pkeyRestore(key, old)
		runtime.UnlockOSThread()
	}()
	fn()
}
