package stream_test

import (
	"bytes"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/stream"
)

// requireWipeable skips where the standard library's AES-GCM state cannot
// be wiped (aesgcm: every platform but s390x can).
func requireWipeable(t *testing.T) {
	t.Helper()
	if !aesgcm.Wipeable() {
		testenv.NotApplicable(t, "the standard library's AES-GCM state holds pointers on "+runtime.GOARCH+": ciphers are not wiped (internal/aesgcm fails on amd64 and arm64 if so)")
	}
}

// holding returns the stream's ciphers now, after checking that there are
// some and that none is wiped.
func holding(t *testing.T, what string, held []cipher.AEAD) []cipher.AEAD {
	t.Helper()
	if len(held) == 0 {
		t.Fatalf("%s: the stream holds no cipher", what)
	}
	for i, a := range held {
		if aesgcm.Wiped(a) {
			t.Fatalf("%s: cipher %d is wiped while the stream is in use", what, i)
		}
	}
	return held
}

// wiped checks that every one of cs is all zeros, and that the stream
// holds none any more (now).
func wiped(t *testing.T, what string, held, now []cipher.AEAD) {
	t.Helper()
	for i, a := range held {
		if !aesgcm.Wiped(a) {
			t.Errorf("%s: cipher %d of %d is not wiped", what, i, len(held))
		}
	}
	if len(now) != 0 {
		t.Errorf("%s: the stream still holds %d ciphers", what, len(now))
	}
}

// A Writer's ciphers (epoch 0's, and those of the epochs it crosses) are
// wiped by Close, after which Write and ReadFrom return ErrClosed and
// nothing more reaches dst.
func TestWriterWipesCiphersOnClose(t *testing.T) {
	requireWipeable(t)
	key := testKey(t, "wipe-w")
	wFirst, _ := stream.FirstIndexForTest(1<<stream.EpochShift - 2)
	for _, tc := range []struct {
		name string
		opts []stream.WriterOption
	}{
		{"1 worker", []stream.WriterOption{stream.WithChunkSize(cs), stream.WithWriterConcurrency(1)}},
		{"2 workers", []stream.WriterOption{stream.WithChunkSize(cs), stream.WithWriterConcurrency(2)}},
		{"across an epoch", []stream.WriterOption{stream.WithChunkSize(cs), stream.WithWriterConcurrency(2), wFirst}},
	} {
		var dst bytes.Buffer
		w, err := stream.NewWriter(&dst, key, testParams, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(randBytes(6*cs+5, 1)); err != nil {
			t.Fatal(err)
		}
		held := holding(t, tc.name, w.CiphersForTest())
		if tc.name == "across an epoch" && len(held) != 2 {
			t.Fatalf("%s: %d ciphers, want 2 (epochs 0 and 1)", tc.name, len(held))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		wiped(t, tc.name, held, w.CiphersForTest())
		n := dst.Len()
		if _, err := w.Write([]byte("more")); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("%s: Write after Close = %v, want ErrClosed", tc.name, err)
		}
		if _, err := w.ReadFrom(bytes.NewReader(make([]byte, 3*cs))); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("%s: ReadFrom after Close = %v, want ErrClosed", tc.name, err)
		}
		if dst.Len() != n {
			t.Errorf("%s: %d bytes reached dst after Close", tc.name, dst.Len()-n)
		}
	}
}

// A Writer that fails for good (dst fails) has wiped its ciphers by the
// time the error is returned; Reset wipes the abandoned stream's ciphers
// and the new stream gets working ones.
func TestWriterWipesCiphersOnFailureAndReset(t *testing.T) {
	requireWipeable(t)
	key := testKey(t, "wipe-w-fail")
	fw := &failWriter{limit: 3 * cs}
	w, err := stream.NewWriter(fw, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	cs0 := holding(t, "before the failure", w.CiphersForTest())
	_, werr := w.Write(randBytes(20*cs, 2))
	if cerr := w.Close(); !errors.Is(werr, errSink) && !errors.Is(cerr, errSink) {
		t.Fatalf("Write = %v, Close = %v; want the sink's error", werr, cerr)
	}
	wiped(t, "after the failure", cs0, w.CiphersForTest())

	var first, second bytes.Buffer
	if err := w.Reset(&first, key, testParams); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(randBytes(5*cs, 3)); err != nil {
		t.Fatal(err)
	}
	cs1 := holding(t, "first stream", w.CiphersForTest())
	pt := randBytes(5*cs+1, 4)
	if err := w.Reset(&second, key, testParams); err != nil {
		t.Fatal(err)
	}
	wiped(t, "abandoned by Reset", cs1, nil)
	cs2 := holding(t, "second stream", w.CiphersForTest())
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	wiped(t, "second stream closed", cs2, w.CiphersForTest())
	if got, err := decrypt(t, key, second.Bytes()); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("the stream after Reset decrypts to %d bytes, %v; want the %d written", len(got), err, len(pt))
	}
}

