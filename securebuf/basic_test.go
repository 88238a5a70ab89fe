package securebuf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func newTestFactory(t testing.TB, opts ...Option) *Factory {
	t.Helper()
	f, err := NewFactory(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestRoundTripAndClose(t *testing.T) {
	for _, cfg := range []struct {
		name string
		opts []Option
	}{
		{"default", nil},
		{"noguard-nocanary", []Option{WithGuardPages(false), WithCanary(false)}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			f := newTestFactory(t, cfg.opts...)
			want := []byte("0123456789abcdef0123456789abcdef")
			in := bytes.Clone(want)
			s, err := f.New(in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(in, make([]byte, len(in))) {
				t.Fatalf("New did not wipe its input: %x", in)
			}
			if s.Len() != len(want) {
				t.Fatalf("Len = %d, want %d", s.Len(), len(want))
			}
			if err := s.WithBytes(func(b []byte) error {
				if !bytes.Equal(b, want) {
					return fmt.Errorf("got %x", b)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(s.NewReader())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("NewReader: %x, %v", got, err)
			}
			if s.IsClosed() {
				t.Fatal("IsClosed before Close")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if !s.IsClosed() {
				t.Fatal("IsClosed after Close = false")
			}
			if err := s.WithBytes(func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
				t.Fatalf("WithBytes after Close: %v", err)
			}
			if _, err := s.WithBytesFunc(func(b []byte) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrClosed) {
				t.Fatalf("WithBytesFunc after Close: %v", err)
			}
			if _, err := s.NewReader().Read(make([]byte, 4)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		})
	}
}
