package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const cs = stream.MinChunkSize // 4 KiB chunks keep the grids fast

// TestRoundTrip encrypts sizes around the chunk size with several write
// step sizes and worker counts, and checks every way of reading back.
func TestRoundTrip(t *testing.T) {
	lengths := []int{0, 1, cs - 1, cs, cs + 1, 2 * cs, 2*cs + 1, 5*cs + 123, 16 * cs}
	steps := []int{1, 512, cs - 1, cs, cs + 1, 3 * cs, 1 << 20}
	for _, conc := range []int{1, 2, 4} {
		key := testKey(t, "roundtrip")
		for _, length := range lengths {
			pt := randBytes(length, uint64(length))
			for _, step := range steps {
				if step == 1 && length > 2*cs+1 {
					continue // the one-byte steps are covered by the smaller sizes
				}
				t.Run(fmt.Sprintf("conc=%d/len=%d,step=%d", conc, length, step), func(t *testing.T) {
					var buf bytes.Buffer
					w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
					if err != nil {
						t.Fatal(err)
					}
					for p := pt; len(p) > 0; {
						n := min(step, len(p))
						m, err := w.Write(p[:n])
						if err != nil || m != n {
							t.Fatalf("Write = %d, %v; want %d, nil", m, err, n)
						}
						p = p[n:]
					}
					if err := w.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
					ct := buf.Bytes()
					checkSize(t, ct, w.Header(), length)
					checkAllReads(t, key, ct, pt, conc)
				})
			}
			// ReadFrom path, through io.Copy with a reader of odd read sizes.
			t.Run(fmt.Sprintf("conc=%d/len=%d,readfrom", conc, length), func(t *testing.T) {
				var buf bytes.Buffer
				w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
				if err != nil {
					t.Fatal(err)
				}
				n, err := io.Copy(w, onlyReader{iotest.HalfReader(bytes.NewReader(pt))})
				if err != nil || n != int64(length) {
					t.Fatalf("io.Copy = %d, %v", n, err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				want := encrypt(t, key, pt, stream.WithChunkSize(cs), stream.WithSaltForTest(w.Header().Bytes()[12:44]))
				if !bytes.Equal(buf.Bytes(), want) {
					t.Fatal("ReadFrom and Write produce different streams for the same salt")
				}
				checkAllReads(t, key, buf.Bytes(), pt, conc)
			})
		}
	}
}

// checkSize checks the size overhead: header + 16 bytes per chunk.
func checkSize(t *testing.T, ct []byte, hdr *stream.Header, length int) {
	t.Helper()
	chunks := max((length+hdr.ChunkSize()-1)/hdr.ChunkSize(), 1)
	if want := int(hdr.Len()) + length + chunks*stream.TagSize; len(ct) != want {
		t.Fatalf("ciphertext is %d bytes, want header %d + %d + %d chunks × 16 = %d", len(ct), hdr.Len(), length, chunks, want)
	}
}

// checkAllReads decrypts ct with Read (iotest.TestReader), WriteTo, and
// ReaderAt (iotest.TestReader through a SectionReader), each from normal,
// one-byte and half sources.
func checkAllReads(t *testing.T, sk securebuf.Secret, ct, pt []byte, conc int) {
	t.Helper()
	sources := map[string]func(io.Reader) io.Reader{
		"plain":   func(r io.Reader) io.Reader { return r },
		"onebyte": iotest.OneByteReader,
		"half":    iotest.HalfReader,
	}
	for name, wrap := range sources {
		src := wrap(bytes.NewReader(ct))
		hdr, err := stream.ReadHeader(src)
		if err != nil {
			t.Fatalf("%s: ReadHeader: %v", name, err)
		}
		r, err := stream.NewReader(src, hdr, sk, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatalf("%s: NewReader: %v", name, err)
		}
		if err := iotest.TestReader(r, pt); err != nil {
			t.Fatalf("%s: iotest.TestReader: %v", name, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// WriteTo.
	src := bytes.NewReader(ct)
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := stream.NewReader(src, hdr, sk, stream.WithReaderConcurrency(conc))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if n, err := r.WriteTo(onlyWriter{&out}); err != nil || n != int64(len(pt)) || !bytes.Equal(out.Bytes(), pt) {
		t.Fatalf("WriteTo = %d, %v; equal=%v", n, err, bytes.Equal(out.Bytes(), pt))
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read after WriteTo = %d, %v; want 0, EOF", n, err)
	}
	r.Close()

	// ReaderAt.
	ra, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, sk, stream.WithReaderConcurrency(conc))
	if err != nil {
		t.Fatalf("NewReaderAt: %v", err)
	}
	defer ra.Close()
	if ra.Size() != int64(len(pt)) {
		t.Fatalf("ReaderAt.Size = %d, want %d", ra.Size(), len(pt))
	}
	if err := iotest.TestReader(io.NewSectionReader(ra, 0, ra.Size()), pt); err != nil {
		t.Fatalf("ReaderAt: iotest.TestReader: %v", err)
	}
	all := make([]byte, len(pt)+10)
	n, err := ra.ReadAt(all, 0)
	if n != len(pt) || (len(pt) > 0 && err != io.EOF) || !bytes.Equal(all[:n], pt) {
		t.Fatalf("ReadAt(all) = %d, %v", n, err)
	}
}

func TestEmptyStreamIsOneEmptyFinalChunk(t *testing.T) {
	key := testKey(t, "empty")
	ct := encrypt(t, key, nil)
	hdr, err := stream.ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(len(ct)) - hdr.Len(); got != stream.TagSize {
		t.Fatalf("empty stream has %d payload bytes, want one empty chunk of %d", got, stream.TagSize)
	}
	pt, err := decrypt(t, key, ct)
	if err != nil || len(pt) != 0 {
		t.Fatalf("decrypt = %q, %v", pt, err)
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	text := bytes.Repeat([]byte(`{"ts":"2024-01-01T00:00:00Z","level":"info","msg":"request served","path":"/api/v1/items","status":200}`+"\n"), 2000)
	random := randBytes(7*cs+5, 7)
	for _, codec := range []stream.Codec{stream.CodecZstd, stream.CodecS2} {
		for _, conc := range []int{1, 3} {
			for name, pt := range map[string][]byte{"empty": nil, "one": {42}, "text": text, "random": random, "chunk": text[:cs]} {
				t.Run(fmt.Sprintf("%v/conc=%d/%s", codec, conc, name), func(t *testing.T) {
					key := testKey(t, "compress")
					var buf bytes.Buffer
					w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc), stream.WithCompression(codec))
					if err != nil {
						t.Fatal(err)
					}
					if _, err := io.Copy(w, onlyReader{iotest.HalfReader(bytes.NewReader(pt))}); err != nil {
						t.Fatal(err)
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					ct := buf.Bytes()
					hdr, err := stream.ParseHeader(ct)
					if err != nil {
						t.Fatal(err)
					}
					if hdr.Compression() != codec {
						t.Fatalf("header codec %v, want %v", hdr.Compression(), codec)
					}
					if name == "text" && len(ct) > len(pt)/3 {
						t.Fatalf("text compressed to %d of %d bytes", len(ct), len(pt))
					}
					for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader, iotest.HalfReader} {
						src := wrap(bytes.NewReader(ct))
						h, err := stream.ReadHeader(src)
						if err != nil {
							t.Fatal(err)
						}
						r, err := stream.NewReader(src, h, key, stream.WithReaderConcurrency(conc))
						if err != nil {
							t.Fatal(err)
						}
						if err := iotest.TestReader(r, pt); err != nil {
							t.Fatal(err)
						}
						r.Close()
					}
					if _, err := stream.NewReaderAt(bytes.NewReader(ct), int64(len(ct)), hdr, key); classOf(t, err) != stream.ErrUnsupported {
						t.Fatalf("NewReaderAt on a compressed stream: %v, want ErrUnsupported", err)
					}
					if _, _, err := stream.CiphertextRange(hdr, 0, 10); classOf(t, err) != stream.ErrUnsupported {
						t.Fatalf("CiphertextRange on a compressed stream: %v, want ErrUnsupported", err)
					}
					// Truncation and tampering are caught in compressed streams too.
					if len(pt) > 0 {
						for cut := int(hdr.Len()); cut < len(ct); cut += max(1, (len(ct)-int(hdr.Len()))/50) {
							if _, err := decrypt(t, key, ct[:cut]); !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, stream.ErrAuth) {
								t.Fatalf("cut at %d: %v", cut, err)
							}
						}
						bad := bytes.Clone(ct)
						bad[len(bad)-1] ^= 1
						if _, err := decrypt(t, key, bad); !errors.Is(err, stream.ErrAuth) {
							t.Fatalf("flipped last byte: %v, want ErrAuth", err)
						}
						if _, err := decrypt(t, key, append(bytes.Clone(ct), 0, 0, 0, 17)); !errors.Is(err, stream.ErrAuth) {
							t.Fatalf("appended frame: %v, want ErrAuth", err)
						}
					}
				})
			}
		}
	}
}
