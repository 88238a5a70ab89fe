package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/enc-pipe/enc-pipe/stream"
)

// layout returns the header length and the ciphertext chunks of an
// uncompressed stream.
func layout(t *testing.T, ct []byte) (hdrLen int, chunks [][]byte) {
	t.Helper()
	hdr, err := stream.ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	hdrLen = int(hdr.Len())
	size := hdr.ChunkSize() + stream.TagSize
	for p := ct[hdrLen:]; len(p) > 0; {
		n := min(size, len(p))
		chunks = append(chunks, p[:n])
		p = p[n:]
	}
	return hdrLen, chunks
}

func join(hdr []byte, chunks ...[]byte) []byte {
	out := bytes.Clone(hdr)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return out
}

// TestTruncation cuts a stream inside the header, at every chunk boundary
// and between them (see cutPoints). A cut in the header, at a chunk
// boundary or less than a tag into a chunk leaves only authentic bytes and
// fails with ErrTruncated (which is also io.ErrUnexpectedEOF); a cut
// further into a chunk leaves a final chunk that does not authenticate,
// which cannot be told from a modified one: a *ChunkError of class
// ErrAuth. Each with the streaming Reader (each worker count) and with
// NewReaderAt; the Reader may only have released whole authenticated
// chunks of the true plaintext.
func TestTruncation(t *testing.T) {
	for _, total := range []int{0, 1, cs, 3 * cs, 3*cs + 700} {
		key := testKey(t, "trunc")
		pt := randBytes(total, 3)
		ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
		hdrLen, _ := layout(t, ct)
		for _, conc := range []int{1, 2} {
			t.Run(fmt.Sprintf("len=%d/conc=%d", total, conc), func(t *testing.T) {
				ctChunk := cs + stream.TagSize
				for _, cut := range cutPoints(len(ct), hdrLen, ctChunk) {
					// check says whether err is the error cut deserves.
					check := func(err error) bool {
						rel := cut - hdrLen
						if rel < 0 || rel%ctChunk < stream.TagSize {
							return classOf(t, err) == stream.ErrTruncated && errors.Is(err, io.ErrUnexpectedEOF)
						}
						return classOf(t, err) == stream.ErrAuth && chunkErrorIs(err, uint64(rel/ctChunk), stream.ReasonCutOrChangedForTest)
					}
					out, err := decrypt(t, key, ct[:cut], stream.WithReaderConcurrency(conc))
					if !check(err) {
						t.Fatalf("cut at %d of %d (header %d): err = %v", cut, len(ct), hdrLen, err)
					}
					if len(out)%cs != 0 || !bytes.Equal(out, pt[:len(out)]) {
						t.Fatalf("cut at %d: released %d bytes that are not whole chunks of the plaintext", cut, len(out))
					}
					if cut >= hdrLen {
						hdr, err := stream.ParseHeader(ct)
						if err != nil {
							t.Fatal(err)
						}
						_, err = stream.NewReaderAt(bytes.NewReader(ct[:cut]), int64(cut), hdr, key)
						if !check(err) {
							t.Fatalf("ReaderAt, cut at %d of %d (header %d): err = %v", cut, len(ct), hdrLen, err)
						}
					}
				}
			})
		}
	}
}

// cutPoints returns every offset inside the header, and in the payload
// every chunk boundary with the bytes around it and around the tag, plus
// a stride through each chunk.
func cutPoints(total, hdrLen, ctChunk int) []int {
	var cuts []int
	for cut := range total {
		rel := cut - hdrLen
		switch {
		case rel < 0, rel%ctChunk <= 2, rel%ctChunk >= ctChunk-2,
			rel%ctChunk >= 14 && rel%ctChunk <= 18, rel%61 == 0:
			cuts = append(cuts, cut)
		}
	}
	return cuts
}

