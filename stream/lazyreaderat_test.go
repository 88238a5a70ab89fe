package stream_test

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

// lazyOpen returns a LazyReaderAt over src (with the key of seed
// "lazy") that the test closes.
func lazyOpen(t *testing.T, src io.ReaderAt, size int64, hdr *stream.Header, opts ...stream.ReaderOption) *stream.LazyReaderAt {
	t.Helper()
	key := testKey(t, "lazy")
	ra, err := stream.NewLazyReaderAt(src, size, hdr, key, opts...)
	if err != nil {
		t.Fatalf("NewLazyReaderAt: %v", err)
	}
	t.Cleanup(func() { ra.Close() })
	return ra
}

// finalChunkReads counts the recorded reads that overlap [lo, hi).
func finalChunkReads(rd [][2]int64, lo, hi int64) int {
	k := 0
	for _, r := range rd {
		if r[0] < hi && r[1] > lo {
			k++
		}
	}
	return k
}

// TestLazyReaderAtOnAStreamCutAtAChunkBoundary cuts a stream after each
// of its chunk boundaries. NewReaderAt refuses every cut up front;
// NewLazyReaderAt returns the authentic bytes of any range that ends
// before the last chunk left (which was not the final chunk), and
// ErrTruncated to a read that reaches it, to a read after it, and to
// Size, with no plaintext of that chunk.
func TestLazyReaderAtOnAStreamCutAtAChunkBoundary(t *testing.T) {
	key := testKey(t, "lazy")
	const chunks = 6
	pt := randBytes((chunks-1)*cs+777, 61)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	ctSize := int64(cs + stream.TagSize)
	rng := rand.New(rand.NewPCG(6, 1))
	for kept := int64(1); kept < chunks; kept++ {
		cut := ct[:hdr.Len()+kept*ctSize]
		if _, err := stream.NewReaderAt(bytes.NewReader(cut), int64(len(cut)), hdr, key); !errors.Is(err, stream.ErrTruncated) {
			t.Fatalf("%d chunks kept: NewReaderAt = %v, want ErrTruncated", kept, err)
		}
		ra := lazyOpen(t, bytes.NewReader(cut), int64(len(cut)), hdr, stream.WithReaderConcurrency(1+rng.IntN(3)))
		if got, want := ra.UnverifiedSize(), kept*cs; got != want {
			t.Fatalf("%d chunks kept: UnverifiedSize = %d, want %d", kept, got, want)
		}
		lastStart := (kept - 1) * cs // plaintext offset of the chunk at the cut
		// Ranges before the cut chunk: authentic bytes, no error.
		for range 20 {
			if lastStart == 0 {
				break
			}
			off := rng.Int64N(lastStart)
			n := rng.Int64N(lastStart-off) + 1
			p := make([]byte, n)
			if m, err := ra.ReadAt(p, off); int64(m) != n || err != nil || !bytes.Equal(p, pt[off:off+n]) {
				t.Fatalf("%d chunks kept: ReadAt(%d bytes at %d) = %d, %v; want the plaintext", kept, n, off, m, err)
			}
		}
		// A read from before the cut chunk into it: the bytes before it,
		// then ErrTruncated; nothing of the cut chunk.
		if lastStart > 0 {
			off := lastStart - 10
			p := bytes.Repeat([]byte{0xAA}, 30)
			m, err := ra.ReadAt(p, off)
			if !errors.Is(err, stream.ErrTruncated) || m != 10 || !bytes.Equal(p[:m], pt[off:off+10]) || !bytes.Equal(p[m:], make([]byte, 20)) {
				t.Fatalf("%d chunks kept: ReadAt across the cut = %d, %v; want 10 authentic bytes, zeros, ErrTruncated", kept, m, err)
			}
		}
		// Reads in, at the end of and after the cut chunk; Size.
		for _, off := range []int64{lastStart, lastStart + 5, kept*cs - 1, kept * cs, kept*cs + 100} {
			if m, err := ra.ReadAt(make([]byte, 5), off); m != 0 || !errors.Is(err, stream.ErrTruncated) {
				t.Fatalf("%d chunks kept: ReadAt at %d = %d, %v; want 0, ErrTruncated", kept, off, m, err)
			}
		}
		if size, err := ra.Size(); size != 0 || !errors.Is(err, stream.ErrTruncated) {
			t.Fatalf("%d chunks kept: Size = %d, %v; want ErrTruncated", kept, size, err)
		}
		// The chunks before the cut are still authentic.
		if lastStart > 0 {
			p := make([]byte, lastStart)
			if m, err := ra.ReadAt(p, 0); int64(m) != lastStart || err != nil || !bytes.Equal(p, pt[:lastStart]) {
				t.Fatalf("%d chunks kept: ReadAt before the cut after Size failed = %d, %v", kept, m, err)
			}
		}
	}
	if _, err := stream.NewLazyReaderAt(bytes.NewReader(ct), hdr.Len(), hdr, key); !errors.Is(err, stream.ErrTruncated) {
		t.Fatalf("no chunk left: NewLazyReaderAt = %v, want ErrTruncated", err)
	}
	// The intact stream: Size and reads at the end as NewReaderAt gives.
	ra := lazyOpen(t, bytes.NewReader(ct), int64(len(ct)), hdr)
	if size, err := ra.Size(); size != int64(len(pt)) || err != nil {
		t.Fatalf("Size = %d, %v; want %d", size, err, len(pt))
	}
	p := make([]byte, 100)
	if m, err := ra.ReadAt(p, int64(len(pt))-40); m != 40 || err != io.EOF || !bytes.Equal(p[:m], pt[len(pt)-40:]) {
		t.Fatalf("ReadAt over the end = %d, %v; want 40, io.EOF", m, err)
	}
}

