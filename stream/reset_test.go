package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/stream"
)

// TestWriterReset: a Writer reused with Reset writes independent streams,
// each under the key given to Reset (never the previous one), with a
// fresh salt; a stream abandoned mid-way stays unreadable; a failed Reset
// is sticky until the next one.
func TestWriterReset(t *testing.T) {
	for _, conc := range []int{1, 2} {
		for _, codec := range []stream.Codec{stream.CodecNone, stream.CodecZstd} {
			t.Run(fmt.Sprintf("conc=%d/%v", conc, codec), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				k1, k2 := testKey(t, "reset1"), testKey(t, "reset2")
				pt1, pt2 := randBytes(7*cs+5, 71), randBytes(3*cs, 72)
				params2 := stream.HeaderParams{KeyRecord: []byte("record 2"), Partition: "p2"}
				opts := []stream.WriterOption{stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc), stream.WithCompression(codec)}

				var b1, b2, b3, b4 bytes.Buffer
				w, err := stream.NewWriter(&b1, k1, testParams, opts...)
				if err != nil {
					t.Fatal(err)
				}
				w.Write(pt1)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				salt1 := w.Header().Bytes()[12:44]
				if err := w.Reset(&b2, k2, params2); err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(w.Header().Bytes()[12:44], salt1) {
					t.Fatal("Reset reused the salt")
				}
				if _, err := w.Write(pt2); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if got, err := decrypt(t, k1, b1.Bytes()); err != nil || !bytes.Equal(got, pt1) {
					t.Fatalf("first stream: %v", err)
				}
				if got, err := decrypt(t, k2, b2.Bytes()); err != nil || !bytes.Equal(got, pt2) {
					t.Fatalf("stream after Reset: %v", err)
				}
				if _, err := decrypt(t, k1, b2.Bytes()); !errors.Is(err, stream.ErrAuth) {
					t.Fatalf("stream after Reset opens under the old key: %v", err)
				}
				if h := mustHeader(t, b2.Bytes()); h.Partition() != "p2" || h.Compression() != codec || h.ChunkSize() != cs {
					t.Fatalf("header after Reset: partition %q, codec %v, chunk %d", h.Partition(), h.Compression(), h.ChunkSize())
				}

				// Reset in the middle of a stream abandons it.
				if err := w.Reset(&b3, k1, testParams); err != nil {
					t.Fatal(err)
				}
				w.Write(pt1)
				if err := w.Reset(&b4, k1, testParams); err != nil {
					t.Fatal(err)
				}
				w.Write(pt2)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := decrypt(t, k1, b3.Bytes()); err == nil {
					t.Fatal("an abandoned stream decrypts")
				}
				if got, err := decrypt(t, k1, b4.Bytes()); err != nil || !bytes.Equal(got, pt2) {
					t.Fatalf("stream after a mid-stream Reset: %v", err)
				}

				// A failed write is sticky until Reset.
				if err := w.Reset(&failWriter{limit: 300}, k1, testParams); err != nil {
					t.Fatal(err)
				}
				w.Write(pt1)
				if err := w.Close(); !errors.Is(err, errSink) {
					t.Fatalf("Close = %v, want the sink's error", err)
				}
				var b5 bytes.Buffer
				if err := w.Reset(&b5, k2, testParams); err != nil {
					t.Fatal(err)
				}
				w.Write(pt1)
				if err := w.Close(); err != nil {
					t.Fatalf("Close after Reset from a failed stream: %v", err)
				}
				if got, err := decrypt(t, k2, b5.Bytes()); err != nil || !bytes.Equal(got, pt1) {
					t.Fatalf("stream after Reset from a failed stream: %v", err)
				}

				// A failed Reset is sticky.
				if err := w.Reset(nil, k1, testParams); err == nil {
					t.Fatal("Reset(nil dst) succeeded")
				}
				if _, err := w.Write([]byte("x")); err == nil {
					t.Fatal("Write after a failed Reset succeeded")
				}
				if err := w.Close(); err == nil {
					t.Fatal("Close after a failed Reset succeeded")
				}
			})
		}
	}
}

// TestReaderReset: a Reader reused with Reset reads independent streams,
// also after Close, across chunk sizes and codecs; each is verified under
// the key given to Reset.
func TestReaderReset(t *testing.T) {
	for _, conc := range []int{1, 2} {
		t.Run(fmt.Sprintf("conc=%d", conc), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			k1, k2 := testKey(t, "rreset1"), testKey(t, "rreset2")
			pt1, pt2, pt3 := randBytes(9*cs+1, 81), randBytes(2*cs, 82), randBytes(5*cs+9, 83)
			ct1 := encrypt(t, k1, pt1, stream.WithChunkSize(cs))
			ct2 := encrypt(t, k2, pt2, stream.WithChunkSize(2*cs))
			ct3 := encrypt(t, k1, pt3, stream.WithChunkSize(cs), stream.WithCompression(stream.CodecZstd))
			open := func(ct []byte) (io.Reader, *stream.Header) {
				src := bytes.NewReader(ct)
				h, err := stream.ReadHeader(src)
				if err != nil {
					t.Fatal(err)
				}
				return src, h
			}

			src, h := open(ct1)
			r, err := stream.NewReader(src, h, k1, stream.WithReaderConcurrency(conc))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(r, make([]byte, 2*cs)); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				ct  []byte
				pt  []byte
				key int
			}{{ct2, pt2, 2}, {ct3, pt3, 1}, {ct1, pt1, 1}} {
				src, h := open(c.ct)
				k := k1
				if c.key == 2 {
					k = k2
				}
				if err := r.Reset(src, h, k); err != nil {
					t.Fatal(err)
				}
				if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, c.pt) {
					t.Fatalf("after Reset: %d bytes, %v", len(got), err)
				}
			}
			r.Close()
			src, h = open(ct2)
			if err := r.Reset(src, h, k2); err != nil {
				t.Fatal(err)
			}
			if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt2) {
				t.Fatalf("Reset after Close: %v", err)
			}
			// The wrong key: ErrAuth from Reset and from every Read.
			src, h = open(ct2)
			if err := r.Reset(src, h, k1); !errors.Is(err, stream.ErrAuth) {
				t.Fatalf("Reset with the wrong key = %v", err)
			}
			if _, err := r.Read(make([]byte, 1)); !errors.Is(err, stream.ErrAuth) {
				t.Fatalf("Read after a failed Reset = %v", err)
			}
			r.Close()
		})
	}
}

// BenchmarkReset compares writing many small streams with one Writer and
// Reset against a NewWriter per stream (16 KiB each, zstd, one worker).
func BenchmarkReset(b *testing.B) {
	key := testKey(b, "bench")
	pt := make([]byte, 16<<10)
	for i := range pt {
		pt[i] = byte(i / 64)
	}
	opts := []stream.WriterOption{stream.WithWriterConcurrency(1), stream.WithCompression(stream.CodecZstd)}
	b.Run("NewWriter", func(b *testing.B) {
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			w, err := stream.NewWriter(io.Discard, key, testParams, opts...)
			if err != nil {
				b.Fatal(err)
			}
			w.Write(pt)
			w.Close()
		}
	})
	b.Run("Reset", func(b *testing.B) {
		w, err := stream.NewWriter(io.Discard, key, testParams, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(pt)))
		b.ReportAllocs()
		for b.Loop() {
			if err := w.Reset(io.Discard, key, testParams); err != nil {
				b.Fatal(err)
			}
			w.Write(pt)
			w.Close()
		}
	})
}
