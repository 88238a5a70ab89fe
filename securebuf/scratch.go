package securebuf

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// Scratch is a short-lived protected slot of up to MaxScratchSize bytes,
// for keys that live for one record, such as a per-record data key.
//
// Slots are carved from pages that were mapped, locked and excluded from
// core dumps once, when the arena grew; they stay read-write (there is no
// no-access state and no guard between slots), so acquiring and releasing
// one costs no system call. Use a Secret for keys that live longer.
//
// A Scratch belongs to one owner at a time. Bytes and Release may be called
// from any goroutine, but not concurrently with each other.
type Scratch struct {
	a        *arena
	slot     *slot
	n        int
	released atomic.Bool
}

// Bytes returns the slot's n bytes, read-write. The slice is valid until
// Release and must not be kept beyond it. After Release it returns nil.
func (s *Scratch) Bytes() []byte {
	if s == nil || s.released.Load() {
		return nil
	}
	return s.slot.b[:s.n:s.n]
}

// Len is the size the slot was acquired with.
func (s *Scratch) Len() int { return s.n }

// Release wipes the slot and returns it to the arena. It is idempotent, so
// a deferred Release after an explicit one is harmless.
func (s *Scratch) Release() {
	if s == nil || !s.released.CompareAndSwap(false, true) {
		return
	}
	s.a.put(s.slot)
}

// String returns a redaction; it never shows the slot's bytes.
func (s *Scratch) String() string { return "securebuf.Scratch[REDACTED]" }

// GoString returns a redaction; it never shows the slot's bytes.
func (s *Scratch) GoString() string { return s.String() }

// Format prints a redaction for every verb.
func (s *Scratch) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(s.String())) }

var _ fmt.Formatter = (*Scratch)(nil)

type slot struct {
	b []byte // MaxScratchSize bytes inside an arena chunk
}

// arena hands out scratch slots from a free list. It grows by one mapped
// chunk at a time, doubling its size (chunks of 1, 1, 2, 4... pages), up to
// options.scratchPages pages.
//
// Locking rule: a.mu guards the lists and counters only. No system call,
// Metrics or Logger call happens under it: growing reserves the pages under
// the lock, maps them without it, and adds the slots under it again.
type arena struct {
	f      *Factory
	mu     sync.Mutex
	free   []*slot
	chunks []region
	pages  int // pages mapped or being mapped
	inUse  int
	closed bool
}

func (a *arena) init(f *Factory) { a.f = f }

// Scratch returns a protected slot of n bytes (1 <= n <= MaxScratchSize),
// zeroed. Release it when done; releasing wipes it. When every slot of the
// bounded arena is taken it fails with ErrScratchFull; when the arena cannot
// grow it fails with the allocation error (ErrLockLimit, ErrMapLimit, ...).
//
// Each call allocates one small handle so that a stale handle can never
// release someone else's slot; WithScratch allocates nothing.
func (f *Factory) Scratch(n int) (*Scratch, error) {
	sl, err := f.scratch.get(n)
	if err != nil {
		return nil, err
	}
	return &Scratch{a: &f.scratch, slot: sl, n: n}, nil
}

// WithScratch calls action with a zeroed protected slot of n bytes and
// wipes and releases the slot when action returns or panics. The slice must
// not be kept beyond the call. It returns action's error or the error of
// Scratch.
func (f *Factory) WithScratch(n int, action func([]byte) error) error {
	sl, err := f.scratch.get(n)
	if err != nil {
		return err
	}
	defer f.scratch.put(sl)
	return action(sl.b[:n:n])
}

func (a *arena) get(n int) (*slot, error) {
	if n < 1 || n > MaxScratchSize {
		return nil, fmt.Errorf("%w: scratch of %d bytes (want 1..%d)", ErrInvalidSize, n, MaxScratchSize)
	}
	m := a.f.opts.metrics
	a.mu.Lock()
	for {
		if a.closed {
			a.mu.Unlock()
			return nil, fmt.Errorf("securebuf: factory is closed: %w", ErrClosed)
		}
		if k := len(a.free); k > 0 {
			sl := a.free[k-1]
			a.free = a.free[:k-1]
			a.inUse++
			a.mu.Unlock()
			m.Add(ScratchInUse, 1)
			return sl, nil
		}
		limit := a.f.opts.scratchPages
		if a.pages >= limit {
			inUse, pages := a.inUse, a.pages
			a.mu.Unlock()
			return nil, fmt.Errorf("%w (%d slots in %d pages; see WithScratchPages)", ErrScratchFull, inUse, pages)
		}
		pages := min(max(1, a.pages), limit-a.pages)
		a.pages += pages
		a.mu.Unlock()

		r, err := a.f.mapRegion(pages*memcall.PageSize(), noPKey)

		a.mu.Lock()
		if err != nil {
			a.pages -= pages
			a.mu.Unlock()
			return nil, err
		}
		if a.closed {
			a.pages -= pages
			a.mu.Unlock()
			a.unmapChunk(r)
			continue // reports ErrClosed
		}
		a.chunks = append(a.chunks, r)
		if a.free == nil {
			a.free = make([]*slot, 0, limit*memcall.PageSize()/MaxScratchSize)
		}
		for off := 0; off+MaxScratchSize <= len(r.inner); off += MaxScratchSize {
			a.free = append(a.free, &slot{b: r.inner[off : off+MaxScratchSize : off+MaxScratchSize]})
		}
	}
}

func (a *arena) put(sl *slot) {
	clear(sl.b)
	runtime.KeepAlive(sl.b)
	a.mu.Lock()
	a.free = append(a.free, sl)
	a.inUse--
	var chunks []region
	if a.closed && a.inUse == 0 {
		chunks = a.takeChunks()
	}
	a.mu.Unlock()
	a.f.opts.metrics.Add(ScratchInUse, -1)
	for _, r := range chunks {
		a.unmapChunk(r)
	}
}

func (a *arena) close() error {
	a.mu.Lock()
	a.closed = true
	var chunks []region
	if a.inUse == 0 {
		chunks = a.takeChunks()
	} // else the last put unmaps
	a.mu.Unlock()
	var errs []error
	for _, r := range chunks {
		errs = append(errs, a.unmapChunk(r))
	}
	return errors.Join(errs...)
}

// takeChunks empties the arena; a.mu is held and no slot is out.
func (a *arena) takeChunks() []region {
	chunks := a.chunks
	a.chunks, a.free = nil, nil
	for _, r := range chunks {
		a.pages -= len(r.inner) / memcall.PageSize()
	}
	return chunks
}

// unmapChunk wipes and unmaps one chunk that no slot refers to any more.
func (a *arena) unmapChunk(r region) error {
	clear(r.inner)
	runtime.KeepAlive(r.inner)
	if a.f.afterWipe != nil {
		a.f.afterWipe(r.inner)
	}
	err := a.f.unmapRegion(r)
	if r.locked > 0 {
		a.f.opts.metrics.Add(LockedBytes, -int64(r.locked))
	}
	if err != nil && a.f.opts.logger != nil {
		a.f.opts.logger.Debugf("securebuf: releasing the scratch arena: %v", err)
	}
	return err
}
