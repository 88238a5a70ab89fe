package stream_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/stream"
)

// BenchmarkGCM is the baseline: the standard library's AES-256-GCM Seal
// of one chunk in place, with a 12-byte nonce and 32 bytes of AAD, one
// goroutine. Compare BenchmarkSealChunk with it in the same run.
func BenchmarkGCM(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dK", size>>10), func(b *testing.B) {
			block, _ := aes.NewCipher(make([]byte, 32))
			aead, _ := cipher.NewGCM(block)
			buf := make([]byte, size+16)
			nonce := make([]byte, 12)
			aad := make([]byte, 32)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				nonce[10]++
				aead.Seal(buf[:0], nonce, buf[:size], aad)
			}
		})
	}
}

// BenchmarkGCMParallel is the N-goroutine baseline (GOMAXPROCS goroutines).
func BenchmarkGCMParallel(b *testing.B) {
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	const size = 64 << 10
	b.SetBytes(size)
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, size+16)
		nonce := make([]byte, 12)
		aad := make([]byte, 32)
		for pb.Next() {
			nonce[10]++
			aead.Seal(buf[:0], nonce, buf[:size], aad)
		}
	})
}

// BenchmarkSealChunk: a 1-worker Writer encrypting in memory to
// io.Discard, 64 chunks per Write (the caller copies each chunk into a
// pooled buffer, the worker seals it). BenchmarkChunkSealVsGCM measures
// the format's own overhead on one goroutine.
func BenchmarkSealChunk(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("chunk=%dK", size>>10), func(b *testing.B) {
			key := testKey(b, "bench")
			w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(size), stream.WithWriterConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			p := make([]byte, 64*size)
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				w.Write(p)
			}
		})
	}
}

// BenchmarkOpenChunk: a 1-worker Reader decrypting in memory (WriteTo
// io.Discard), per stream of 64 chunks, against BenchmarkGCMOpen.
func BenchmarkOpenChunk(b *testing.B) {
	const size = 64 << 10
	key := testKey(b, "bench")
	ct := encrypt(b, key, make([]byte, 64*size), stream.WithWriterConcurrency(1))
	hdr := mustHeader(b, ct)
	b.SetBytes(64 * size)
	b.ReportAllocs()
	for b.Loop() {
		src := bytes.NewReader(ct[hdr.Len():])
		r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		r.WriteTo(io.Discard)
		r.Close()
	}
}

func BenchmarkGCMOpen(b *testing.B) {
	const size = 64 << 10
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	aad := make([]byte, 32)
	ct := aead.Seal(nil, nonce, make([]byte, size), aad)
	dst := make([]byte, size)
	b.SetBytes(size)
	for b.Loop() {
		aead.Open(dst[:0], nonce, ct, aad)
	}
}

