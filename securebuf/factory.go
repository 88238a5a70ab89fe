package securebuf

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// canaryMin is the number of canary bytes that every secret gets in front
// of its data when canaries are on.
const canaryMin = 16

// Factory creates secrets and scratch slots with one configuration.
//
// A Factory is safe for concurrent use. Secrets it created stay valid after
// the Factory is closed or dropped; each must be closed on its own.
type Factory struct {
	opts   options
	mem    memOps
	pkey   int // the process's protection key in AccessPKey mode, else noPKey
	canary [32]byte
	closed atomic.Bool

	closeOnce sync.Once
	closeErr  error

	scratch arena

	// readLimits reads the process limits when an allocation fails; tests
	// replace it to check the classification.
	readLimits func() memcall.Limits

	// afterWipe, when set by a test, runs between the wipe of a region's
	// data pages and their unmapping.
	afterWipe func(inner []byte)
}

// NewFactory returns a Factory configured by opts. It allocates no
// protected memory: the scratch arena is mapped on first use. With
// WithAccessMode(AccessPKey) it fails with an error matching ErrNoPKey when
// memory protection keys cannot be used here.
func NewFactory(opts ...Option) (*Factory, error) {
	f := &Factory{opts: defaultOptions(), mem: osMem{}, pkey: noPKey, readLimits: memcall.ReadLimits}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&f.opts); err != nil {
			return nil, err
		}
	}
	switch f.opts.access {
	case AccessPKey:
		k, err := processPKey()
		if err != nil {
			return nil, err
		}
		f.pkey = k
	case AccessAuto:
		k, err := processPKey()
		if err == nil {
			f.pkey = k
		} else if f.opts.logger != nil {
			f.opts.logger.Debugf("securebuf: AccessAuto uses mprotect: %v", err)
		}
	}
	rand.Read(f.canary[:])
	f.scratch.init(f)
	return f, nil
}

// New copies b into protected memory in constant time and then wipes b.
// When New fails, b is left as it was. len(b) must be between 1 and the
// factory's maximum size, or New fails with ErrInvalidSize.
func (f *Factory) New(b []byte) (Secret, error) {
	s, err := f.newSecret(len(b), func(data []byte) { subtle.ConstantTimeCopy(1, data, b) })
	if err != nil {
		return nil, err
	}
	clear(b)
	runtime.KeepAlive(b)
	return s.handle(), nil
}

// CreateRandom returns a secret of n bytes read from crypto/rand straight
// into protected memory; the bytes never pass through the Go heap.
func (f *Factory) CreateRandom(n int) (Secret, error) {
	s, err := f.newSecret(n, func(data []byte) { rand.Read(data) })
	if err != nil {
		return nil, err
	}
	return s.handle(), nil
}

// newSecret maps a region for n bytes, writes the canary, has fill write
// the n data bytes and seals the state. fill must not keep the slice. In
// AccessPKey mode fill runs with write access granted to the calling thread
// only; in AccessMprotect mode the pages are read-write until the seal.
func (f *Factory) newSecret(n int, fill func(data []byte)) (*state, error) {
	s, err := f.newState(n)
	if err != nil {
		return nil, err
	}
	write := func() {
		if f.opts.canary {
			fillCanary(s.reg.inner[:len(s.reg.inner)-n], &f.canary)
		}
		fill(s.data)
	}
	if f.pkey != noPKey {
		withPKeyAccess(f.pkey, true, write)
	} else {
		write()
	}
	if err := s.seal(); err != nil {
		return nil, err
	}
	return s, nil
}

// newState maps a region for n bytes and returns the state, ready to be
// filled and sealed.
func (f *Factory) newState(n int) (*state, error) {
	if f == nil {
		return nil, fmt.Errorf("securebuf: nil *Factory")
	}
	if f.closed.Load() {
		return nil, fmt.Errorf("securebuf: factory is closed: %w", ErrClosed)
	}
	if n <= 0 || n > f.opts.maxSize {
		return nil, fmt.Errorf("%w: %d bytes (want 1..%d)", ErrInvalidSize, n, f.opts.maxSize)
	}
	slack := 0
	if f.opts.canary {
		slack = canaryMin
	}
	r, err := f.mapRegion(roundPages(n+slack), f.pkey)
	if err != nil {
		return nil, err
	}
	s := &state{f: f, reg: r, n: n}
	s.cond.L = &s.mu
	s.data = r.inner[len(r.inner)-n : len(r.inner) : len(r.inner)]
	if f.opts.logger != nil {
		s.stack = debug.Stack()
	}
	return s, nil
}

// Close marks the Factory closed: New, CreateRandom, Scratch and
// WithScratch then fail with ErrClosed. The scratch arena is wiped and
// unmapped now, or as soon as its last slot is released. Secrets already
// created are not affected; each is closed on its own. Close is idempotent:
// every call returns the first call's result.
func (f *Factory) Close() error {
	f.closeOnce.Do(func() {
		f.closed.Store(true)
		f.closeErr = f.scratch.close()
	})
	return f.closeErr
}

func fillCanary(slack []byte, pat *[32]byte) {
	for i := 0; i < len(slack); i += len(pat) {
		copy(slack[i:], pat[:])
	}
}

// canaryIntact reports whether slack still holds the repeated pattern. It
// reads every byte whatever it finds (no early exit), eight at a time.
func canaryIntact(slack []byte, pat *[32]byte) bool {
	var acc uint64
	i := 0
	for ; i+len(pat) <= len(slack); i += len(pat) {
		c := slack[i : i+len(pat) : i+len(pat)]
		acc |= binary.NativeEndian.Uint64(c[0:]) ^ binary.NativeEndian.Uint64(pat[0:])
		acc |= binary.NativeEndian.Uint64(c[8:]) ^ binary.NativeEndian.Uint64(pat[8:])
		acc |= binary.NativeEndian.Uint64(c[16:]) ^ binary.NativeEndian.Uint64(pat[16:])
		acc |= binary.NativeEndian.Uint64(c[24:]) ^ binary.NativeEndian.Uint64(pat[24:])
	}
	tail := slack[i:]
	return acc == 0 && subtle.ConstantTimeCompare(tail, pat[:len(tail)]) == 1
}

// PageSize is the size of a memory page; a secret locks at least one.
func PageSize() int { return memcall.PageSize() }
