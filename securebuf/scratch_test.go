package securebuf

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestScratchWipedOnReleaseAndReused(t *testing.T) {
	f := newTestFactory(t)
	s, err := f.Scratch(32)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bytes()
	if len(b) != 32 || cap(b) != 32 || s.Len() != 32 {
		t.Fatalf("len %d cap %d Len %d", len(b), cap(b), s.Len())
	}
	if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
		t.Fatal("fresh slot is not zero")
	}
	copy(b, patternBytes(20, 32))
	full := s.slot.b
	copy(full[32:], patternBytes(21, 32)) // the rest of the slot too
	s.Release()
	if bytes.ContainsFunc(full, func(r rune) bool { return r != 0 }) {
		t.Fatal("Release did not wipe the whole slot")
	}
	if s.Bytes() != nil {
		t.Fatal("Bytes after Release is not nil")
	}
	s.Release() // idempotent

	s2, err := f.Scratch(MaxScratchSize)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Release()
	if &s2.Bytes()[0] != &full[0] {
		t.Error("the released slot was not reused first")
	}
	// A stale handle cannot release the slot's new owner.
	s.Release()
	if s2.Bytes() == nil || f.scratch.inUse != 1 {
		t.Fatal("a stale handle's Release freed someone else's slot")
	}
	for _, n := range []int{0, -1, MaxScratchSize + 1} {
		if _, err := f.Scratch(n); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("Scratch(%d): %v", n, err)
		}
		if err := f.WithScratch(n, func([]byte) error { return nil }); !errors.Is(err, ErrInvalidSize) {
			t.Errorf("WithScratch(%d): %v", n, err)
		}
	}
}

func TestWithScratch(t *testing.T) {
	f := newTestFactory(t)
	var slot []byte
	boom := errors.New("boom")
	err := f.WithScratch(16, func(b []byte) error {
		if len(b) != 16 || cap(b) != 16 {
			t.Errorf("len %d cap %d", len(b), cap(b))
		}
		copy(b, patternBytes(22, 16))
		slot = b
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("WithScratch returned %v", err)
	}
	if bytes.ContainsFunc(slot, func(r rune) bool { return r != 0 }) || f.scratch.inUse != 0 {
		t.Fatal("WithScratch did not wipe and release")
	}
	func() {
		defer func() { _ = recover() }()
		_ = f.WithScratch(16, func(b []byte) error { copy(b, patternBytes(23, 16)); panic("x") })
	}()
	if bytes.ContainsFunc(slot, func(r rune) bool { return r != 0 }) || f.scratch.inUse != 0 {
		t.Fatal("a panicking WithScratch callback left the slot unwiped or taken")
	}
	if a := testing.AllocsPerRun(100, func() {
		_ = f.WithScratch(32, func(b []byte) error { b[0] = 1; return nil })
	}); a != 0 {
		t.Errorf("WithScratch allocates %v times per call, want 0", a)
	}
	if a := testing.AllocsPerRun(100, func() {
		s, _ := f.Scratch(32)
		s.Release()
	}); a > 1 {
		t.Errorf("Scratch+Release allocates %v times per call, want at most the 1 handle", a)
	}
}

// The arena doubles (chunks of 1, 1, 2, 4... pages), never beyond its bound, and fails with
// ErrScratchFull when every slot is out; a release makes room again.
func TestScratchExhaustion(t *testing.T) {
	const pages = 4
	f := newTestFactory(t, WithScratchPages(pages))
	per := PageSize() / MaxScratchSize
	var held []*Scratch
	for i := 0; i < pages*per; i++ {
		s, err := f.Scratch(8)
		if err != nil {
			t.Fatalf("slot %d of %d: %v", i+1, pages*per, err)
		}
		held = append(held, s)
	}
	if got := len(f.scratch.chunks); got != 3 || f.scratch.pages != pages {
		t.Errorf("arena has %d chunks and %d pages, want 3 chunks (1+1+2 pages)", got, f.scratch.pages)
	}
	if _, err := f.Scratch(8); !errors.Is(err, ErrScratchFull) {
		t.Fatalf("slot beyond the bound: %v, want ErrScratchFull", err)
	}
	if err := f.WithScratch(8, func([]byte) error { return nil }); !errors.Is(err, ErrScratchFull) {
		t.Fatalf("WithScratch beyond the bound: %v", err)
	}
	held[17].Release()
	s, err := f.Scratch(8)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	held[17] = s
	for _, s := range held {
		s.Release()
	}
	if f.scratch.inUse != 0 || len(f.scratch.free) != pages*per {
		t.Errorf("after releasing all: %d in use, %d free", f.scratch.inUse, len(f.scratch.free))
	}
}

// Many goroutines use slots at once: nobody sees another's bytes, every
// slot comes back zeroed (run with -race).
func TestScratchConcurrent(t *testing.T) {
	f := newTestFactory(t, WithScratchPages(2))
	const workers, rounds = 16, 500
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := bytes.Repeat([]byte{byte(w + 1)}, 32)
			for i := range rounds {
				var s *Scratch
				var err error
				if i%2 == 0 {
					s, err = f.Scratch(32)
					if err != nil {
						errs <- err
						return
					}
				}
				use := func(b []byte) error {
					if bytes.ContainsFunc(b, func(r rune) bool { return r != 0 }) {
						return errors.New("acquired a slot that was not zero")
					}
					copy(b, mine)
					for range 10 {
						if !bytes.Equal(b, mine) {
							return errors.New("another goroutine wrote into my slot")
						}
					}
					return nil
				}
				if s != nil {
					err = use(s.Bytes())
					s.Release()
				} else {
					err = f.WithScratch(32, use)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if f.scratch.inUse != 0 {
		t.Fatalf("%d slots still out", f.scratch.inUse)
	}
}