// BenchmarkWriter sweeps chunk size × workers over a 16 MiB in-memory
// stream, fed through ReadFrom as io.Copy from a file would.
func BenchmarkWriter(b *testing.B) {
	src := make([]byte, 16<<20)
	for _, size := range []int{64 << 10, 1 << 20} {
		for _, conc := range []int{1, 2, runtime.GOMAXPROCS(0) * 2} {
			b.Run(fmt.Sprintf("chunk=%dK/workers=%d", size>>10, conc), func(b *testing.B) {
				key := testKey(b, "bench")
				b.SetBytes(int64(len(src)))
				b.ReportAllocs()
				for b.Loop() {
					w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(size), stream.WithWriterConcurrency(conc))
					if err != nil {
						b.Fatal(err)
					}
					w.ReadFrom(onlyReader{bytes.NewReader(src)})
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReader sweeps workers over a 16 MiB in-memory stream.
func BenchmarkReader(b *testing.B) {
	key := testKey(b, "bench")
	ct := encrypt(b, key, make([]byte, 16<<20))
	hdr := mustHeader(b, ct)
	for _, conc := range []int{1, 2, runtime.GOMAXPROCS(0) * 2} {
		b.Run(fmt.Sprintf("workers=%d", conc), func(b *testing.B) {
			b.SetBytes(16 << 20)
			b.ReportAllocs()
			for b.Loop() {
				r, err := stream.NewReader(onlyReader{bytes.NewReader(ct[hdr.Len():])}, hdr, key, stream.WithReaderConcurrency(conc))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}

// BenchmarkCompression measures compressed writing of log-like text, in
// input bytes per second, 1 worker vs all.
func BenchmarkCompression(b *testing.B) {
	var text bytes.Buffer
	for i := 0; text.Len() < 16<<20; i++ {
		fmt.Fprintf(&text, `{"ts":"2024-01-01T00:%02d:%02dZ","level":"info","user":%d,"path":"/api/v1/items/%d","status":200,"ms":%d}`+"\n", i/60%60, i%60, i%977, i%10007, i%113)
	}
	src := text.Bytes()
	for _, codec := range []stream.Codec{stream.CodecS2, stream.CodecZstd} {
		for _, conc := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%v/workers=%d", codec, conc), func(b *testing.B) {
				key := testKey(b, "bench")
				b.SetBytes(int64(len(src)))
				for b.Loop() {
					w, _ := stream.NewWriter(io.Discard, key, testParams, stream.WithCompression(codec), stream.WithWriterConcurrency(conc))
					w.ReadFrom(onlyReader{bytes.NewReader(src)})
					w.Close()
				}
			})
		}
	}
}

// BenchmarkSealVsGCM interleaves, in every iteration, a whole 64-chunk
// stream through a 1-worker Writer (Reset, one Write from memory, Close,
// to io.Discard: the caller copies each chunk into a pooled buffer, the
// worker seals it) and the same 64 chunks sealed with bare stdlib
// AES-256-GCM on the caller's goroutine (same input, same out-of-place
// output buffer, so that both move the same memory), and reports both
// throughputs and their ratio (stream/GCM). Interleaving at millisecond
// scale keeps the ratio honest on a shared machine where load changes
// between separate benchmarks.
func BenchmarkSealVsGCM(b *testing.B) {
	const size = 64 << 10
	key := testKey(b, "bench")
	w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithWriterConcurrency(1))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	p := make([]byte, 64*size)
	buf := make([]byte, size+16)
	nonce := make([]byte, 12)
	aad := make([]byte, 32)
	var ds, dg time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := w.Reset(io.Discard, key, testParams); err != nil {
			b.Fatal(err)
		}
		w.Write(p)
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for i := range 64 {
			nonce[10]++
			aead.Seal(buf[:0], nonce, p[i*size:(i+1)*size], aad)
		}
		t2 := time.Now()
		ds += t1.Sub(t0)
		dg += t2.Sub(t1)
	}
	n := float64(b.N) * float64(len(p))
	b.ReportMetric(n/ds.Seconds()/1e6, "stream-MB/s")
	b.ReportMetric(n/dg.Seconds()/1e6, "gcm-MB/s")
	b.ReportMetric(dg.Seconds()/ds.Seconds(), "stream/gcm")
}

// BenchmarkOpenVsGCM is BenchmarkSealVsGCM for decryption: a 1-worker
// Reader over an in-memory 64-chunk stream (WriteTo io.Discard) against 64
// bare stdlib Opens.
func BenchmarkOpenVsGCM(b *testing.B) {
	const size = 64 << 10
	key := testKey(b, "bench")
	ct := encrypt(b, key, make([]byte, 64*size), stream.WithWriterConcurrency(1))
	hdr := mustHeader(b, ct)
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	nonce := make([]byte, 12)
	aad := make([]byte, 32)
	gct := aead.Seal(nil, nonce, make([]byte, size), aad)
	dst := make([]byte, size)
	var ds, dg time.Duration
	for b.Loop() {
		t0 := time.Now()
		r, err := stream.NewReader(bytes.NewReader(ct[hdr.Len():]), hdr, key, stream.WithReaderConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		r.WriteTo(io.Discard)
		r.Close()
		t1 := time.Now()
		for range 64 {
			aead.Open(dst[:0], nonce, gct, aad)
		}
		t2 := time.Now()
		ds += t1.Sub(t0)
		dg += t2.Sub(t1)
	}
	n := float64(b.N) * 64 * size
	b.ReportMetric(n/ds.Seconds()/1e6, "stream-MB/s")
	b.ReportMetric(n/dg.Seconds()/1e6, "gcm-MB/s")
	b.ReportMetric(dg.Seconds()/ds.Seconds(), "stream/gcm")
}