// A Reader's ciphers are wiped at the end of the stream, when a chunk
// fails, by Close and by Reset; a Read after Close returns ErrClosed.
func TestReaderWipesCiphers(t *testing.T) {
	requireWipeable(t)
	key := testKey(t, "wipe-r")
	pt := randBytes(9*cs+3, 5)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	bad := bytes.Clone(ct)
	bad[len(bad)-cs] ^= 1 // in the last full chunk
	open := func(ct []byte) *stream.Reader {
		t.Helper()
		src := bytes.NewReader(ct)
		hdr, err := stream.ReadHeader(src)
		if err != nil {
			t.Fatal(err)
		}
		r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(2))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	r := open(ct)
	cs0 := holding(t, "reading", r.CiphersForTest())
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("ReadAll = %d bytes, %v", len(got), err)
	}
	wiped(t, "at the end of the stream", cs0, r.CiphersForTest())
	r.Close()

	r = open(bad)
	cs1 := holding(t, "reading a modified stream", r.CiphersForTest())
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("reading a modified stream: %v, want ErrAuth", err)
	}
	wiped(t, "after a failed chunk", cs1, r.CiphersForTest())
	r.Close()

	r = open(ct)
	buf := make([]byte, 100)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	cs2 := holding(t, "partway", r.CiphersForTest())
	src := bytes.NewReader(ct)
	hdr, _ := stream.ReadHeader(src)
	if err := r.Reset(src, hdr, key); err != nil {
		t.Fatal(err)
	}
	wiped(t, "abandoned by Reset", cs2, nil)
	cs3 := holding(t, "after Reset", r.CiphersForTest())
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	r.Close()
	wiped(t, "after Close", cs3, r.CiphersForTest())
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Read after Close = %d, %v; want ErrClosed", n, err)
	}
}

// A ReaderAt's ciphers are wiped by Close, even while other goroutines
// are in ReadAt: every ReadAt either returns the right plaintext or fails
// with ErrClosed, with the right bytes before the failure and, after them,
// zeros (closed partway) or p as it was (closed before the call), never
// bytes opened with a wiped cipher (run with -race).
func TestReaderAtWipesCiphersOnClose(t *testing.T) {
	requireWipeable(t)
	key := testKey(t, "wipe-ra")
	pt := randBytes(40*cs+17, 6)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdr := mustHeader(t, ct)
	for _, conc := range []int{1, 4} {
		ra, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		cs0 := holding(t, "open", ra.CiphersForTest())
		var wg sync.WaitGroup
		var started sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			started.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				for i := 0; ; i++ {
					if i == 1 {
						started.Done() // one read done: Close may come
					}
					off := rng.Int64N(int64(len(pt)))
					n := 1 + rng.Int64N(4*cs)
					p := bytes.Repeat([]byte{0xAA}, int(n))
					m, err := ra.ReadAt(p, off)
					want := pt[off:min(off+n, int64(len(pt)))]
					switch {
					case errors.Is(err, stream.ErrClosed):
						// Closed before it began: p untouched; partway: the
						// rest of the range zeroed. Past the end of the
						// plaintext, p is never touched.
						rest, past := p[m:len(want)], p[len(want):]
						zeros, untouched := make([]byte, len(rest)), bytes.Repeat([]byte{0xAA}, len(rest))
						if !bytes.Equal(p[:m], want[:m]) || (!bytes.Equal(rest, zeros) && !bytes.Equal(rest, untouched)) ||
							!bytes.Equal(past, bytes.Repeat([]byte{0xAA}, len(past))) {
							errs <- fmt.Errorf("ReadAt(off=%d, n=%d) failing with ErrClosed left other bytes than %d good ones and then zeros or p as it was", off, n, m)
						}
						if i == 0 {
							started.Done()
						}
						return
					case m != len(want) || !bytes.Equal(p[:m], want) || (err != nil && err != io.EOF):
						errs <- fmt.Errorf("ReadAt(off=%d, n=%d) = %d, %v; want %d right bytes", off, n, m, err, len(want))
						if i == 0 {
							started.Done()
						}
						return
					}
				}
			}()
		}
		started.Wait()
		ra.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		wiped(t, fmt.Sprintf("%d workers, after Close", conc), cs0, ra.CiphersForTest())
		if _, err := ra.ReadAt(make([]byte, 10), 0); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("ReadAt after Close = %v, want ErrClosed", err)
		}
	}
}
