package securebuf

import (
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
	"golang.org/x/sys/unix"
)

// The raw cycles below are the baselines of the performance targets
// (docs/PERFORMANCE.md): compare the sub-benchmarks of one run.

var benchKey = [32]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

// BenchmarkCreateClose: a 32-byte secret created and closed.
func BenchmarkCreateClose(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		// The minimum for one locked, no-dump, no-access page.
		b.ReportAllocs()
		for b.Loop() {
			rawCycle(b, false)
		}
	})
	b.Run("raw-guarded", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rawCycle(b, true)
		}
	})
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"securebuf", nil},
		{"securebuf-noguard", []Option{WithGuardPages(false), WithCanary(false)}},
		{"securebuf-pkey", []Option{WithAccessMode(AccessPKey)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if strings.HasSuffix(c.name, "-pkey") {
				requirePKeyBench(b)
			}
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
	for _, m := range []AccessMode{AccessMprotect, AccessPKey} {
		name := "WithBytes"
		if m == AccessPKey {
			name = "WithBytes-pkey"
		}
		b.Run(name, func(b *testing.B) {
			if m == AccessPKey {
				requirePKeyBench(b)
			}
			f := newTestFactory(b, WithAccessMode(m))
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
	}
	b.Run("WithBytes-pkey-parallel", func(b *testing.B) {
		requirePKeyBench(b)
		f := newTestFactory(b, WithAccessMode(AccessPKey))
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

// rawCycle is the baseline of the create+close target: mmap + MADV_DONTDUMP
// + mlock + copy + mprotect(NONE), then mprotect(RW) + wipe + munmap.
func rawCycle(b *testing.B, guarded bool) {
	ps := PageSize()
	pages, prot := 1, memcall.ReadWrite
	if guarded {
		pages, prot = 3, memcall.NoAccess // guard, data, guard
	}
	m, err := memcall.Map(pages*ps, prot)
	if err != nil {
		b.Fatal(err)
	}
	inner := m
	if guarded {
		inner = m[ps : 2*ps]
	}
	if err := unix.Madvise(m, unix.MADV_DONTDUMP); err != nil {
		b.Fatal(err)
	}
	if guarded {
		if err := unix.Mprotect(inner, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			b.Fatal(err)
		}
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

// BenchmarkInterleaved runs each baseline and the securebuf operation in
// the same loop iteration, alternating their order, and reports both times
// and their ratio. On a shared, noisy machine this ratio is far steadier
// than one of two separately run benchmarks: both sides see the same load.
func BenchmarkInterleaved(b *testing.B) {
	b.Run("create-close", func(b *testing.B) {
		f := newTestFactory(b)
		fu := newTestFactory(b, WithGuardPages(false), WithCanary(false))
		var fp *Factory // AccessPKey, when available
		if pkeyUsable(b) {
			fp = newTestFactory(b, WithAccessMode(AccessPKey))
		}
		var raw, rawG, sb, sbU, sbP time.Duration
		sbCycle := func(f *Factory) {
			k := benchKey
			s, err := f.New(k[:])
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
		}
		i := 0
		for b.Loop() {
			steps := []func(){
				func() { t := time.Now(); rawCycle(b, false); raw += time.Since(t) },
				func() { t := time.Now(); rawCycle(b, true); rawG += time.Since(t) },
				func() { t := time.Now(); sbCycle(f); sb += time.Since(t) },
				func() { t := time.Now(); sbCycle(fu); sbU += time.Since(t) },
			}
			if fp != nil {
				steps = append(steps, func() { t := time.Now(); sbCycle(fp); sbP += time.Since(t) })
			}
			for j := range steps {
				steps[(i+j)%len(steps)]()
			}
			i++
		}
		n := float64(b.N)
		b.ReportMetric(float64(raw)/n, "raw-ns/op")
		b.ReportMetric(float64(rawG)/n, "raw-guarded-ns/op")
		b.ReportMetric(float64(sb)/n, "securebuf-ns/op")
		b.ReportMetric(float64(sbU)/n, "securebuf-noguard-ns/op")
		b.ReportMetric(float64(sb)/float64(raw), "securebuf/raw")
		b.ReportMetric(float64(sb)/float64(rawG), "securebuf/raw-guarded")
		b.ReportMetric(float64(sbU)/float64(raw), "noguard/raw")
		if fp != nil {
			b.ReportMetric(float64(sbP)/n, "securebuf-pkey-ns/op")
			b.ReportMetric(float64(sbP)/float64(rawG), "pkey/raw-guarded")
			b.ReportMetric(float64(sbP)/float64(sb), "pkey/mprotect")
		}
	})
	b.Run("access", func(b *testing.B) {
		f := newTestFactory(b)
		s, err := f.CreateRandom(32)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		var sp Secret // the same in AccessPKey mode, when available
		if pkeyUsable(b) {
			fp := newTestFactory(b, WithAccessMode(AccessPKey))
			if sp, err = fp.CreateRandom(32); err != nil {
				b.Fatal(err)
			}
			defer sp.Close()
		}
		m, err := memcall.Map(PageSize(), memcall.NoAccess)
		if err != nil {
			b.Fatal(err)
		}
		defer memcall.Unmap(m)
		read := func(k []byte) error { sink = k[31]; return nil }
		var raw, sb, sbP time.Duration
		i := 0
		for b.Loop() {
			pkeyStep := func() {
				if sp == nil {
					return
				}
				t := time.Now()
				if err := sp.WithBytes(read); err != nil {
					b.Fatal(err)
				}
				sbP += time.Since(t)
			}
			rawStep := func() {
				t := time.Now()
				if err := unix.Mprotect(m, unix.PROT_READ); err != nil {
					b.Fatal(err)
				}
				sink = m[len(m)-1]
				if err := unix.Mprotect(m, unix.PROT_NONE); err != nil {
					b.Fatal(err)
				}
				raw += time.Since(t)
			}
			sbStep := func() {
				t := time.Now()
				if err := s.WithBytes(read); err != nil {
					b.Fatal(err)
				}
				sb += time.Since(t)
			}
			steps := [...]func(){rawStep, sbStep, pkeyStep}
			for j := range steps {
				steps[(i+j)%len(steps)]()
			}
			i++
		}
		n := float64(b.N)
		b.ReportMetric(float64(raw)/n, "raw-ns/op")
		b.ReportMetric(float64(sb)/n, "withbytes-ns/op")
		b.ReportMetric(float64(sb)/float64(raw), "withbytes/raw")
		if sp != nil {
			b.ReportMetric(float64(sbP)/n, "withbytes-pkey-ns/op")
			b.ReportMetric(float64(sbP)/float64(raw), "pkey/raw")
			b.ReportMetric(float64(sb)/float64(sbP), "mprotect/pkey")
		}
	})
}
