package encpipe_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// liveSecrets counts the secrets of a securebuf.Factory that are not
// closed yet.
type liveSecrets struct{ n atomic.Int64 }

func (l *liveSecrets) Add(m securebuf.Metric, delta int64) {
	if m == securebuf.InUse {
		l.n.Add(delta)
	}
}

type env struct {
	factory *envelope.SessionFactory
	store   envelope.Metastore
	live    *liveSecrets
}

// newEnv builds a real session factory: in-memory metastore, static KMS,
// and a securebuf factory whose live secrets the test can count.
func newEnv(t *testing.T, store envelope.Metastore) *env {
	t.Helper()
	return newEnvKMS(t, store, newStaticKMS(t, "thisIsAStaticMasterKeyForTesting"))
}

// newStaticKMS returns a static KMS with a 32-byte master key; the test
// closes it.
func newStaticKMS(t *testing.T, masterKey string) *statickms.KMS {
	t.Helper()
	kms, err := statickms.New([]byte(masterKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	return kms
}

// newEnvKMS is newEnv with the given KMS.
func newEnvKMS(t *testing.T, store envelope.Metastore, kms envelope.KMS) *env {
	t.Helper()
	live := &liveSecrets{}
	sf, err := securebuf.NewFactory(securebuf.WithMetrics(securebuf.MetricsFunc(live.Add)))
	if err != nil {
		t.Fatal(err)
	}
	if store == nil {
		store = memstore.New()
	}
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, store, kms, envelope.NewAES256GCM(), envelope.WithSecretFactory(sf))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &env{factory: f, store: store, live: live}
}

func (e *env) session(t *testing.T, partition string) *envelope.Session {
	t.Helper()
	s, err := e.factory.GetSession(partition)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (e *env) encrypt(t *testing.T, partition string, pt []byte, opts ...stream.WriterOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := encpipe.NewWriter(context.Background(), &buf, e.session(t, partition), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	pt := payload(300_000)
	cts := map[stream.Codec][]byte{}
	for _, codec := range []stream.Codec{stream.CodecNone, stream.CodecZstd} {
		cts[codec] = e.encrypt(t, "p1", pt, stream.WithCompression(codec), stream.WithChunkSize(16384))
	}
	// Secrets open now: the system key and the writers' sessions'
	// intermediate keys. Readers must add none that outlive them.
	base := e.live.n.Load()
	for _, codec := range []stream.Codec{stream.CodecNone, stream.CodecZstd} {
		ct := cts[codec]

		// The header carries an Asherah EnvelopeKeyRecord for the data key,
		// wrapped by partition p1's intermediate key.
		hdr, err := stream.ParseHeader(ct)
		if err != nil {
			t.Fatal(err)
		}
		var rec envelope.EnvelopeKeyRecord
		if err := json.Unmarshal(hdr.KeyRecord(), &rec); err != nil {
			t.Fatal(err)
		}
		if hdr.Partition() != "p1" || rec.ParentKeyMeta == nil || rec.ParentKeyMeta.ID != "_IK_p1_svc_prod" || len(rec.EncryptedKey) == 0 {
			t.Fatalf("header: partition %q, key record %+v", hdr.Partition(), rec)
		}

		for _, conc := range []int{1, 2} {
			r, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), e.factory,
				encpipe.AllowPartitions("p1"), encpipe.WithStreamOptions(stream.WithReaderConcurrency(conc)))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%v conc=%d: decrypt: %v", codec, conc, err)
			}
			r.Close()
		}
		if codec == stream.CodecNone {
			ra, err := encpipe.NewReaderAt(context.Background(), bytes.NewReader(ct), int64(len(ct)), e.factory)
			if err != nil {
				t.Fatal(err)
			}
			p := make([]byte, 1000)
			if _, err := ra.ReadAt(p, 123_456); err != nil || !bytes.Equal(p, pt[123_456:124_456]) {
				t.Fatalf("ReadAt: %v", err)
			}
			ra.Close()
		} else if _, err := encpipe.NewReaderAt(context.Background(), bytes.NewReader(ct), int64(len(ct)), e.factory); !errors.Is(err, stream.ErrUnsupported) {
			t.Fatalf("NewReaderAt on a compressed stream: %v, want ErrUnsupported", err)
		}
	}
	// Every data key was closed with its stream.
	if n := e.live.n.Load(); n != base {
		t.Fatalf("%d secrets still open after the streams were closed (baseline %d)", n, base)
	}
}

