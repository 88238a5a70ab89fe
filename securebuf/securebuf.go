// API contract of securebuf (written first so that envelope and stream can
// be built against it; the package documentation is in doc.go and the
// implementation in the other files).

package securebuf

import (
	"errors"
	"io"
)

// Secret is a secret held in protected memory. Its bytes are reachable only
// inside a callback; the slice handed to the callback must not be retained.
//
// All methods are safe to call concurrently. Close waits for callbacks that
// are running to return.
type Secret interface {
	// WithBytes calls action with a read-only view of the secret. The
	// view is valid only until action returns; writing to it faults. The
	// secret is readable while a callback runs and unreadable again after
	// it returns, errors or panics: in AccessMprotect mode by every thread
	// while any callback of this secret runs; in AccessPKey mode by the
	// calling goroutine only. It returns action's error, or an error
	// matching ErrClosed or ErrProtect. Calling Close of the same secret
	// from inside action deadlocks.
	WithBytes(action func([]byte) error) error
	// WithBytesFunc is WithBytes for an action that returns a result.
	WithBytesFunc(action func([]byte) ([]byte, error)) ([]byte, error)
	// NewReader returns a reader over a copy-out of the secret's bytes.
	// The bytes it copies are outside protected memory: wipe them.
	NewReader() io.Reader
	// Len is the secret's length in bytes; it does not change on Close.
	Len() int
	// IsClosed reports whether Close (or Purge) has been called.
	IsClosed() bool
	// Close waits for running callbacks, checks the canary, wipes and
	// frees the secret. It is idempotent: every call returns the first
	// call's result (nil, or an error matching ErrCanary or ErrProtect;
	// the memory is released either way).
	Close() error
}

// Errors returned by this package. Every method of a closed Secret returns
// an error e with errors.Is(e, ErrClosed).
var (
	ErrClosed      = errors.New("securebuf: secret is closed")
	ErrInvalidSize = errors.New("securebuf: invalid secret size")
	ErrLockLimit   = errors.New("securebuf: locked-memory limit reached")
	ErrMapLimit    = errors.New("securebuf: memory-map limit reached")
	ErrNoDontDump  = errors.New("securebuf: cannot exclude memory from core dumps")
	ErrProtect     = errors.New("securebuf: cannot change memory protection")
	ErrCanary      = errors.New("securebuf: canary mismatch (buffer overflow)")
)