// TestLazyReaderAtOnAnExtendedStream appends bytes to a stream whose
// final chunk is full, then to one whose final chunk is short. A read
// that reaches the apparent end, and Size, fail with the error
// NewReaderAt gives; ranges in the chunks before the real final chunk
// read fine; a read of the real final chunk, now followed by data, fails
// as non-final.
func TestLazyReaderAtOnAnExtendedStream(t *testing.T) {
	key := testKey(t, "lazy")
	for _, plainLen := range []int{3 * cs, 3*cs - 100} {
		pt := randBytes(plainLen, 62)
		ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
		hdr := mustHeader(t, ct)
		for _, extra := range []int{1, 15, 16, 17, cs + 16, cs + 17, 3*cs + 100} {
			b := append(bytes.Clone(ct), randBytes(extra, uint64(extra))...)
			_, eagerErr := stream.NewReaderAt(bytes.NewReader(b), int64(len(b)), hdr, key)
			if eagerErr == nil {
				t.Fatalf("len %d + %d: NewReaderAt accepted an extended stream", plainLen, extra)
			}
			sameErr := func(what string, err error) {
				t.Helper()
				if err == nil || err.Error() != eagerErr.Error() || classOf(t, err) != classOf(t, eagerErr) {
					t.Fatalf("len %d + %d: %s: %v, want NewReaderAt's error %v", plainLen, extra, what, err, eagerErr)
				}
			}
			ra := lazyOpen(t, bytes.NewReader(b), int64(len(b)), hdr)
			// Chunks 0 and 1 are not the real final chunk.
			q := make([]byte, 2*cs-20)
			if m, err := ra.ReadAt(q, 10); m != len(q) || err != nil || !bytes.Equal(q, pt[10:10+len(q)]) {
				t.Fatalf("len %d + %d: ReadAt in chunks 0-1 = %d, %v", plainLen, extra, m, err)
			}
			if m, err := ra.ReadAt(make([]byte, 10), 2*cs+5); m != 0 || !errors.Is(err, stream.ErrAuth) {
				t.Fatalf("len %d + %d: ReadAt in the real final chunk = %d, %v; want 0, ErrAuth", plainLen, extra, m, err)
			}
			end := ra.UnverifiedSize()
			_, err := ra.ReadAt(make([]byte, 10), max(end-5, 0))
			sameErr("ReadAt at the apparent end", err)
			_, err = ra.Size()
			sameErr("Size", err)
			_, err = ra.ReadAt(make([]byte, 1), end+10)
			sameErr("ReadAt after the apparent end", err)
		}
	}
}