// TestOtherProcess: a stream written through one factory decrypts through
// another that shares only the metastore and the master key, as another
// process would.
func TestOtherProcess(t *testing.T) {
	store := memstore.New()
	ct := newEnv(t, store).encrypt(t, "tenant-7", payload(5000))
	r, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), newEnv(t, store).factory)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, payload(5000)) {
		t.Fatalf("decrypt in the other process: %v", err)
	}
}

// countingSessions records GetSession calls.
type countingSessions struct {
	encpipe.Sessions
	mu    sync.Mutex
	calls []string
}

func (c *countingSessions) GetSession(p string) (*envelope.Session, error) {
	c.mu.Lock()
	c.calls = append(c.calls, p)
	c.mu.Unlock()
	return c.Sessions.GetSession(p)
}

func TestAllowPartitions(t *testing.T) {
	e := newEnv(t, nil)
	ct := e.encrypt(t, "p1", []byte("secret"))
	sessions := &countingSessions{Sessions: e.factory}
	_, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), sessions, encpipe.AllowPartitions("p2", "p3"))
	if !errors.Is(err, encpipe.ErrPartitionNotAllowed) {
		t.Fatalf("err = %v, want ErrPartitionNotAllowed", err)
	}
	_, err = encpipe.NewReaderAt(context.Background(), bytes.NewReader(ct), int64(len(ct)), sessions, encpipe.AllowPartitions("p2"))
	if !errors.Is(err, encpipe.ErrPartitionNotAllowed) {
		t.Fatalf("ReaderAt: err = %v, want ErrPartitionNotAllowed", err)
	}
	if len(sessions.calls) != 0 {
		t.Fatalf("sessions opened for a refused partition: %v", sessions.calls)
	}
	r, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), sessions, encpipe.AllowPartitions("p2"), encpipe.AllowPartitions("p1"))
	if err != nil {
		t.Fatalf("allowed partition refused: %v", err)
	}
	r.Close()
	if _, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), sessions, encpipe.AllowPartitions()); err == nil {
		t.Fatal("AllowPartitions() with no ids accepted")
	}
}

// TestWrongPartition: a header whose partition field is changed to another
// partition (that exists, with its own keys) fails with the fixed
// authentication error: the key record does not belong to that partition.
func TestWrongPartition(t *testing.T) {
	e := newEnv(t, nil)
	e.encrypt(t, "p2", []byte("make p2's keys exist"))
	ct := e.encrypt(t, "p1", []byte("secret"))
	i := bytes.Index(ct, []byte{0, 2, 'p', '1'})
	if i < 0 {
		t.Fatal("partition field not found")
	}
	bad := bytes.Clone(ct)
	bad[i+3] = '2'
	_, err := encpipe.NewReader(context.Background(), bytes.NewReader(bad), e.factory)
	if err != stream.ErrAuth {
		t.Fatalf("err = %v, want exactly stream.ErrAuth", err)
	}
}