// TestChunkTampering reorders, duplicates, drops and replaces chunks and
// appends data; each must fail with ErrAuth (and no other class).
func TestChunkTampering(t *testing.T) {
	key := testKey(t, "tamper")
	pt := randBytes(4*cs+100, 9) // chunks 0..3 full, chunk 4 short
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdrLen, c := layout(t, ct)
	hdr := ct[:hdrLen]
	other := encrypt(t, key, pt, stream.WithChunkSize(cs)) // same key, other salt
	_, oc := layout(t, other)

	fullFinal := encrypt(t, key, pt[:2*cs], stream.WithChunkSize(cs))
	fh, fc := layout(t, fullFinal)

	cases := map[string][]byte{
		"swap 0 and 1":               join(hdr, c[1], c[0], c[2], c[3], c[4]),
		"swap 2 and 3":               join(hdr, c[0], c[1], c[3], c[2], c[4]),
		"duplicate 1":                join(hdr, c[0], c[1], c[1], c[2], c[3], c[4]),
		"drop 0":                     join(hdr, c[1], c[2], c[3], c[4]),
		"drop 2":                     join(hdr, c[0], c[1], c[3], c[4]),
		"final moved earlier":        join(hdr, c[0], c[4]),
		"chunk from other stream":    join(hdr, c[0], oc[1], c[2], c[3], c[4]),
		"header of other stream":     join(other[:hdrLen], c...),
		"append one byte":            append(join(hdr, c...), 0),
		"append a chunk":             join(hdr, c[0], c[1], c[2], c[3], c[4], c[1]),
		"append garbage":             append(join(hdr, c...), randBytes(5000, 1)...),
		"full final + one byte":      append(bytes.Clone(fullFinal), 1),
		"full final + 17 bytes":      append(bytes.Clone(fullFinal), randBytes(17, 2)...),
		"full final + a chunk":       join(fullFinal[:fh], fc[0], fc[1], fc[0]),
		"flip first ciphertext byte": flip(ct, hdrLen),
		"flip last tag byte":         flip(ct, len(ct)-1),
		"flip in middle chunk":       flip(ct, hdrLen+2*len(c[0])+77),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			for _, conc := range []int{1, 3} {
				out, err := decrypt(t, key, bad, stream.WithReaderConcurrency(conc))
				if classOf(t, err) != stream.ErrAuth {
					t.Fatalf("conc=%d: err = %v, want ErrAuth", conc, err)
				}
				if !bytes.Equal(out, pt[:len(out)]) || len(out)%cs != 0 {
					t.Fatalf("conc=%d: released %d bytes that are not authenticated chunks of the plaintext", conc, len(out))
				}
			}
			h, err := stream.ParseHeader(bad)
			if err != nil {
				t.Fatal(err)
			}
			if ra, err := stream.NewReaderAt(bytes.NewReader(bad), int64(len(bad)), h, key); err == nil {
				buf := make([]byte, ra.Size())
				_, err = ra.ReadAt(buf, 0)
				if classOf(t, err) != stream.ErrAuth {
					t.Fatalf("ReaderAt: err = %v, want ErrAuth", err)
				}
				ra.Close()
			} else if classOf(t, err) != stream.ErrAuth {
				t.Fatalf("NewReaderAt: err = %v, want ErrAuth", err)
			}
		})
	}
	// Data after a full final chunk is named as such.
	finalIdx := uint64(len(fc) - 1)
	if _, err := decrypt(t, key, cases["full final + 17 bytes"]); !chunkErrorIs(err, finalIdx, stream.ReasonTrailingForTest) {
		t.Fatalf("trailing data: %v, want a ChunkError: data after chunk %d", err, finalIdx)
	}
	// Dropping the final chunk is a truncation at a chunk boundary.
	if _, err := decrypt(t, key, join(hdr, c[0], c[1], c[2], c[3])); classOf(t, err) != stream.ErrTruncated {
		t.Fatalf("final chunk dropped: %v, want ErrTruncated", err)
	}
}

func mustHeader(t testing.TB, ct []byte) *stream.Header {
	t.Helper()
	h, err := stream.ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0x01
	return out
}

// TestHeaderBitFlips flips every bit of a real header (with metadata and
// compression off/on). Each flip must make decryption fail before any
// plaintext is released: either the header no longer parses (a
// *HeaderError of class ErrUnsupported or ErrAuth, or ErrTruncated; no key
// used) or its MAC fails with the bare, fixed ErrAuth. Flips in the salt
// and MAC always parse, so they must give the bare ErrAuth.
func TestHeaderBitFlips(t *testing.T) {
	for _, codec := range []stream.Codec{stream.CodecNone, stream.CodecS2} {
		key := testKey(t, "flips")
		pt := randBytes(cs+10, 5)
		ct := encrypt(t, key, pt, stream.WithChunkSize(cs), stream.WithCompression(codec),
			stream.WithContentType("text/plain"), stream.WithMetadata(map[string]string{"owner": "ops", "a": "b"}))
		hdr := mustHeader(t, ct)
		hl := int(hdr.Len())
		authOnly := 0
		for bit := range hl * 8 {
			bad := bytes.Clone(ct)
			bad[bit/8] ^= 1 << (bit % 8)
			out, err := decrypt(t, key, bad)
			if err == nil || len(out) != 0 {
				t.Fatalf("%v: flip of header bit %d: released %d bytes, err %v", codec, bit, len(out), err)
			}
			var he *stream.HeaderError
			switch class := classOf(t, err); {
			case err == stream.ErrAuth:
				authOnly++
			case errors.As(err, &he) && (class == stream.ErrAuth || class == stream.ErrUnsupported):
			case err == stream.ErrTruncated:
			default:
				t.Fatalf("%v: flip of header bit %d: unexpected error %v", codec, bit, err)
			}
			if byteIdx := bit / 8; byteIdx >= 12 && byteIdx < 44 || byteIdx >= hl-stream.MACSize {
				if err != stream.ErrAuth {
					t.Fatalf("%v: flip of salt/MAC bit %d gave %v, want the bare ErrAuth", codec, bit, err)
				}
			}
		}
		// Most of the header is data that parses either way.
		if authOnly < (hl-20)*8/2 {
			t.Fatalf("%v: only %d of %d flips reached the MAC check", codec, authOnly, hl*8)
		}
	}
}