// TestLazyReaderAtReadsTheFinalChunkOnlyWhenAReadReachesIt counts the
// reads of src: none in NewLazyReaderAt; ranges that end before the final
// chunk read only CiphertextRange and never the final chunk; a range that
// reaches it reads it last, after its other chunks, in order; and many
// goroutines that reach the end at once (reads, Size) read it once
// between them (run with -race).
func TestLazyReaderAtReadsTheFinalChunkOnlyWhenAReadReachesIt(t *testing.T) {
	key := testKey(t, "lazy")
	pt := randBytes(9*cs+333, 63)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	finalLo := hdr.Len() + 9*int64(cs+stream.TagSize)
	lastStart := int64(9 * cs)
	rec := &recordingReaderAt{r: bytes.NewReader(ct)}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		conc := 1 + rng.IntN(3)
		ra, err := stream.NewLazyReaderAt(rec, int64(len(ct)), hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		if rd := rec.take(); len(rd) != 0 {
			t.Fatalf("NewLazyReaderAt read %v, want nothing", rd)
		}
		off := rng.Int64N(lastStart)
		n := rng.Int64N(lastStart-off) + 1
		p := make([]byte, n)
		if m, err := ra.ReadAt(p, off); int64(m) != n || err != nil || !bytes.Equal(p, pt[off:off+n]) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v", n, off, m, err)
		}
		cOff, cLen, err := stream.CiphertextRange(hdr, off, n)
		if err != nil {
			t.Fatal(err)
		}
		rd := rec.take()
		for _, r := range rd {
			if r[0] < cOff || r[1] > cOff+cLen {
				t.Fatalf("ReadAt(%d bytes at %d) read [%d, %d), outside CiphertextRange [%d, %d)", n, off, r[0], r[1], cOff, cOff+cLen)
			}
		}
		if k := finalChunkReads(rd, finalLo, int64(len(ct))); k != 0 {
			t.Fatalf("ReadAt(%d bytes at %d), which ends before the final chunk, read it %d times", n, off, k)
		}
		ra.Close()
	}

	// A range into the final chunk, on one worker: its chunks are read
	// in order, the final one last (one Range request can serve them).
	ra := lazyOpen(t, rec, int64(len(ct)), hdr, stream.WithReaderConcurrency(1))
	off := lastStart - 3*cs - 7
	p := make([]byte, int64(len(pt))-off)
	if m, err := ra.ReadAt(p, off); m != len(p) || err != nil || !bytes.Equal(p, pt[off:]) {
		t.Fatalf("ReadAt to the end = %d, %v", m, err)
	}
	rd := rec.take()
	for i := 1; i < len(rd); i++ {
		if rd[i][0] < rd[i-1][1] {
			t.Fatalf("reads out of order: %v", rd)
		}
	}
	if len(rd) == 0 || rd[len(rd)-1] != [2]int64{finalLo, int64(len(ct))} || finalChunkReads(rd, finalLo, int64(len(ct))) != 1 {
		t.Fatalf("reads %v, want the final chunk [%d, %d) once, last", rd, finalLo, len(ct))
	}

	// Many goroutines reach the end at once: one read of the final chunk.
	for _, conc := range []int{1, 4} {
		ra := lazyOpen(t, rec, int64(len(ct)), hdr, stream.WithReaderConcurrency(conc))
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if g%4 == 0 {
					if size, err := ra.Size(); size != int64(len(pt)) || err != nil {
						errs <- errors.New("Size failed")
					}
					return
				}
				off := int64(len(pt)) - int64(g*700)
				p := make([]byte, g*700+5)
				m, err := ra.ReadAt(p, off)
				if m != g*700 || err != io.EOF || !bytes.Equal(p[:m], pt[off:]) {
					errs <- errors.New("ReadAt at the end failed")
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("conc=%d: %v", conc, err)
		}
		if k := finalChunkReads(rec.take(), finalLo, int64(len(ct))); k != 1 {
			t.Fatalf("conc=%d: 16 goroutines at the end read the final chunk %d times, want 1", conc, k)
		}
	}
}