// TestHeaderBitFlips flips every bit of a real header and decrypts through
// the whole stack: each must fail without releasing plaintext, with a
// parse error, the fixed authentication error, or (for a flipped key id or
// creation time in the key record) a key-not-found error from the
// metastore; and no data key stays open.
func TestHeaderBitFlips(t *testing.T) {
	e := newEnv(t, nil)
	ct := e.encrypt(t, "p1", payload(100))
	base := e.live.n.Load()
	hdr, _ := stream.ParseHeader(ct)
	auth := 0
	for bit := range int(hdr.Len()) * 8 {
		bad := bytes.Clone(ct)
		bad[bit/8] ^= 1 << (bit % 8)
		var got []byte
		r, err := encpipe.NewReader(context.Background(), bytes.NewReader(bad), e.factory)
		if err == nil {
			got, err = io.ReadAll(r)
			r.Close()
		}
		if err == nil || len(got) > 0 {
			t.Fatalf("flip of bit %d: released %d bytes, err %v", bit, len(got), err)
		}
		switch class := classOf(t, err); {
		case class == stream.ErrAuth:
			auth++
		case class == stream.ErrUnsupported, class == stream.ErrTruncated:
		case class == encpipe.ErrKeyUnavailable && errors.Is(err, envelope.ErrNotFound):
		default:
			t.Fatalf("flip of bit %d: unexpected error %v", bit, err)
		}
	}
	if auth < int(hdr.Len())*8/2 {
		t.Fatalf("only %d flips ended in the authentication error", auth)
	}
	if n := e.live.n.Load(); n != base {
		t.Fatalf("%d data keys left open by failed readers", n-base)
	}
}

// failingDst accepts ok bytes, then fails every write.
type failingDst struct{ ok, n int }

var errDiskFull = errors.New("disk full")

func (d *failingDst) Write(p []byte) (int, error) {
	if d.n+len(p) > d.ok {
		return 0, errDiskFull
	}
	d.n += len(p)
	return len(p), nil
}

// failingSrc yields n bytes of zeros, then fails.
type failingSrc struct{ n int }

var errSrc = errors.New("source failed")

func (s *failingSrc) Read(p []byte) (int, error) {
	if s.n == 0 {
		return 0, errSrc
	}
	k := min(len(p), s.n)
	clear(p[:k])
	s.n -= k
	return k, nil
}

