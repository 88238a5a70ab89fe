package stream_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

// addVectorSeeds seeds f with the golden vectors of testdata/stream (and
// a few cut and flipped variants of them).
func addVectorSeeds(f *testing.F) {
	raw, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var vectors []vector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		f.Fatal(err)
	}
	for _, v := range vectors {
		ct, err := os.ReadFile(filepath.Join(vectorDir, v.File))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ct)
		f.Add(ct[:len(ct)/2])
		f.Add(flip(ct, len(ct)/3))
	}
	f.Add([]byte{})
	f.Add([]byte{0x89, 'E', 'P', '\n', 1, 1, 16, 0, 0, 0, 0, 86})
}

// FuzzReadHeader: the parser never panics, reads at most MaxHeaderSize
// bytes, and a header it accepts parses again from its own bytes to the
// same fields.
func FuzzReadHeader(f *testing.F) {
	addVectorSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		src := bytes.NewReader(b)
		h, err := stream.ReadHeader(src)
		consumed := len(b) - src.Len()
		if consumed > stream.MaxHeaderSize {
			t.Fatalf("ReadHeader consumed %d bytes", consumed)
		}
		h2, err2 := stream.ParseHeader(b)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("ReadHeader err %v, ParseHeader err %v", err, err2)
		}
		if err != nil {
			if c := classOf(t, err); c != stream.ErrUnsupported && c != stream.ErrAuth && c != stream.ErrTruncated {
				t.Fatalf("ReadHeader: %v, of class %v", err, c)
			}
			return
		}
		if int64(consumed) != h.Len() {
			t.Fatalf("consumed %d bytes, header length %d", consumed, h.Len())
		}
		again, err := stream.ParseHeader(h.Bytes())
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		for _, x := range []*stream.Header{h2, again} {
			if x.Partition() != h.Partition() || !bytes.Equal(x.KeyRecord(), h.KeyRecord()) || x.ChunkSize() != h.ChunkSize() ||
				x.Compression() != h.Compression() || x.ContentType() != h.ContentType() || len(x.Metadata()) != len(h.Metadata()) {
				t.Fatal("fields differ between parses")
			}
		}
	})
}

// FuzzReader decrypts arbitrary bytes with the golden vectors' key. It
// must never panic or hang, only release plaintext of chunks that
// authenticate, and when a whole stream decrypts, the writer must produce
// exactly those bytes again from the plaintext (a valid ciphertext is
// unique: nothing about it is malleable).
func FuzzReader(f *testing.F) {
	addVectorSeeds(f)
	key, _ := hex.DecodeString(vectorDefs()[0].Key)
	f.Fuzz(func(t *testing.T, b []byte) {
		k := newSecret(t, key)
		for _, conc := range []int{1, 2} {
			src := bytes.NewReader(b)
			hdr, err := stream.ReadHeader(src)
			if err != nil {
				return
			}
			r, err := stream.NewReader(src, hdr, k, stream.WithReaderConcurrency(conc))
			if err != nil {
				if !errors.Is(err, stream.ErrAuth) {
					t.Fatalf("NewReader: %v", err)
				}
				return
			}
			pt, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				if len(pt)%hdr.ChunkSize() != 0 {
					t.Fatalf("released %d bytes, not whole chunks, before %v", len(pt), err)
				}
				continue
			}
			if hdr.Compression() != stream.CodecNone {
				continue // the compressor's output is not canonical
			}
			opts := []stream.WriterOption{stream.WithSaltForTest(hdr.Bytes()[12:44]), stream.WithChunkSize(hdr.ChunkSize()), stream.WithWriterConcurrency(1)}
			if hdr.ContentType() != "" {
				opts = append(opts, stream.WithContentType(hdr.ContentType()))
			}
			if m := hdr.Metadata(); m != nil {
				opts = append(opts, stream.WithMetadata(m))
			}
			var out bytes.Buffer
			w, err := stream.NewWriter(&out, k, stream.HeaderParams{KeyRecord: hdr.KeyRecord(), Partition: hdr.Partition()}, opts...)
			if err != nil {
				t.Fatal(err)
			}
			w.Write(pt)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), b) {
				t.Fatalf("a %d-byte input decrypts, but re-encrypting gives different bytes", len(b))
			}
		}
	})
}