// TestLazyReaderAtTamperedInnerChunk: a modified chunk before the final
// one fails with ErrAuth for every read that reaches it (the bytes before
// it delivered, the rest of p zeroed), without the final chunk being
// read; the chunks around it still read fine.
func TestLazyReaderAtTamperedInnerChunk(t *testing.T) {
	key := testKey(t, "lazy")
	pt := randBytes(8*cs+5, 64)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdrLen, c := layout(t, ct)
	tampered := flip(ct, hdrLen+5*len(c[0])+9)
	hdr := mustHeader(t, tampered)
	finalLo := int64(hdrLen + 8*len(c[0]))
	for _, conc := range []int{1, 4} {
		rec := &recordingReaderAt{r: bytes.NewReader(tampered)}
		ra := lazyOpen(t, rec, int64(len(tampered)), hdr, stream.WithReaderConcurrency(conc))
		p := bytes.Repeat([]byte{0xAA}, 7*cs)
		n, err := ra.ReadAt(p, 0)
		if !errors.Is(err, stream.ErrAuth) || n != 5*cs {
			t.Fatalf("conc=%d: ReadAt = %d, %v; want %d, ErrAuth", conc, n, err, 5*cs)
		}
		if !bytes.Equal(p[:n], pt[:n]) || !bytes.Equal(p[n:], make([]byte, len(p)-n)) {
			t.Fatalf("conc=%d: p holds wrong bytes before or non-zero bytes after n", conc)
		}
		if m, err := ra.ReadAt(make([]byte, 1), 5*cs+cs/2); m != 0 || !errors.Is(err, stream.ErrAuth) {
			t.Fatalf("conc=%d: one byte of the modified chunk: %d, %v; want ErrAuth", conc, m, err)
		}
		if k := finalChunkReads(rec.take(), finalLo, int64(len(tampered))); k != 0 {
			t.Fatalf("conc=%d: reads before the final chunk read it %d times", conc, k)
		}
		q := make([]byte, 2*cs)
		if m, err := ra.ReadAt(q, 6*cs); m != len(q) || err != nil || !bytes.Equal(q, pt[6*cs:8*cs]) {
			t.Fatalf("conc=%d: reading intact chunks after the bad one: %d, %v", conc, m, err)
		}
		if size, err := ra.Size(); size != int64(len(pt)) || err != nil {
			t.Fatalf("conc=%d: Size = %d, %v", conc, size, err)
		}
	}
}

// TestLazyReaderAtClose: after Close, ReadAt and an unverified Size fail
// with ErrClosed, and the ciphers are dropped.
func TestLazyReaderAtClose(t *testing.T) {
	key := testKey(t, "lazy")
	ct := encrypt(t, key, randBytes(3*cs, 65), stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	ra, err := stream.NewLazyReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ra.ReadAt(make([]byte, 10), 0); err != nil {
		t.Fatal(err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.ReadAt(make([]byte, 10), 0); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("ReadAt after Close = %v, want ErrClosed", err)
	}
	if _, err := ra.Size(); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Size after Close = %v, want ErrClosed", err)
	}
	if a := ra.CiphersForTest(); len(a) != 0 {
		t.Fatalf("%d ciphers left after Close", len(a))
	}
	if key.IsClosed() {
		t.Fatal("a LazyReaderAt closed a key it does not own")
	}
}