// TestWrappersCloseTheDataKey: the Writer, Reader and ReaderAt of this
// package own the data key they opened. It is closed when Close returns,
// when the constructor fails after opening it, when a Write or ReadFrom
// fails for good, when a Reader reaches the end of the stream or fails,
// and when WriteTo ends the stream; it stays open while the stream can
// still go on (an error of ReadFrom's source or of WriteTo's destination).
func TestWrappersCloseTheDataKey(t *testing.T) {
	e := newEnv(t, nil)
	sess := e.session(t, "p1")
	ctx := context.Background()
	pt := payload(200_000)
	ct := e.encrypt(t, "p1", pt, stream.WithChunkSize(4096))
	w, err := encpipe.NewWriter(ctx, io.Discard, sess) // loads sess's intermediate key
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	base := e.live.n.Load()
	open := func(what string, want int64) {
		t.Helper()
		if n := e.live.n.Load() - base; n != want {
			t.Fatalf("%s: %d data keys open, want %d", what, n, want)
		}
	}

	w, err = encpipe.NewWriter(ctx, io.Discard, sess)
	if err != nil {
		t.Fatal(err)
	}
	open("an open Writer", 1)
	w.Write(pt)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	open("Writer.Close", 0)

	if _, err := encpipe.NewWriter(ctx, &failingDst{}, sess); !errors.Is(err, errDiskFull) {
		t.Fatalf("NewWriter on a failing destination: %v", err)
	}
	open("a NewWriter that failed", 0)
	if _, err := encpipe.NewWriter(ctx, io.Discard, sess, stream.WithChunkSize(3)); !errors.Is(err, stream.ErrInvalidArgument) {
		t.Fatalf("NewWriter with a bad option: %v", err)
	}
	open("a NewWriter with a bad option", 0)

	w, err = encpipe.NewWriter(ctx, &failingDst{ok: 1000}, sess, stream.WithChunkSize(4096), stream.WithWriterConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	// The failure surfaces in a Write once the queue of sealed chunks
	// is full (1 MiB), or in Close.
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = w.Write(pt)
	}
	if !errors.Is(werr, errDiskFull) {
		t.Fatalf("Write into a failing destination: %v", werr)
	}
	open("a Writer whose Write failed", 0)
	if err := w.Close(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Close after a failed Write: %v", err)
	}

	w, err = encpipe.NewWriter(ctx, io.Discard, sess)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadFrom(&failingSrc{n: 100_000}); !errors.Is(err, errSrc) {
		t.Fatalf("ReadFrom: %v", err)
	}
	open("a Writer whose source failed (the stream can go on)", 1)
	if _, err := w.ReadFrom(bytes.NewReader(pt)); err != nil {
		t.Fatalf("ReadFrom after a source error: %v", err)
	}
	w.Close()
	open("Writer.Close after ReadFrom", 0)
	w, err = encpipe.NewWriter(ctx, &failingDst{ok: 1000}, sess, stream.WithChunkSize(4096))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.ReadFrom(bytes.NewReader(make([]byte, 4<<20))); !errors.Is(err, errDiskFull) { // more than the queue
		t.Fatalf("ReadFrom into a failing destination: %v", err)
	}
	open("a Writer whose destination failed in ReadFrom", 0)
	w.Close()

	newReader := func(ct []byte) *encpipe.Reader {
		t.Helper()
		r, err := encpipe.NewReader(ctx, bytes.NewReader(ct), e.factory)
		if err != nil {
			t.Fatal(err)
		}
		open("an open Reader", 1)
		return r
	}
	r := newReader(ct)
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("ReadAll: %v", err)
	}
	open("a Reader at the end of its stream, before Close", 0)
	r.Close()

	bad := bytes.Clone(ct)
	bad[len(bad)/2] ^= 1
	r = newReader(bad)
	if _, err := io.ReadAll(r); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	open("a Reader that failed, before Close", 0)
	r.Close()

	r = newReader(ct)
	if _, err := io.ReadFull(r, make([]byte, 10_000)); err != nil {
		t.Fatal(err)
	}
	r.Close()
	open("Reader.Close before the end", 0)

	r = newReader(ct)
	if _, err := r.WriteTo(&failingDst{ok: 5000}); !errors.Is(err, errDiskFull) {
		t.Fatalf("WriteTo a failing destination: %v", err)
	}
	open("a Reader whose WriteTo destination failed (the stream can go on)", 1)
	var out bytes.Buffer
	if _, err := r.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	open("a Reader whose WriteTo reached the end", 0)
	r.Close()

	// A header whose key record unwraps but whose MAC fails: the data key
	// is opened, then NewReader fails and closes it.
	hdr, _ := stream.ParseHeader(ct)
	badSalt := bytes.Clone(ct)
	badSalt[20] ^= 1
	if _, err := encpipe.NewReader(ctx, bytes.NewReader(badSalt), e.factory); err != stream.ErrAuth {
		t.Fatalf("NewReader with a modified salt: %v, want exactly ErrAuth", err)
	}
	open("a NewReader that failed after opening the key", 0)

	ra, err := encpipe.NewReaderAt(ctx, bytes.NewReader(ct), int64(len(ct)), e.factory)
	if err != nil {
		t.Fatal(err)
	}
	open("an open ReaderAt", 1)
	ra.Close()
	open("ReaderAt.Close", 0)
	cut := int64(len(ct)) - 100
	if _, err := encpipe.NewReaderAt(ctx, bytes.NewReader(ct[:cut]), cut, e.factory); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("NewReaderAt on a stream cut inside its last chunk: %v", err)
	}
	open("a NewReaderAt that failed after opening the key", 0)

	la, err := encpipe.NewLazyReaderAt(ctx, bytes.NewReader(ct[:cut]), cut, e.factory)
	if err != nil {
		t.Fatal(err)
	}
	open("an open LazyReaderAt (its final chunk not read yet)", 1)
	if _, err := la.Size(); !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("LazyReaderAt.Size on a stream cut inside its last chunk: %v", err)
	}
	open("a LazyReaderAt whose end failed, before Close", 1)
	la.Close()
	open("LazyReaderAt.Close", 0)
	badSaltLen := int64(len(badSalt))
	if _, err := encpipe.NewLazyReaderAt(ctx, bytes.NewReader(badSalt), badSaltLen, e.factory); err != stream.ErrAuth {
		t.Fatalf("NewLazyReaderAt with a modified salt: %v, want exactly ErrAuth", err)
	}
	open("a NewLazyReaderAt that failed after opening the key", 0)
	if hdr.Len() >= cut {
		t.Fatal("the cut fell in the header")
	}
}

