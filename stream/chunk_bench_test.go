package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"testing"
	"time"
)

// BenchmarkChunkSealVsGCM measures the format's own cost per chunk, on one
// goroutine (goal G1: ≥ 0.95 × GCM): every iteration seals 64 chunks of
// 64 KiB in place with the chunker a Writer's workers use (nonce from the
// index, the header MAC as AAD, panic recovery) and the same 64 chunks
// with bare stdlib AES-256-GCM, interleaved so that both run under the
// same load, and reports both and their ratio (chunker/GCM).
func BenchmarkChunkSealVsGCM(b *testing.B) {
	const size = 64 << 10
	o := new(writerOptions)
	o.setDefault()
	hdr, err := buildHeader(o, HeaderParams{KeyRecord: []byte("bench"), Partition: "p"}, make([]byte, SaltSize))
	if err != nil {
		b.Fatal(err)
	}
	ch, err := newChunker(hdr, 1, true)
	if err != nil {
		b.Fatal(err)
	}
	block, _ := aes.NewCipher(make([]byte, 32))
	aead, _ := cipher.NewGCM(block)
	buf := getBuf(ch.bufSize())
	gbuf := make([]byte, size+TagSize)
	nonce := make([]byte, 12)
	aad := make([]byte, MACSize)
	ks := new(keySchedule) // open: the job's cipher is aead
	var j job
	var dc, dg time.Duration
	for b.Loop() {
		t0 := time.Now()
		for i := range 64 {
			j = job{idx: uint64(i), aead: aead, ks: ks, a: buf, in: (*buf)[:size]}
			ch.run(&j, opSeal)
		}
		t1 := time.Now()
		for i := range 64 {
			nonce[10] = byte(i)
			aead.Seal(gbuf[:0], nonce, gbuf[:size], aad)
		}
		t2 := time.Now()
		dc += t1.Sub(t0)
		dg += t2.Sub(t1)
	}
	n := float64(b.N) * 64 * size
	b.ReportMetric(n/dc.Seconds()/1e6, "chunker-MB/s")
	b.ReportMetric(n/dg.Seconds()/1e6, "gcm-MB/s")
	b.ReportMetric(dg.Seconds()/dc.Seconds(), "chunker/gcm")
}
