package prommetrics_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/metrics/prommetrics"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// providers are the metrics setups compared: none (nil), the no-op
// Discard, in-memory atomics, and Prometheus (client_golang) on a private
// registry. Each sub-benchmark builds its own, so series do not carry over.
var providers = []struct {
	name string
	make func() metrics.Provider
}{
	{"none", func() metrics.Provider { return nil }},
	{"discard", func() metrics.Provider { return metrics.Discard }},
	{"memory", func() metrics.Provider { return metrics.NewMemory() }},
	{"prometheus", func() metrics.Provider { return prommetrics.New(prometheus.NewRegistry()) }},
}

// BenchmarkOverhead measures what reporting costs on the hot paths:
// envelope Encrypt of 64 bytes (one timer sample per record) and stream
// encryption and decryption of 16 MiB (two counter adds per 64 KiB
// chunk). With -count N the providers run interleaved, N rounds.
func BenchmarkOverhead(b *testing.B) {
	b.Run("envelope-encrypt-64B", func(b *testing.B) {
		data := make([]byte, 64)
		rand.Read(data)
		for _, p := range providers {
			b.Run(p.name, func(b *testing.B) {
				kms, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
				if err != nil {
					b.Fatal(err)
				}
				defer kms.Close()
				f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), kms, nil,
					envelope.WithMetrics(p.make()))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				s, err := f.GetSession("p")
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				if _, err := s.Encrypt(ctx, data); err != nil { // warm the caches
					b.Fatal(err)
				}
				b.SetBytes(int64(len(data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Encrypt(ctx, data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})

	const size = 16 << 20
	plain := make([]byte, size)
	rand.Read(plain)
	sf, err := securebuf.NewFactory()
	if err != nil {
		b.Fatal(err)
	}
	defer sf.Close()
	key, err := sf.CreateRandom(32)
	if err != nil {
		b.Fatal(err)
	}
	defer key.Close()
	params := stream.HeaderParams{KeyRecord: []byte(`{}`), Partition: "p"}
	var ct bytes.Buffer
	w, err := stream.NewWriter(&ct, key, params)
	if err != nil {
		b.Fatal(err)
	}
	w.Write(plain)
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("stream-encrypt-16MiB", func(b *testing.B) {
		for _, p := range providers {
			b.Run(p.name, func(b *testing.B) {
				w, err := stream.NewWriter(io.Discard, key, params, stream.WithWriterMetrics(p.make()))
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					if err := w.Reset(io.Discard, key, params); err != nil {
						b.Fatal(err)
					}
					if _, err := w.Write(plain); err != nil {
						b.Fatal(err)
					}
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
	b.Run("stream-decrypt-16MiB", func(b *testing.B) {
		for _, p := range providers {
			b.Run(p.name, func(b *testing.B) {
				src := bytes.NewReader(ct.Bytes())
				hdr, err := stream.ReadHeader(src)
				if err != nil {
					b.Fatal(err)
				}
				r, err := stream.NewReader(src, hdr, key, stream.WithReaderMetrics(p.make()))
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close()
				b.SetBytes(size)
				b.ReportAllocs()
				for b.Loop() {
					src.Reset(ct.Bytes())
					hdr, err := stream.ReadHeader(src)
					if err != nil {
						b.Fatal(err)
					}
					if err := r.Reset(src, hdr, key); err != nil {
						b.Fatal(err)
					}
					if _, err := r.WriteTo(io.Discard); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// BenchmarkInstruments is the cost of one call of each instrument, the
// bound on what metrics add to an operation: envelope Encrypt makes one
// Timer.Observe and reads the clock twice per record; a stream makes two
// Counter.Add per chunk.
func BenchmarkInstruments(b *testing.B) {
	prom := prommetrics.New(prometheus.NewRegistry())
	mem := metrics.NewMemory()
	run := func(name string, f func()) {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				f()
			}
		})
	}
	pc, pt, mc, dc := prom.Counter("c"), prom.Timer("t"), mem.Counter("c"), metrics.Discard.Counter("c")
	run("prometheus-counter-add", func() { pc.Add(1) })
	run("prometheus-timer-observe", func() { pt.Observe(1234) })
	run("memory-counter-add", func() { mc.Add(1) })
	run("discard-counter-add", func() { dc.Add(1) })
	run("clock-two-reads", func() { start := time.Now(); _ = time.Since(start) })
}

// BenchmarkInterleavedOverhead alternates, inside one loop, a block of
// operations without metrics and the same block reporting to Prometheus,
// so that both see the same machine state (on a shared, noisy machine
// separate sub-benchmarks drift by more than the difference). It reports
// ns per operation of each and their ratio.
func BenchmarkInterleavedOverhead(b *testing.B) {
	b.Run("envelope-encrypt-64B", func(b *testing.B) {
		data := make([]byte, 64)
		rand.Read(data)
		ctx := context.Background()
		sess := func(p metrics.Provider) *envelope.Session {
			kms, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { kms.Close() })
			f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), kms, nil, envelope.WithMetrics(p))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			s, err := f.GetSession("p")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			if _, err := s.Encrypt(ctx, data); err != nil {
				b.Fatal(err)
			}
			return s
		}
		a, p := sess(nil), sess(prommetrics.New(prometheus.NewRegistry()))
		const block = 512
		run := func(s *envelope.Session) time.Duration {
			start := time.Now()
			for range block {
				if _, err := s.Encrypt(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(start)
		}
		var ta, tp time.Duration
		n := 0
		for b.Loop() {
			ta += run(a)
			tp += run(p)
			n += block
		}
		b.ReportMetric(float64(ta.Nanoseconds())/float64(n), "ns/op-none")
		b.ReportMetric(float64(tp.Nanoseconds())/float64(n), "ns/op-prometheus")
		b.ReportMetric(float64(tp)/float64(ta), "ratio")
	})
	b.Run("stream-encrypt-16MiB", func(b *testing.B) {
		const size = 16 << 20
		plain := make([]byte, size)
		rand.Read(plain)
		sf, err := securebuf.NewFactory()
		if err != nil {
			b.Fatal(err)
		}
		defer sf.Close()
		key, err := sf.CreateRandom(32)
		if err != nil {
			b.Fatal(err)
		}
		defer key.Close()
		params := stream.HeaderParams{KeyRecord: []byte(`{}`), Partition: "p"}
		wa, err := stream.NewWriter(io.Discard, key, params)
		if err != nil {
			b.Fatal(err)
		}
		wp, err := stream.NewWriter(io.Discard, key, params, stream.WithWriterMetrics(prommetrics.New(prometheus.NewRegistry())))
		if err != nil {
			b.Fatal(err)
		}
		run := func(w *stream.Writer) time.Duration {
			start := time.Now()
			if err := w.Reset(io.Discard, key, params); err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(plain); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		var ta, tp time.Duration
		n := 0
		for b.Loop() {
			ta += run(wa)
			tp += run(wp)
			n++
		}
		b.ReportMetric(float64(size)*float64(n)/ta.Seconds()/(1<<20), "MiB/s-none")
		b.ReportMetric(float64(size)*float64(n)/tp.Seconds()/(1<<20), "MiB/s-prometheus")
		b.ReportMetric(float64(tp)/float64(ta), "ratio")
	})
}
