package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// TestWriterFailsPartway: a destination that fails after n bytes makes
// Write, ReadFrom or Close return its error; the error is sticky, nothing
// leaks, and the bytes written are a prefix that no Reader accepts.
func TestWriterFailsPartway(t *testing.T) {
	key := testKey(t, "failwriter")
	pt := randBytes(10*cs+3, 21)
	full := len(encrypt(t, key, pt, stream.WithChunkSize(cs)))
	for _, conc := range []int{1, 2, 4} {
		for _, limit := range []int{0, 50, 200, 200 + cs, full / 2, full - 1} {
			for _, useReadFrom := range []bool{false, true} {
				t.Run(fmt.Sprintf("conc=%d/limit=%d/readfrom=%v", conc, limit, useReadFrom), func(t *testing.T) {
					defer goleak.VerifyNone(t)
					dst := &failWriter{limit: limit}
					w, err := stream.NewWriter(dst, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
					if err != nil {
						if !errors.Is(err, errSink) {
							t.Fatalf("NewWriter: %v, want the sink's error", err)
						}
						return
					}
					if useReadFrom {
						_, err = w.ReadFrom(onlyReader{bytes.NewReader(pt)})
					} else {
						for p := pt; len(p) > 0 && err == nil; p = p[min(len(p), 1000):] {
							_, err = w.Write(p[:min(len(p), 1000)])
						}
					}
					cerr := w.Close()
					if !errors.Is(err, errSink) && !errors.Is(cerr, errSink) {
						t.Fatalf("write err %v, close err %v; want the sink's error", err, cerr)
					}
					if !errors.Is(cerr, errSink) {
						t.Fatalf("Close = %v after a failed write, want the sticky sink error", cerr)
					}
					if _, err := w.Write([]byte("x")); !errors.Is(err, errSink) {
						t.Fatalf("Write after failure = %v, want the sticky sink error", err)
					}
					if err := w.Close(); !errors.Is(err, errSink) {
						t.Fatalf("second Close = %v", err)
					}
					if _, err := decrypt(t, key, dst.buf.Bytes()); err == nil {
						t.Fatal("the partial output decrypts")
					}
				})
			}
		}
	}
}

// TestWorkerPanicBecomesError: a panic while sealing or opening a chunk is
// returned as an error and leaves no goroutine behind.
func TestWorkerPanicBecomesError(t *testing.T) {
	key := testKey(t, "panic")
	pt := randBytes(8*cs, 22)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	wHook, rHook := stream.ChunkHookForTest(func(idx uint64) {
		if idx == 3 {
			panic("boom")
		}
	})
	for _, conc := range []int{1, 3} {
		t.Run(fmt.Sprintf("conc=%d", conc), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc), wHook)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(pt)
			cerr := w.Close()
			if cerr == nil || !strings.Contains(cerr.Error(), "panic") {
				t.Fatalf("writer: Write %v, Close %v; want a panic error", werr, cerr)
			}
			out, err := decrypt(t, key, ct, stream.WithReaderConcurrency(conc), rHook)
			if err == nil || !strings.Contains(err.Error(), "panic") {
				t.Fatalf("reader: %v, want a panic error", err)
			}
			if !bytes.Equal(out, pt[:3*cs]) {
				t.Fatalf("reader released %d bytes, want the %d before the failing chunk", len(out), 3*cs)
			}
		})
	}
}

// TestNoLeaks: readers and writers that are closed early, read to the end,
// or fail leave no goroutine behind.
func TestNoLeaks(t *testing.T) {
	defer goleak.VerifyNone(t)
	key := testKey(t, "leaks")
	pt := randBytes(20*cs, 23)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs), stream.WithWriterConcurrency(4))
	for _, conc := range []int{2, 4} {
		// Closed after reading one chunk.
		src := bytes.NewReader(ct)
		hdr, _ := stream.ReadHeader(src)
		r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, make([]byte, cs+1)); err != nil {
			t.Fatal(err)
		}
		r.Close()
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("Read after Close = %v, want ErrClosed", err)
		}
		// Read to the end without Close: the workers are already gone
		// (checked by the deferred VerifyNone); Close anyway for the
		// buffers.
		src = bytes.NewReader(ct)
		hdr, _ = stream.ReadHeader(src)
		r, err = stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("ReadAll: %v", err)
		}
		if err := goleak.Find(); err != nil {
			t.Fatalf("workers still running at EOF before Close: %v", err)
		}
		r.Close()
		// A writer abandoned after a write error is cleaned up by Close.
		w, err := stream.NewWriter(&failWriter{limit: 1000}, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		w.Close()
	}
}

