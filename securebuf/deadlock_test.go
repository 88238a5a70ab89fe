package securebuf

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// reentrant is a Metrics and a Logger that calls back into the package on
// every event (one level deep): Purge, a new secret, a scratch slot, and
// Close of the secret under test. memguard deadlocks when its failure path
// purges under a held lock; here no lock may be held while we are called.
type reentrant struct {
	f      *Factory
	target atomic.Pointer[handle]
	on     atomic.Bool
	busy   atomic.Bool
	calls  atomic.Int64
}

func (r *reentrant) Add(Metric, int64)     { r.reenter() }
func (r *reentrant) Debugf(string, ...any) { r.reenter() }
func (r *reentrant) reenter() {
	if !r.on.Load() || !r.busy.CompareAndSwap(false, true) {
		return
	}
	defer r.busy.Store(false)
	r.calls.Add(1)
	Purge()
	if s, err := r.f.CreateRandom(8); err == nil {
		_ = s.Close()
	}
	if sc, err := r.f.Scratch(8); err == nil {
		sc.Release()
	}
	if h := r.target.Load(); h != nil {
		_ = h.Close()
	}
}

// Make every step that runs under one of the package's locks fail
// (the lock limit, a failing mprotect) while Metrics and Logger call back
// into the package; every operation returns an error in time.
func TestFailuresUnderLocksDoNotDeadlock(t *testing.T) {
	forEachMode(t, testFailuresUnderLocksDoNotDeadlock)
}

func testFailuresUnderLocksDoNotDeadlock(t *testing.T, mode AccessMode) {
	const limit = 20 * time.Second
	r := &reentrant{}
	f := newTestFactory(t, WithMetrics(MetricsFunc(r.Add)), WithLogger(r), WithScratchPages(2), WithAccessMode(mode))
	r.f = f
	fm := newFaultMem()
	f.mem = fm
	f.readLimits = func() memcall.Limits {
		return memcall.Limits{MemlockSoft: 4096, MemlockHard: 4096, Locked: 4096, MapCount: 1, MaxMapCount: 65530}
	}
	newTarget := func() *handle {
		t.Helper()
		r.on.Store(false)
		defer r.on.Store(true)
		fm.clearFaults()
		s, err := f.CreateRandom(32)
		if err != nil {
			t.Fatal(err)
		}
		return s.(*handle)
	}
	r.on.Store(true)

	// The scratch arena grows under its lock bookkeeping: mlock fails.
	fm.set("lock", faultRule{err: errENOMEM})
	within(t, limit, "Scratch at the lock limit", func() {
		if _, err := f.Scratch(32); !errors.Is(err, ErrLockLimit) {
			t.Errorf("Scratch: %v", err)
		}
	})
	within(t, limit, "WithScratch at the lock limit", func() {
		if err := f.WithScratch(32, func([]byte) error { return nil }); !errors.Is(err, ErrLockLimit) {
			t.Errorf("WithScratch: %v", err)
		}
	})
	within(t, limit, "CreateRandom at the lock limit", func() {
		if _, err := f.CreateRandom(32); !errors.Is(err, ErrLockLimit) {
			t.Errorf("CreateRandom: %v", err)
		}
	})
	fm.clearFaults()

	if mode == AccessPKey {
		// Tagging a new secret fails; the access path makes no system
		// call that could fail.
		fm.set("pkey", faultRule{err: errInjected, times: 1})
		within(t, limit, "CreateRandom with pkey_mprotect failing", func() {
			if _, err := f.CreateRandom(32); !errors.Is(err, ErrProtect) {
				t.Errorf("CreateRandom: %v", err)
			}
		})
		fm.clearFaults()
	}
	// WithBytes: the first reader's mprotect fails under s.mu.
	steps := []string{"protect:read", "protect:none", "protect:read-write"}
	if mode == AccessPKey {
		steps = nil
	}
	for _, step := range steps {
		h := newTarget()
		r.target.Store(h)
		fm.set(step, faultRule{err: errInjected, times: 1})
		within(t, limit, "WithBytes/Close with "+step+" failing", func() {
			err := h.WithBytes(func([]byte) error { return nil })
			switch step {
			case "protect:read":
				if !errors.Is(err, ErrProtect) {
					t.Errorf("%s: WithBytes returned %v", step, err)
				}
			case "protect:none":
				// The callback ran, the re-protect failed, and the metrics
				// callback closed the secret after the lock was released.
				if !errors.Is(err, ErrProtect) {
					t.Errorf("%s: WithBytes returned %v", step, err)
				}
			case "protect:read-write":
				if err != nil {
					t.Errorf("%s: WithBytes returned %v", step, err)
				}
				if !h.IsClosed() {
					// Close's own failure is reported by Close, with the
					// metrics callback closing (and purging) once more.
					if err := h.Close(); !errors.Is(err, ErrProtect) {
						t.Errorf("%s: Close returned %v", step, err)
					}
				}
			}
			_ = h.Close()
		})
		r.target.Store(nil)
		if !h.IsClosed() {
			t.Errorf("%s: secret not closed", step)
		}
	}

	// Purge while a reader is inside; the last reader wipes, and its
	// metrics callback closes the same secret again.
	h := newTarget()
	within(t, limit, "Purge with a reader inside", func() {
		err := h.WithBytes(func([]byte) error {
			Purge()
			r.target.Store(h)
			return nil
		})
		if err != nil {
			t.Errorf("reader: %v", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("Close after purge: %v", err)
		}
	})
	r.target.Store(nil)

	// A leaked secret: the cleanup logs and counts while nothing is locked.
	before := r.calls.Load()
	func() {
		if _, err := f.CreateRandom(16); err != nil {
			t.Fatal(err)
		}
	}()
	within(t, 30*time.Second, "cleanup of a leaked secret", func() {
		for i := 0; i < 1000 && liveSecrets() > 0; i++ {
			runtime.GC()
			time.Sleep(10 * time.Millisecond)
		}
	})
	if liveSecrets() != 0 {
		t.Errorf("%d secrets still live", liveSecrets())
	}
	if r.calls.Load() == before {
		t.Error("the re-entrant callbacks never ran")
	}

	// Close from many goroutines at once, each callback closing again.
	h = newTarget()
	r.target.Store(h)
	within(t, limit, "concurrent Close", func() {
		done := make(chan struct{})
		for range 8 {
			go func() { _ = h.Close(); done <- struct{}{} }()
		}
		for range 8 {
			<-done
		}
	})
	r.target.Store(nil)
}