// TestWrongKeyAndPartition: the header MAC commits to the key and covers
// the partition field.
func TestWrongKeyAndPartition(t *testing.T) {
	key := testKey(t, "right")
	ct := encrypt(t, key, []byte("hello"))
	if _, err := decrypt(t, testKey(t, "wrong"), ct); err != stream.ErrAuth {
		t.Fatalf("wrong key: %v, want exactly ErrAuth", err)
	}
	// Rewrite the partition field "p1" -> "p2" (same length).
	i := bytes.Index(ct, []byte{0, 2, 'p', '1'})
	if i < 0 {
		t.Fatal("partition field not found")
	}
	bad := bytes.Clone(ct)
	bad[i+3] = '2'
	h := mustHeader(t, bad)
	if h.Partition() != "p2" {
		t.Fatalf("rewritten header parses with partition %q", h.Partition())
	}
	if _, err := decrypt(t, key, bad); err != stream.ErrAuth {
		t.Fatalf("wrong partition: %v, want ErrAuth", err)
	}
	// A key of the wrong size is refused before anything is read.
	if _, err := stream.NewWriter(io.Discard, newSecret(t, make([]byte, 16)), testParams); classOf(t, err) != stream.ErrInvalidArgument {
		t.Fatalf("16-byte key: %v, want ErrInvalidArgument", err)
	}
}

// TestNoReleaseBeforeAuthentication serves a stream whose last chunk is
// tampered with (and, separately, a middle chunk) and reads it with small
// reads: everything released must be the plaintext of earlier chunks, and
// not one byte of the bad chunk.
func TestNoReleaseBeforeAuthentication(t *testing.T) {
	key := testKey(t, "release")
	pt := randBytes(6*cs+1000, 11)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdrLen, c := layout(t, ct)
	for _, bad := range []int{6, 3, 0} {
		for _, conc := range []int{1, 2, 4} {
			t.Run(fmt.Sprintf("bad=%d/conc=%d", bad, conc), func(t *testing.T) {
				tampered := bytes.Clone(ct)
				tampered[hdrLen+bad*len(c[0])+len(c[bad])/2] ^= 0x80
				src := onlyReader{bytes.NewReader(tampered)}
				hdr, err := stream.ReadHeader(src)
				if err != nil {
					t.Fatal(err)
				}
				r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc))
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				var got []byte
				p := make([]byte, 100)
				for {
					n, err := r.Read(p)
					got = append(got, p[:n]...)
					if err != nil {
						if !errors.Is(err, stream.ErrAuth) {
							t.Fatalf("err = %v, want ErrAuth", err)
						}
						break
					}
				}
				if want := pt[:bad*cs]; !bytes.Equal(got, want) {
					t.Fatalf("released %d bytes, want exactly the %d bytes of the chunks before the bad one", len(got), len(want))
				}
				// The error is sticky.
				if n, err := r.Read(p); n != 0 || !errors.Is(err, stream.ErrAuth) {
					t.Fatalf("Read after failure = %d, %v", n, err)
				}
			})
		}
	}
}

// TestReaderAtTamperedChunk: ReadAt stops at a bad chunk, reports the
// bytes before it, and zeroes the rest of p.
func TestReaderAtTamperedChunk(t *testing.T) {
	key := testKey(t, "ra-tamper")
	pt := randBytes(8*cs+5, 12)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	hdrLen, c := layout(t, ct)
	tampered := flip(ct, hdrLen+5*len(c[0])+9)
	for _, conc := range []int{1, 4} {
		ra, err := stream.NewReaderAt(bytes.NewReader(tampered), int64(len(tampered)), mustHeader(t, tampered), key, stream.WithReaderConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		p := bytes.Repeat([]byte{0xAA}, int(ra.Size()))
		n, err := ra.ReadAt(p, 0)
		if !errors.Is(err, stream.ErrAuth) || n != 5*cs {
			t.Fatalf("conc=%d: ReadAt = %d, %v; want %d, ErrAuth", conc, n, err, 5*cs)
		}
		if !bytes.Equal(p[:n], pt[:n]) || !bytes.Equal(p[n:], make([]byte, len(p)-n)) {
			t.Fatalf("conc=%d: p holds wrong bytes before or non-zero bytes after n", conc)
		}
		// Chunks that are intact still read fine.
		q := make([]byte, cs)
		if n, err := ra.ReadAt(q, 6*cs); err != nil || !bytes.Equal(q[:n], pt[6*cs:7*cs]) {
			t.Fatalf("conc=%d: reading an intact chunk after the bad one: %d, %v", conc, n, err)
		}
		ra.Close()
	}
}
