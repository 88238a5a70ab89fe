package stream_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/stream")

const vectorDir = "../testdata/stream"

// vector is one entry of testdata/stream/vectors.json.
type vector struct {
	Name        string            `json:"name"`
	Comment     string            `json:"comment"`
	Key         string            `json:"key_hex"`
	Salt        string            `json:"salt_hex"`
	ChunkSize   int               `json:"chunk_size"`
	Compression string            `json:"compression"`
	KeyRecord   string            `json:"key_record"`
	Partition   string            `json:"partition"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	PlainLen    int               `json:"plaintext_len"`
	PlainRule   string            `json:"plaintext_rule"`
	File        string            `json:"file"`
	SHA256      string            `json:"sha256"`
	Exact       bool              `json:"encode_exact"`
}

// vectorPlaintext: byte i is i mod 251 (a period prime to every chunk size).
func vectorPlaintext(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

func vectorDefs() []vector {
	key := "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	salt := "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	rec := `{"Created":1700000000,"Key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","ParentKeyMeta":{"KeyId":"_IK_partition-1_service_product","Created":1700000000}}`
	v := func(name, comment string, chunk, n int, mod func(*vector)) vector {
		x := vector{Name: name, Comment: comment, Key: key, Salt: salt, ChunkSize: chunk, Compression: "none",
			KeyRecord: rec, Partition: "partition-1", PlainLen: n, PlainRule: "byte i = i mod 251",
			File: name + ".bin", Exact: true}
		if mod != nil {
			mod(&x)
		}
		return x
	}
	return []vector{
		v("empty", "empty stream: one empty final chunk (index 0, last=1)", 4096, 0, nil),
		v("one-byte", "one byte", 4096, 1, nil),
		v("chunk-minus-one", "one short final chunk", 4096, 4095, nil),
		v("one-full-chunk", "exactly one chunk: the final chunk is full", 4096, 4096, nil),
		v("two-chunks-plus-one", "two full chunks and a one-byte final chunk", 4096, 8193, nil),
		v("default-chunk-metadata", "64 KiB chunks, content type and user metadata", 65536, 1000, func(x *vector) {
			x.ContentType = "application/octet-stream"
			x.Metadata = map[string]string{"owner": "team-a", "x-trace": "0123"}
		}),
		v("s2-compressed", "S2 compression, framed chunks (decode-only: compressor output may change between library versions)", 4096, 10000, func(x *vector) {
			x.Compression = "s2"
			x.Exact = false
		}),
		v("zstd-compressed", "zstd compression, framed chunks (decode-only)", 4096, 10000, func(x *vector) {
			x.Compression = "zstd"
			x.Exact = false
		}),
	}
}

func (v vector) options(t testing.TB) []stream.WriterOption {
	salt, _ := hex.DecodeString(v.Salt)
	codec, err := stream.ParseCodec(v.Compression)
	if err != nil {
		t.Fatal(err)
	}
	opts := []stream.WriterOption{stream.WithSaltForTest(salt), stream.WithChunkSize(v.ChunkSize), stream.WithCompression(codec), stream.WithWriterConcurrency(1)}
	if v.ContentType != "" {
		opts = append(opts, stream.WithContentType(v.ContentType))
	}
	if v.Metadata != nil {
		opts = append(opts, stream.WithMetadata(v.Metadata))
	}
	return opts
}

func (v vector) encrypt(t testing.TB) []byte {
	k, _ := hex.DecodeString(v.Key)
	var buf bytes.Buffer
	w, err := stream.NewWriter(&buf, newSecret(t, k), stream.HeaderParams{KeyRecord: []byte(v.KeyRecord), Partition: v.Partition}, v.options(t)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(vectorPlaintext(v.PlainLen)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGoldenVectors checks that fixed key, salt and input give the stored
// bytes, that this package decrypts them, and that an independent decoder
// written from docs/FORMAT.md with the standard library alone does too.
func TestGoldenVectors(t *testing.T) {
	defs := vectorDefs()
	if *update {
		for i, v := range defs {
			ct := v.encrypt(t)
			sum := sha256.Sum256(ct)
			defs[i].SHA256 = hex.EncodeToString(sum[:])
			if err := os.WriteFile(filepath.Join(vectorDir, v.File), ct, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		j, _ := json.MarshalIndent(defs, "", "  ")
		if err := os.WriteFile(filepath.Join(vectorDir, "vectors.json"), append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(vectorDir, "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var vectors []vector
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	if len(vectors) != len(defs) {
		t.Fatalf("vectors.json has %d vectors, the test defines %d (run with -update)", len(vectors), len(defs))
	}
	for _, v := range vectors {
		t.Run(v.Name, func(t *testing.T) {
			ct, err := os.ReadFile(filepath.Join(vectorDir, v.File))
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256(ct); hex.EncodeToString(sum[:]) != v.SHA256 {
				t.Fatalf("%s: sha256 mismatch", v.File)
			}
			pt := vectorPlaintext(v.PlainLen)
			if v.Exact {
				if got := v.encrypt(t); !bytes.Equal(got, ct) {
					t.Fatalf("encryption no longer produces the golden bytes (%d vs %d bytes)", len(got), len(ct))
				}
			}
			k, _ := hex.DecodeString(v.Key)
			got, err := decrypt(t, newSecret(t, k), ct)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("stream decrypt: %v", err)
			}
			if v.Compression == "none" {
				got, err := specDecrypt(k, ct, 0)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("spec decoder: %v", err)
				}
				hdr := mustHeader(t, ct)
				if hdr.Partition() != v.Partition || string(hdr.KeyRecord()) != v.KeyRecord || hdr.ContentType() != v.ContentType {
					t.Fatal("header fields differ from the vector")
				}
			}
		})
	}
}

// specDecrypt decrypts an uncompressed v1 stream following docs/FORMAT.md
// step by step, with offsets computed by hand and no code from package
// stream. firstIndex is the index of the first chunk (0 in real streams).
func specDecrypt(dek, s []byte, firstIndex uint64) ([]byte, error) {
	if len(s) < 12 || !bytes.Equal(s[:4], []byte{0x89, 0x45, 0x50, 0x0a}) || s[4] != 1 || s[5] != 1 {
		return nil, errors.New("spec: bad prefix")
	}
	log2, flags := s[6], s[7]
	if log2 < 12 || log2 > 24 || flags != 0 {
		return nil, errors.New("spec: bad chunk size or flags")
	}
	hlen := int(binary.BigEndian.Uint32(s[8:12]))
	if hlen > len(s) {
		return nil, errors.New("spec: short header")
	}
	salt := s[12:44]
	off := 44
	field := func(lenBytes int) []byte {
		var n int
		if lenBytes == 1 {
			n = int(s[off])
		} else {
			n = int(binary.BigEndian.Uint16(s[off:]))
		}
		off += lenBytes
		f := s[off : off+n]
		off += n
		return f
	}
	field(2) // key record
	field(2) // partition
	count := int(binary.BigEndian.Uint16(s[off:]))
	off += 2
	for range count {
		field(1)
		field(2)
	}
	if off+32 != hlen {
		return nil, fmt.Errorf("spec: header fields end at %d, MAC at %d", off, hlen-32)
	}
	mac := s[off:hlen]

	prk, err := hkdf.Extract(sha256.New, dek, salt)
	if err != nil {
		return nil, err
	}
	khdr, _ := hkdf.Expand(sha256.New, prk, "enc-pipe v1 header", 32)
	m := hmac.New(sha256.New, khdr)
	m.Write(s[:hlen-32])
	if !hmac.Equal(m.Sum(nil), mac) {
		return nil, errors.New("spec: header MAC mismatch")
	}
	aeadFor := func(epoch uint32) cipher.AEAD {
		info := append([]byte("enc-pipe v1 payload"), 0x01, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(info[len(info)-4:], epoch)
		k, _ := hkdf.Expand(sha256.New, prk, string(info), 32)
		b, _ := aes.NewCipher(k)
		a, _ := cipher.NewGCM(b)
		return a
	}
	chunk := 1 << log2
	ctChunk := chunk + 16
	payload := s[hlen:]
	if len(payload) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	var out []byte
	for i := 0; len(payload) > 0; i++ {
		n := min(ctChunk, len(payload))
		last := n == len(payload)
		idx := firstIndex + uint64(i)
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], idx)
		if last {
			nonce[11] = 1
		}
		pt, err := aeadFor(uint32(idx>>24)).Open(nil, nonce, payload[:n], mac)
		if err != nil {
			return nil, fmt.Errorf("spec: chunk %d: %v", idx, err)
		}
		out = append(out, pt...)
		payload = payload[n:]
	}
	return out, nil
}

// TestEpochs writes chunks across the first epoch boundary (index 2^24):
// the stream round-trips, the spec decoder opens chunk 2^24 with
// K_payload[1], and that chunk does not open under K_payload[0].
func TestEpochs(t *testing.T) {
	first := uint64(1)<<stream.EpochShift - 2
	kb := testKeyBytes("epochs")
	pt := randBytes(4*cs-7, 41)
	wFirst, rFirst := stream.FirstIndexForTest(first)
	for _, conc := range []int{1, 2} {
		key := newSecret(t, kb)
		ct := encrypt(t, key, pt, stream.WithChunkSize(cs), wFirst, stream.WithWriterConcurrency(conc))
		got, err := decrypt(t, key, ct, rFirst, stream.WithReaderConcurrency(conc))
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("round trip across the epoch boundary: %v", err)
		}
		if got, err := specDecrypt(kb, ct, first); err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("spec decoder across the epoch boundary: %v", err)
		}
		// Chunk 2 of this stream has index 2^24: under the epoch-0 key it
		// must fail, and it must be the only chunk that does.
		if _, err := specDecryptEpoch0(kb, ct, first); err == nil {
			t.Fatal("chunk 2^24 opened under the epoch-0 key")
		} else if err.Error() != "cipher: message authentication failed" {
			t.Fatal(err)
		}
	}
}

// specDecryptEpoch0 is specDecrypt with every chunk forced into epoch 0.
func specDecryptEpoch0(dek, s []byte, firstIndex uint64) ([]byte, error) {
	hdr, err := stream.ParseHeader(s)
	if err != nil {
		return nil, err
	}
	prk, _ := hkdf.Extract(sha256.New, dek, s[12:44])
	info := append([]byte("enc-pipe v1 payload"), 1, 0, 0, 0, 0)
	k, _ := hkdf.Expand(sha256.New, prk, string(info), 32)
	b, _ := aes.NewCipher(k)
	a, _ := cipher.NewGCM(b)
	mac := s[hdr.Len()-32 : hdr.Len()]
	ctChunk := hdr.ChunkSize() + 16
	payload := s[hdr.Len():]
	for i := 0; len(payload) > 0; i++ {
		n := min(ctChunk, len(payload))
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], firstIndex+uint64(i))
		if n == len(payload) {
			nonce[11] = 1
		}
		if _, err := a.Open(nil, nonce, payload[:n], mac); err != nil {
			if firstIndex+uint64(i) != 1<<stream.EpochShift {
				return nil, fmt.Errorf("chunk %d failed, expected only chunk 2^24 to fail", firstIndex+uint64(i))
			}
			return nil, err
		}
		payload = payload[n:]
	}
	return nil, nil
}

// TestChunkLimit: a stream cannot have more than 2^32 chunks; going past
// the limit is ErrUnsupported.
func TestChunkLimit(t *testing.T) {
	key := testKey(t, "limit")
	first := uint64(stream.MaxChunks - 2)
	wFirst, rFirst := stream.FirstIndexForTest(first)
	for _, conc := range []int{1, 2} {
		w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(cs), wFirst, stream.WithWriterConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		// Two chunks fit (indices 2^32-2 and 2^32-1); a third does not.
		_, werr := w.Write(make([]byte, 2*cs+1))
		cerr := w.Close()
		if !errors.Is(werr, stream.ErrUnsupported) && !errors.Is(cerr, stream.ErrUnsupported) {
			t.Fatalf("conc=%d: Write %v, Close %v; want ErrUnsupported", conc, werr, cerr)
		}
		ct := encrypt(t, key, make([]byte, 2*cs), stream.WithChunkSize(cs), wFirst, stream.WithWriterConcurrency(conc))
		if got, err := decrypt(t, key, ct, rFirst); err != nil || len(got) != 2*cs {
			t.Fatalf("conc=%d: the last two chunk indices: %v", conc, err)
		}
	}
	// A ReaderAt refuses a size that implies more than 2^32 chunks.
	ct := encrypt(t, key, nil)
	hdr := mustHeader(t, ct)
	huge := hdr.Len() + (stream.MaxChunks+1)*int64(hdr.ChunkSize()+stream.TagSize)
	if _, err := stream.NewReaderAt(bytes.NewReader(ct), huge, hdr, key); !errors.Is(err, stream.ErrUnsupported) {
		t.Fatalf("NewReaderAt with %d bytes: %v, want ErrUnsupported", huge, err)
	}
}
