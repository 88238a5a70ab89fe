package securebuf

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// state is a secret's memory and its protection state machine. It never
// refers to its handle, so that a handle dropped without Close becomes
// unreachable and its cleanup can close the state.
type state struct {
	f    *Factory
	reg  region
	data []byte // the secret: the last n bytes of reg.inner
	n    int

	mu       sync.Mutex
	cond     sync.Cond // signalled when readers reaches 0 or the wipe is done
	readers  int       // callbacks running; pages are read-only while > 0
	closing  bool      // no new readers; the wipe happens when readers is 0
	done     bool      // wiped and unmapped
	closeErr error     // result of the wipe, returned by every Close
	isClosed atomic.Bool

	stack      []byte // creation stack, kept only when a Logger is set
	prev, next *state // registry links, guarded by registry.mu
}

// handle is the Secret given to users. The state outlives it only until the
// cleanup registered on the handle closes it.
type handle struct {
	st      *state
	cleanup runtime.Cleanup
}

var (
	_ Secret        = (*handle)(nil)
	_ fmt.Formatter = (*handle)(nil)
	_ fmt.Stringer  = (*handle)(nil)
)

// seal makes a filled state unreadable at rest and registers it: in
// AccessMprotect mode the data pages become no-access; in AccessPKey mode
// they are tagged already and there is nothing to do. On error the state
// is wiped and unmapped.
func (s *state) seal() error {
	f := s.f
	if f.pkey == noPKey {
		if err := f.mem.Protect(s.reg.inner, memcall.NoAccess); err != nil {
			clear(s.reg.inner)
			_ = f.unmapRegion(s.reg)
			f.opts.metrics.Add(LockedBytes, -int64(s.reg.locked))
			f.opts.metrics.Add(FailProtect, 1)
			return classifyMapErr("mprotect", len(s.reg.inner), err, ErrProtect, f.readLimits)
		}
	}
	register(s)
	f.opts.metrics.Add(Allocated, 1)
	f.opts.metrics.Add(InUse, 1)
	return nil
}

func (s *state) handle() *handle {
	h := &handle{st: s}
	h.cleanup = runtime.AddCleanup(h, leaked, s)
	return h
}

// leaked runs when a handle was garbage collected without Close.
func leaked(s *state) {
	if s.isClosed.Load() {
		return
	}
	s.f.opts.metrics.Add(FinalizedUnclosed, 1)
	if l := s.f.opts.logger; l != nil {
		l.Debugf("securebuf: secret of %d bytes finalized before Close; created at:\n%s", s.n, s.stack)
	}
	_ = s.close()
}

// Locking rule: s.mu is held across the mprotect, wipe and munmap calls
// that change the state, and across nothing else. Metrics and Logger are
// only ever called after it is released, because their implementations may
// call back into this package (Purge, New, Close of this very secret).

// events are the metrics of a state change, reported after unlocking.
type events struct {
	protectFailed bool
	freed         bool
	unlocked      int // bytes unlocked by the free
	canaryFailed  bool
}

func (s *state) report(ev events) {
	m := s.f.opts.metrics
	if ev.protectFailed {
		m.Add(FailProtect, 1)
	}
	if ev.canaryFailed {
		m.Add(CanaryFailures, 1)
	}
	if ev.freed {
		if ev.unlocked > 0 {
			m.Add(LockedBytes, -int64(ev.unlocked))
		}
		m.Add(InUse, -1)
	}
}

// acquire registers a reader. In AccessMprotect mode the first one makes
// the pages readable; in AccessPKey mode the caller opens the key for its
// own thread.
func (s *state) acquire() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.readers == 0 && s.f.pkey == noPKey {
		if err := s.f.mem.Protect(s.reg.inner, memcall.ReadOnly); err != nil {
			n := len(s.reg.inner)
			s.mu.Unlock()
			s.report(events{protectFailed: true})
			return fmt.Errorf("%w: mprotect(read) of %d bytes: %w", ErrProtect, n, err)
		}
	}
	s.readers++
	s.mu.Unlock()
	return nil
}

// release ends a reader; the last one makes the pages no-access again (in
// AccessMprotect mode) and, when Close or Purge is pending, wipes and frees
// them.
func (s *state) release() error {
	s.mu.Lock()
	s.readers--
	if s.readers > 0 {
		s.mu.Unlock()
		return nil
	}
	var ev events
	var err error
	if s.f.pkey == noPKey {
		if perr := s.f.mem.Protect(s.reg.inner, memcall.NoAccess); perr != nil {
			ev.protectFailed = true
			err = fmt.Errorf("%w: mprotect(none) of %d bytes after access: %w", ErrProtect, len(s.reg.inner), perr)
		}
	}
	if s.closing && !s.done {
		ev = s.finish(ev)
	}
	s.mu.Unlock()
	s.report(ev)
	return err
}

// close waits for readers, then wipes and unmaps. Every call returns the
// first call's result.
func (s *state) close() error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		s.isClosed.Store(true)
	}
	for s.readers > 0 && !s.done {
		s.cond.Wait()
	}
	var ev events
	if !s.done {
		ev = s.finish(ev)
	}
	err := s.closeErr
	s.mu.Unlock()
	s.report(ev)
	return err
}