// classes are the sentinels a caller of this package tests for; every
// failure matches exactly one of them.
var classes = []error{stream.ErrAuth, stream.ErrTruncated, stream.ErrUnsupported, stream.ErrInvalidArgument, stream.ErrClosed,
	encpipe.ErrKeyUnavailable, encpipe.ErrPartitionNotAllowed}

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

// TestEachFailureHasOneClass runs one failure of each kind through the
// whole stack (NewReader, then reading to the end; NewReaderAt where it
// applies) and checks the one sentinel it matches.
func TestEachFailureHasOneClass(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	ct := e.encrypt(t, "p1", payload(20_000), stream.WithChunkSize(4096))
	zct := e.encrypt(t, "p1", payload(20_000), stream.WithCompression(stream.CodecS2))
	hdr, err := stream.ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	hl := int(hdr.Len())
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	ctChunk := 4096 + stream.TagSize
	cases := []struct {
		name   string
		input  []byte
		env    *env
		opts   []encpipe.ReadOption
		readAt bool // NewReaderAt sees the same class
		want   error
	}{
		{"a modified chunk", with(ct, hl+5, ct[hl+5]^1), e, nil, true, stream.ErrAuth},
		{"a modified salt", with(ct, 20, ct[20]^1), e, nil, true, stream.ErrAuth},
		{"a malformed header", with(ct, 6, 30), e, nil, true, stream.ErrAuth},
		{"data appended", append(bytes.Clone(ct), 0), e, nil, true, stream.ErrAuth},
		{"cut inside a chunk", ct[:hl+ctChunk+100], e, nil, true, stream.ErrAuth},
		{"cut at a chunk boundary", ct[:hl+2*ctChunk], e, nil, true, stream.ErrTruncated},
		{"cut inside the header", ct[:hl-1], e, nil, true, stream.ErrTruncated},
		{"empty input", nil, e, nil, true, stream.ErrTruncated},
		{"not a stream", []byte("hello, world: plain text, not a stream"), e, nil, true, stream.ErrUnsupported},
		{"a newer version", with(ct, 4, stream.Version+1), e, nil, true, stream.ErrUnsupported},
		{"a compressed stream, at random", zct, e, nil, true, stream.ErrUnsupported},
		{"keys not in the metastore", ct, newEnv(t, memstore.New()), nil, true, encpipe.ErrKeyUnavailable},
		{"a partition not allowed", ct, e, []encpipe.ReadOption{encpipe.AllowPartitions("p2")}, true, encpipe.ErrPartitionNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var err error
			if !strings.HasPrefix(c.name, "a compressed") {
				var r *encpipe.Reader
				r, err = encpipe.NewReader(ctx, bytes.NewReader(c.input), c.env.factory, c.opts...)
				if err == nil {
					_, err = io.Copy(io.Discard, r)
					r.Close()
				}
				if got := classOf(t, err); got != c.want {
					t.Fatalf("NewReader: %v, of class %v; want %v", err, got, c.want)
				}
			}
			if c.readAt {
				var ra *encpipe.ReaderAt
				ra, err = encpipe.NewReaderAt(ctx, bytes.NewReader(c.input), int64(len(c.input)), c.env.factory, c.opts...)
				if err == nil {
					_, err = ra.ReadAt(make([]byte, ra.Size()), 0)
					ra.Close()
				}
				if got := classOf(t, err); got != c.want {
					t.Fatalf("NewReaderAt: %v, of class %v; want %v", err, got, c.want)
				}
			}
		})
	}
}

