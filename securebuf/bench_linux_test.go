package securebuf

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
	"golang.org/x/sys/unix"
)

// The raw cycles below are the baselines of the performance targets
// (docs/PERFORMANCE.md): compare the sub-benchmarks of one run.

var benchKey = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

// BenchmarkCreateClose: a 32-byte secret created and closed.
func BenchmarkCreateClose(b *testing.B) {
	ps := PageSize()
	b.Run("raw", func(b *testing.B) {
		// mmap + MADV_DONTDUMP + mlock + copy + mprotect(NONE), then
		// mprotect(RW) + wipe + munmap: the minimum for one locked,
		// no-dump, no-access page.
		b.ReportAllocs()
		for b.Loop() {
			m, err := memcall.Map(ps, memcall.ReadWrite)
			if err != nil {
				b.Fatal(err)
			}
			if err := unix.Madvise(m, unix.MADV_DONTDUMP); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mlock(m); err != nil {
				b.Fatal(err)
			}
			copy(m[ps-32:], benchKey[:])
			if err := unix.Mprotect(m, unix.PROT_NONE); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mprotect(m, unix.PROT_READ|unix.PROT_WRITE); err != nil {
				b.Fatal(err)
			}
			clear(m)
			if err := memcall.Unmap(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw-guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m, err := memcall.Map(3*ps, memcall.NoAccess)
			if err != nil {
				b.Fatal(err)
			}
			inner := m[ps : 2*ps]
			if err := unix.Madvise(m, unix.MADV_DONTDUMP); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mprotect(inner, unix.PROT_READ|unix.PROT_WRITE); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mlock(inner); err != nil {
				b.Fatal(err)
			}
			copy(inner[ps-32:], benchKey[:])
			if err := unix.Mprotect(inner, unix.PROT_NONE); err != nil {
				b.Fatal(err)
			}
			if err := unix.Mprotect(inner, unix.PROT_READ|unix.PROT_WRITE); err != nil {
				b.Fatal(err)
			}
			clear(inner)
			if err := memcall.Unmap(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"securebuf", nil},
		{"securebuf-noguard", []Option{WithGuardPages(false), WithCanary(false)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newTestFactory(b, c.opts...)
			b.ReportAllocs()
			for b.Loop() {
				k := benchKey
				s, err := f.New(k[:])
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("heap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k := make([]byte, 32)
			copy(k, benchKey[:])
			benchSink = k
		}
	})
}

var benchSink []byte

// BenchmarkAccess: one read access to a 32-byte secret.
func BenchmarkAccess(b *testing.B) {
	b.Run("raw-mprotect-pair", func(b *testing.B) {
		m, err := memcall.Map(PageSize(), memcall.NoAccess)
		if err != nil {
			b.Fatal(err)
		}
		defer memcall.Unmap(m)
		b.ReportAllocs()
		for b.Loop() {
			if err := unix.Mprotect(m, unix.PROT_READ); err != nil {
				b.Fatal(err)
			}
			sink = m[len(m)-1]
			if err := unix.Mprotect(m, unix.PROT_NONE); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WithBytes", func(b *testing.B) {
		f := newTestFactory(b)
		s, err := f.CreateRandom(32)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		read := func(k []byte) error { sink = k[31]; return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := s.WithBytes(read); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("WithBytes-parallel", func(b *testing.B) {
		f := newTestFactory(b)
		s, err := f.CreateRandom(32)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		b.ReportAllocs()
		read := func(k []byte) error { _ = k[31]; return nil }
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.WithBytes(read); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkScratch: a per-record key slot acquired and released.
func BenchmarkScratch(b *testing.B) {
	b.Run("Scratch+Release", func(b *testing.B) {
		f := newTestFactory(b)
		b.ReportAllocs()
		for b.Loop() {
			s, err := f.Scratch(32)
			if err != nil {
				b.Fatal(err)
			}
			copy(s.Bytes(), benchKey[:])
			s.Release()
		}
	})
	b.Run("WithScratch", func(b *testing.B) {
		f := newTestFactory(b)
		use := func(k []byte) error { copy(k, benchKey[:]); return nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := f.WithScratch(32, use); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Scratch+Release-parallel", func(b *testing.B) {
		f := newTestFactory(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s, err := f.Scratch(32)
				if err != nil {
					b.Error(err)
					return
				}
				copy(s.Bytes(), benchKey[:])
				s.Release()
			}
		})
	})
}