func TestCloseContract(t *testing.T) {
	key := testKey(t, "close")
	var buf bytes.Buffer
	w, err := stream.NewWriter(&buf, key, testParams)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close = %v, want the first result (nil)", err)
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Write after Close = %v, want ErrClosed", err)
	}
	if _, err := w.ReadFrom(strings.NewReader("x")); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("ReadFrom after Close = %v, want ErrClosed", err)
	}
	ct := buf.Bytes()
	hdr := mustHeader(t, ct)
	ra, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key)
	if err != nil {
		t.Fatal(err)
	}
	ra.Close()
	if _, err := ra.ReadAt(make([]byte, 1), 0); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("ReadAt after Close = %v, want ErrClosed", err)
	}
	if key.IsClosed() {
		t.Fatal("a stream closed a key it does not own")
	}
}

// TestStreamNeverClosesTheKey: the caller owns the data key. After a
// Writer, Reader or ReaderAt is closed, fails, reaches the end of its
// stream or is Reset, and after a constructor fails, the key it was given
// is open and still encrypts and decrypts.
func TestStreamNeverClosesTheKey(t *testing.T) {
	k, other := testKey(t, "caller"), testKey(t, "caller other")
	pt := randBytes(3*cs+9, 1)
	usable := func(key securebuf.Secret, after string) {
		t.Helper()
		if key.IsClosed() {
			t.Fatalf("%s closed the caller's key", after)
		}
		want := randBytes(cs+1, 2)
		if got, err := decrypt(t, key, encrypt(t, key, want, stream.WithChunkSize(cs))); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("after %s the key no longer round-trips: %v", after, err)
		}
	}
	ct := encrypt(t, k, pt, stream.WithChunkSize(cs))
	usable(k, "Writer.Close")

	if _, err := stream.NewWriter(&failWriter{limit: 3}, k, testParams); !errors.Is(err, errSink) {
		t.Fatalf("NewWriter on a failing destination: %v", err)
	}
	usable(k, "a NewWriter that failed to write the header")
	if _, err := stream.NewWriter(io.Discard, k, stream.HeaderParams{}); !errors.Is(err, stream.ErrInvalidArgument) {
		t.Fatalf("NewWriter without a key record: %v", err)
	}
	usable(k, "a NewWriter that refused its arguments")
	for _, conc := range []int{1, 2} {
		w, err := stream.NewWriter(&failWriter{limit: 500}, k, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		if err := w.Close(); !errors.Is(err, errSink) {
			t.Fatalf("conc=%d: Close = %v, want the sink's error", conc, err)
		}
		usable(k, "a Writer whose destination failed")
		if err := w.Reset(io.Discard, other, testParams); err != nil {
			t.Fatal(err)
		}
		w.Write(pt)
		usable(k, "Writer.Reset to another key")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		usable(other, "Writer.Close after Reset")
	}

	open := func(ct []byte, key securebuf.Secret, conc int) (*stream.Reader, error) {
		src := bytes.NewReader(ct)
		hdr, err := stream.ReadHeader(src)
		if err != nil {
			t.Fatal(err)
		}
		return stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc))
	}
	for _, conc := range []int{1, 2} {
		r, err := open(ct, k, conc)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("conc=%d: ReadAll: %v", conc, err)
		}
		usable(k, "a Reader that reached the end of its stream")
		r.Close()
		usable(k, "Reader.Close")

		r, err = open(flip(ct, len(ct)-1), k, conc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); !errors.Is(err, stream.ErrAuth) {
			t.Fatalf("conc=%d: tampered stream: %v", conc, err)
		}
		usable(k, "a Reader that failed")
		src := bytes.NewReader(ct)
		hdr, _ := stream.ReadHeader(src)
		if err := r.Reset(src, hdr, other); !errors.Is(err, stream.ErrAuth) {
			t.Fatalf("conc=%d: Reset with the wrong key: %v", conc, err)
		}
		usable(k, "Reader.Reset")
		usable(other, "a Reader.Reset that failed")
		r.Close()
	}
	if _, err := open(ct, other, 1); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("NewReader with the wrong key: %v", err)
	}
	usable(other, "a NewReader that failed")

	hdr := mustHeader(t, ct)
	ra, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, k)
	if err != nil {
		t.Fatal(err)
	}
	ra.Close()
	usable(k, "ReaderAt.Close")
	if _, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct))-1, hdr, k); err == nil {
		t.Fatal("NewReaderAt on a truncated stream succeeded")
	}
	usable(k, "a NewReaderAt that failed")
}