// purge closes s without waiting: when readers are inside, the last one to
// leave wipes. Purge must never block on a callback.
func (s *state) purge() {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	s.closing = true
	s.isClosed.Store(true)
	var ev events
	if s.readers == 0 {
		ev = s.finish(ev)
	}
	s.mu.Unlock()
	s.report(ev)
}

// finish wipes and unmaps; s.mu is held and no reader is inside.
func (s *state) finish(ev events) events {
	ev.freed = true
	ev.unlocked = s.reg.locked
	s.closeErr = s.free(&ev)
	s.done = true
	s.cond.Broadcast()
	return ev
}

func (s *state) free(ev *events) error {
	f := s.f
	var errs []error
	inner := s.reg.inner
	wipe := func() {
		intact := !f.opts.canary || canaryIntact(inner[:len(inner)-s.n], &f.canary)
		clear(inner)
		runtime.KeepAlive(inner)
		if !intact {
			ev.canaryFailed = true
			errs = append(errs, fmt.Errorf("%w: the %d bytes in front of a %d-byte secret were overwritten; the secret was wiped",
				ErrCanary, len(inner)-s.n, s.n))
		}
		if f.afterWipe != nil {
			f.afterWipe(inner)
		}
	}
	switch {
	case f.pkey != noPKey:
		// Write access for this thread only; the pages stay closed to
		// every other thread while they are wiped.
		withPKeyAccess(f.pkey, true, wipe)
	default:
		if err := f.mem.Protect(inner, memcall.ReadWrite); err != nil {
			// The wipe is impossible; unmapping still hands the pages
			// back to the kernel, which zeroes them before any reuse.
			ev.protectFailed = true
			errs = append(errs, fmt.Errorf("%w: mprotect(read-write) before wipe: %w", ErrProtect, err))
		} else {
			wipe()
		}
	}
	if err := f.unmapRegion(s.reg); err != nil {
		errs = append(errs, err)
	}
	s.reg, s.data = region{}, nil
	unregister(s)
	return errors.Join(errs...)
}

// WithBytes calls action with a read-only view of the secret. Writing to
// the view faults. It returns action's error, or ErrClosed, or ErrProtect
// when the protection cannot be changed. When action returns an error or
// panics, the secret is closed to access again before the error or panic
// goes on.
//
// In AccessMprotect mode the pages are readable, by every thread, while at
// least one callback of this secret runs, and no-access again when the last
// one returns. In AccessPKey mode WithBytes locks the calling goroutine to
// its OS thread and grants that thread alone read access for the duration
// of action: only the calling goroutine may read the view, and a read from
// any other goroutine faults. action must not call runtime.UnlockOSThread
// more often than it called runtime.LockOSThread.
//
// Do not call Close of the same secret from inside action: Close waits for
// action to return.
func (h *handle) WithBytes(action func([]byte) error) (err error) {
	s := h.st
	if err := s.acquire(); err != nil {
		return err
	}
	defer func() {
		if rerr := s.release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	if k := s.f.pkey; k != noPKey {
		// The goroutine is locked to its thread before the key is
		// opened and unlocked only after it is closed again, so no
		// other goroutine ever runs on a thread that has the key open,
		// and threads the runtime creates meanwhile do not inherit it
		// (see the package documentation, "Access modes").
		withPKeyAccess(k, false, func() { err = action(s.data) })
	} else {
		err = action(s.data)
	}
	runtime.KeepAlive(h)
	return err
}

// WithBytesFunc is WithBytes for an action that returns a result.
func (h *handle) WithBytesFunc(action func([]byte) ([]byte, error)) (out []byte, err error) {
	err = h.WithBytes(func(b []byte) error {
		var aerr error
		out, aerr = action(b)
		return aerr
	})
	return out, err
}

// NewReader returns a reader that copies the secret out; the copy is
// outside protected memory and is the caller's to wipe. Each Read takes the
// bytes through WithBytes, so a closed secret reads ErrClosed.
func (h *handle) NewReader() io.Reader { return &reader{h: h} }

// Len is the secret's length in bytes; it does not change after Close.
func (h *handle) Len() int { return h.st.n }

// IsClosed reports whether Close (or Purge) has been called.
func (h *handle) IsClosed() bool { return h.st.isClosed.Load() }

// Close waits for running callbacks to return, checks the canary, wipes the
// pages and unmaps them. It is idempotent: every call returns the result of
// the first. The error, if any, matches ErrCanary or ErrProtect; the memory
// is released in every case.
func (h *handle) Close() error {
	h.cleanup.Stop()
	return h.st.close()
}

const redacted = "securebuf.Secret[REDACTED]"

// String returns a redaction; it never shows the secret.
func (h *handle) String() string { return redacted }

// GoString returns a redaction; it never shows the secret.
func (h *handle) GoString() string { return redacted }

// Format prints a redaction for every verb.
func (h *handle) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

type reader struct {
	h   *handle
	off int
	err error
}

func (r *reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	var n int
	err := r.h.WithBytes(func(b []byte) error {
		if r.off >= len(b) {
			return io.EOF
		}
		n = copy(p, b[r.off:])
		r.off += n
		return nil
	})
	if err != nil {
		r.err = err
	}
	return n, err
}
