package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

// recordingReaderAt records the byte ranges read from it.
type recordingReaderAt struct {
	r  io.ReaderAt
	mu sync.Mutex
	rd [][2]int64
}

func (r *recordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	r.rd = append(r.rd, [2]int64{off, off + int64(len(p))})
	r.mu.Unlock()
	return r.r.ReadAt(p, off)
}

func (r *recordingReaderAt) take() [][2]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	rd := r.rd
	r.rd = nil
	return rd
}

// TestCiphertextRange: reading plaintext [off, off+n) through a ReaderAt
// touches only the ciphertext range CiphertextRange names (the header and
// the final chunk were read once, up front), so that range is all an HTTP
// or S3 Range request must fetch.
func TestCiphertextRange(t *testing.T) {
	key := testKey(t, "range")
	pt := randBytes(9*cs+333, 51)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	rec := &recordingReaderAt{r: bytes.NewReader(ct)}
	ra, err := stream.NewReaderAt(rec, int64(len(ct)), hdr, key, stream.WithReaderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	init := rec.take()
	finalStart := hdr.Len() + 9*int64(cs+stream.TagSize)
	if len(init) != 1 || init[0] != [2]int64{finalStart, int64(len(ct))} {
		t.Fatalf("NewReaderAt read %v, want just the final chunk [%d, %d)", init, finalStart, len(ct))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(int64(len(pt)))
		n := rng.Int64N(int64(len(pt))-off) + 1
		if rng.IntN(3) == 0 {
			n = min(n, 100)
		}
		cOff, cLen, err := stream.CiphertextRange(hdr, off, n)
		if err != nil {
			t.Fatal(err)
		}
		// Fresh ReaderAt so that the one-chunk cache cannot hide reads.
		ra2, err := stream.NewReaderAt(rec, int64(len(ct)), hdr, key, stream.WithReaderConcurrency(1+rng.IntN(3)))
		if err != nil {
			t.Fatal(err)
		}
		rec.take()
		p := make([]byte, n)
		if m, err := ra2.ReadAt(p, off); int64(m) != n || (err != nil && err != io.EOF) || !bytes.Equal(p, pt[off:off+n]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, n, m, err)
		}
		ra2.Close()
		for _, r := range rec.take() {
			if r[0] < cOff || r[1] > cOff+cLen {
				t.Fatalf("ReadAt(off=%d, n=%d) read ciphertext [%d, %d) outside CiphertextRange [%d, %d)", off, n, r[0], r[1], cOff, cOff+cLen)
			}
		}
		// The range is tight: it starts at the first touched chunk and
		// ends with the last one.
		if first := off / cs; cOff != hdr.Len()+first*int64(cs+16) {
			t.Fatalf("cOff = %d for off %d", cOff, off)
		}
		if last := (off + n - 1) / cs; cLen != (last-off/cs+1)*int64(cs+16) {
			t.Fatalf("cLen = %d for off %d n %d", cLen, off, n)
		}
	}
	if _, _, err := stream.CiphertextRange(hdr, -1, 5); err == nil {
		t.Fatal("negative offset accepted")
	}
	if cOff, cLen, err := stream.CiphertextRange(hdr, 5*cs, 0); err != nil || cLen != 0 || cOff != hdr.Len()+5*int64(cs+16) {
		t.Fatalf("empty range = %d, %d, %v", cOff, cLen, err)
	}
}

// TestReaderAtConcurrent reads random ranges from many goroutines at once
// (run it with -race).
func TestReaderAtConcurrent(t *testing.T) {
	key := testKey(t, "ra-conc")
	pt := randBytes(40*cs+17, 52)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	for _, conc := range []int{1, 4} {
		ra, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 3))
				for range 200 {
					off := rng.Int64N(int64(len(pt)) + 10)
					n := rng.Int64N(3 * cs)
					p := make([]byte, n)
					m, err := ra.ReadAt(p, off)
					want := pt[min(off, int64(len(pt))):min(off+n, int64(len(pt)))]
					if m != len(want) || !bytes.Equal(p[:m], want) || (m < int(n) && err != io.EOF) || (m == int(n) && err != nil) {
						errs <- fmt.Errorf("ReadAt(off=%d, n=%d) = %d, %v; want %d bytes", off, n, m, err, len(want))
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
		ra.Close()
	}
}

// TestReaderAtTruncatedAndExtended: NewReaderAt authenticates the final
// chunk first.
func TestReaderAtTruncatedAndExtended(t *testing.T) {
	key := testKey(t, "ra-ends")
	ct := encrypt(t, key, randBytes(3*cs, 53), stream.WithChunkSize(cs)) // final chunk is full
	hdr := mustHeader(t, ct)
	open := func(b []byte) error {
		ra, err := stream.NewReaderAt(bytes.NewReader(b), int64(len(b)), hdr, key)
		if err == nil {
			ra.Close()
		}
		return err
	}
	if err := open(ct); err != nil {
		t.Fatal(err)
	}
	for _, extra := range []int{1, 15, 16, 17, cs + 16} {
		if err := open(append(bytes.Clone(ct), make([]byte, extra)...)); !chunkErrorIs(err, 2, stream.ReasonTrailingForTest) {
			t.Fatalf("%d bytes appended: %v, want a ChunkError: data after chunk 2", extra, err)
		}
	}
	// More than a chunk appended: the final chunk is no longer next to
	// the end, so it is an authentication failure of the last chunks.
	for _, extra := range []int{cs + 17, 3*cs + 100} {
		if err := open(append(bytes.Clone(ct), make([]byte, extra)...)); !errors.Is(err, stream.ErrAuth) {
			t.Fatalf("%d bytes appended: %v, want ErrAuth", extra, err)
		}
	}
	if err := open(ct[:len(ct)-(cs+16)]); err != stream.ErrTruncated {
		t.Fatalf("final chunk dropped: %v, want ErrTruncated", err)
	}
	if err := open(ct[:hdr.Len()-1]); err == nil {
		t.Fatal("a size smaller than the header was accepted")
	}
}
