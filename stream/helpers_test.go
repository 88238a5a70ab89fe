package stream_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

var (
	factoryOnce sync.Once
	factory     *securebuf.Factory
	factoryErr  error
)

// newSecret puts a copy of b in protected memory; the test closes it.
func newSecret(t testing.TB, b []byte) securebuf.Secret {
	t.Helper()
	factoryOnce.Do(func() { factory, factoryErr = securebuf.NewFactory() })
	if factoryErr != nil {
		t.Fatalf("securebuf.NewFactory: %v", factoryErr)
	}
	s, err := factory.New(bytes.Clone(b))
	if err != nil {
		t.Fatalf("securebuf New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testKey returns a deterministic 32-byte key for seed.
func testKeyBytes(seed string) []byte {
	k := sha256.Sum256([]byte("enc-pipe test key " + seed))
	return k[:]
}

func testKey(t testing.TB, seed string) securebuf.Secret {
	return newSecret(t, testKeyBytes(seed))
}

var testParams = stream.HeaderParams{
	KeyRecord: []byte(`{"Created":1700000000,"Key":"dGVzdCBrZXkgcmVjb3Jk","ParentKeyMeta":{"KeyId":"_IK_p1_svc_prod","Created":1700000000}}`),
	Partition: "p1",
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// encrypt returns the stream for pt, written with one Write call.
func encrypt(t testing.TB, key securebuf.Secret, pt []byte, opts ...stream.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := stream.NewWriter(&buf, key, testParams, opts...)
	if err != nil {
		t.Fatalf("NewWriter: %v", err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// decrypt reads the whole stream ct and returns the plaintext released
// before the error, and the error.
func decrypt(t testing.TB, key securebuf.Secret, ct []byte, opts ...stream.ReaderOption) ([]byte, error) {
	t.Helper()
	src := bytes.NewReader(ct)
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		return nil, err
	}
	r, err := stream.NewReader(src, hdr, key, opts...)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, r)
	return out.Bytes(), err
}

// failWriter accepts limit bytes, then fails.
type failWriter struct {
	limit int
	n     int
	buf   bytes.Buffer
}

var errSink = errors.New("test sink failed")

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+len(p) > w.limit {
		k := w.limit - w.n
		w.buf.Write(p[:k])
		w.n = w.limit
		return k, errSink
	}
	w.n += len(p)
	return w.buf.Write(p)
}

// onlyReader hides every method but Read (so io.Copy uses the Writer's
// ReadFrom, or plain Read loops).
type onlyReader struct{ r io.Reader }

func (r onlyReader) Read(p []byte) (int, error) { return r.r.Read(p) }

// onlyWriter hides every method but Write.
type onlyWriter struct{ w io.Writer }

func (w onlyWriter) Write(p []byte) (int, error) { return w.w.Write(p) }

// classes are the sentinels of package stream. Every error it returns for
// bad input or a bad argument matches exactly one of them.
var classes = []error{stream.ErrAuth, stream.ErrTruncated, stream.ErrUnsupported, stream.ErrClosed, stream.ErrInvalidArgument}

// classOf returns the one class of err, and fails the test if err matches
// none or several.
func classOf(t testing.TB, err error) error {
	t.Helper()
	var found []error
	for _, c := range classes {
		if errors.Is(err, c) {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("error %q matches %d classes %v, want exactly one", err, len(found), found)
	}
	return found[0]
}

// chunkErrorIs reports whether err is a *ChunkError of class ErrAuth for
// chunk idx with the given reason.
func chunkErrorIs(err error, idx uint64, reason string) bool {
	var ce *stream.ChunkError
	return errors.As(err, &ce) && ce.Index == idx && ce.Reason == reason && errors.Is(err, stream.ErrAuth)
}
