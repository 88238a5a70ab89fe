package securebuf

import (
	"bytes"
	"errors"
	"testing"
)

func TestScratchBasic(t *testing.T) {
	f := newTestFactory(t)
	s, err := f.Scratch(32)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Bytes()
	if len(b) != 32 || cap(b) != 32 || !bytes.Equal(b, make([]byte, 32)) {
		t.Fatalf("fresh slot: len %d cap %d %x", len(b), cap(b), b)
	}
	copy(b, bytes.Repeat([]byte{0xA5}, 32))
	s.Release()
	if !bytes.Equal(b, make([]byte, 32)) {
		t.Fatalf("Release did not wipe the slot: %x", b)
	}
	if s.Bytes() != nil {
		t.Fatal("Bytes after Release is not nil")
	}
	s.Release() // idempotent
	for _, n := range []int{0, -1, MaxScratchSize + 1} {
		if _, err := f.Scratch(n); !errors.Is(err, ErrInvalidSize) {
			t.Fatalf("Scratch(%d): %v", n, err)
		}
	}
}