// failingKMS is a KMS that is unreachable.
type failingKMS struct{}

var errKMSDown = errors.New("kms: connection refused")

func (failingKMS) EncryptKey(context.Context, []byte) ([]byte, error) { return nil, errKMSDown }
func (failingKMS) DecryptKey(context.Context, []byte) ([]byte, error) { return nil, errKMSDown }

// TestKeyErrorsAreNotTampering: when the keys cannot be loaded — another
// master key, a KMS that fails, a metastore without the rows — NewReader
// and NewReaderAt fail with ErrKeyUnavailable and the *envelope.KeyError
// that names the key, never with stream.ErrAuth; the same stream decrypts
// with the right keys. A wrapped data key modified in the header is
// tampering: exactly stream.ErrAuth.
func TestKeyErrorsAreNotTampering(t *testing.T) {
	store := memstore.New()
	good := newEnv(t, store)
	ct := good.encrypt(t, "p1", payload(70_000), stream.WithChunkSize(4096))

	cases := []struct {
		name  string
		env   *env
		cause error // the KeyError's cause matches it
		kind  envelope.KeyKind
	}{
		{"wrong master key", newEnvKMS(t, store, newStaticKMS(t, "anotherStaticMasterKeyForTesting")), envelope.ErrDecrypt, envelope.SystemKey},
		{"KMS down", newEnvKMS(t, store, failingKMS{}), errKMSDown, envelope.SystemKey},
		{"no rows", newEnv(t, memstore.New()), envelope.ErrNotFound, envelope.IntermediateKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := c.env.live.n.Load()
			check := func(what string, err error) {
				t.Helper()
				var ke *envelope.KeyError
				switch {
				case !errors.Is(err, encpipe.ErrKeyUnavailable):
					t.Fatalf("%s: err = %v, want ErrKeyUnavailable", what, err)
				case errors.Is(err, stream.ErrAuth):
					t.Fatalf("%s: a key error matches stream.ErrAuth: %v", what, err)
				case !errors.As(err, &ke) || ke.Kind != c.kind || !errors.Is(err, c.cause):
					t.Fatalf("%s: err = %v, want a %s KeyError caused by %v", what, err, c.kind, c.cause)
				}
			}
			_, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), c.env.factory)
			check("NewReader", err)
			_, err = encpipe.NewReaderAt(context.Background(), bytes.NewReader(ct), int64(len(ct)), c.env.factory)
			check("NewReaderAt", err)
			if n := c.env.live.n.Load(); n != base {
				t.Fatalf("%d secrets left open", n-base)
			}
		})
	}

	r, err := encpipe.NewReader(context.Background(), bytes.NewReader(ct), good.factory)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, payload(70_000)) {
		t.Fatalf("the right keys do not decrypt the stream: %v", err)
	}
	r.Close()

	// Change one base64 character of the wrapped data key (the record
	// still parses, and names the same intermediate key, which loads).
	hdr, err := stream.ParseHeader(ct)
	if err != nil {
		t.Fatal(err)
	}
	var rec envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(hdr.KeyRecord(), &rec); err != nil {
		t.Fatal(err)
	}
	enc, _ := json.Marshal(rec.EncryptedKey) // "base64"
	i := bytes.Index(ct, enc[1:len(enc)-1])
	if i < 0 {
		t.Fatal("wrapped key not found in the header")
	}
	bad := bytes.Clone(ct)
	bad[i+8] = map[bool]byte{true: 'B', false: 'A'}[bad[i+8] == 'A']
	_, err = encpipe.NewReader(context.Background(), bytes.NewReader(bad), good.factory)
	if err != stream.ErrAuth {
		t.Fatalf("modified wrapped key: err = %v, want exactly stream.ErrAuth", err)
	}
}