// TestOptionsValidate: every option refuses an argument out of range with
// ErrInvalidArgument, as do header parameters that do not fit the header;
// good ones round-trip through the header. (A WriterOption given to
// NewReader, or a ReaderOption to NewWriter, does not compile.)
func TestOptionsValidate(t *testing.T) {
	key := testKey(t, "opts")
	bad := map[string]stream.WriterOption{
		"chunk 3":             stream.WithChunkSize(3),
		"chunk not pow2":      stream.WithChunkSize(5000),
		"chunk too small":     stream.WithChunkSize(2048),
		"chunk too big":       stream.WithChunkSize(32 << 20),
		"concurrency -1":      stream.WithWriterConcurrency(-1),
		"concurrency 1025":    stream.WithWriterConcurrency(1025),
		"codec 9":             stream.WithCompression(stream.Codec(9)),
		"reserved key":        stream.WithMetadata(map[string]string{"compression": "none"}),
		"empty key":           stream.WithMetadata(map[string]string{"": "x"}),
		"key with space":      stream.WithMetadata(map[string]string{"a b": "x"}),
		"long key":            stream.WithMetadata(map[string]string{strings.Repeat("k", 65): "x"}),
		"long value":          stream.WithMetadata(map[string]string{"k": strings.Repeat("v", 4097)}),
		"invalid utf8 value":  stream.WithMetadata(map[string]string{"k": "\xff"}),
		"invalid utf8 ctype":  stream.WithContentType("\xfe"),
		"too many meta pairs": stream.WithMetadata(manyPairs(63)),
	}
	for name, opt := range bad {
		if _, err := stream.NewWriter(io.Discard, key, testParams, opt); classOf(t, err) != stream.ErrInvalidArgument {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	ct := encrypt(t, key, []byte("x"))
	for _, n := range []int{-1, 1025} {
		src := bytes.NewReader(ct)
		hdr := mustHeader(t, ct)
		if _, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(n)); classOf(t, err) != stream.ErrInvalidArgument {
			t.Errorf("NewReader, concurrency %d: err = %v, want ErrInvalidArgument", n, err)
		}
		if _, err := stream.NewReaderAt(src, int64(len(ct)), hdr, key, stream.WithReaderConcurrency(n)); classOf(t, err) != stream.ErrInvalidArgument {
			t.Errorf("NewReaderAt, concurrency %d: err = %v, want ErrInvalidArgument", n, err)
		}
	}
	params := map[string]stream.HeaderParams{
		"no key record":   {Partition: "p"},
		"no partition":    {KeyRecord: []byte("r")},
		"huge key record": {KeyRecord: make([]byte, stream.MaxKeyRecordSize+1), Partition: "p"},
		"bad partition":   {KeyRecord: []byte("r"), Partition: "\xff"},
		"long partition":  {KeyRecord: []byte("r"), Partition: strings.Repeat("p", stream.MaxPartitionSize+1)},
	}
	for name, p := range params {
		if _, err := stream.NewWriter(io.Discard, key, p); classOf(t, err) != stream.ErrInvalidArgument {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", name, err)
		}
	}
	// Good options round-trip through the header.
	var buf bytes.Buffer
	w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(1<<20), stream.WithWriterConcurrency(0),
		stream.WithContentType("application/json"), stream.WithMetadata(map[string]string{"owner": "ops", "x-id": "42"}))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	h := mustHeader(t, buf.Bytes())
	if h.ChunkSize() != 1<<20 || h.ContentType() != "application/json" || h.Metadata()["owner"] != "ops" ||
		h.Metadata()["x-id"] != "42" || len(h.Metadata()) != 2 || h.Partition() != "p1" ||
		!bytes.Equal(h.KeyRecord(), testParams.KeyRecord) || h.Compression() != stream.CodecNone {
		t.Fatalf("header fields did not round-trip: %+v", h)
	}
	if c, err := stream.ParseCodec("s2"); err != nil || c != stream.CodecS2 || c.String() != "s2" {
		t.Fatalf("ParseCodec(s2) = %v, %v", c, err)
	}
	if _, err := stream.ParseCodec("gzip"); err == nil {
		t.Fatal("ParseCodec(gzip) succeeded")
	}
}

func manyPairs(n int) map[string]string {
	m := make(map[string]string)
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	return m
}

// TestReaderSourceErrors: an error from src reaches the caller after the
// chunks read before it, and is sticky.
func TestReaderSourceErrors(t *testing.T) {
	key := testKey(t, "srcerr")
	pt := randBytes(5*cs, 31)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	errSrc := errors.New("source failed")
	for _, conc := range []int{1, 2} {
		hdrLen := int(mustHeader(t, ct).Len())
		src := io.MultiReader(bytes.NewReader(ct[:hdrLen+2*(cs+16)+5]), iotest.ErrReader(errSrc))
		hdr, err := stream.ReadHeader(src)
		if err != nil {
			t.Fatal(err)
		}
		r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if !errors.Is(err, errSrc) || !bytes.Equal(got, pt[:len(got)]) || len(got) > 2*cs {
			t.Fatalf("conc=%d: ReadAll = %d bytes, %v", conc, len(got), err)
		}
		if _, err := r.Read(make([]byte, 10)); !errors.Is(err, errSrc) {
			t.Fatalf("conc=%d: error not sticky: %v", conc, err)
		}
		r.Close()
	}
}
