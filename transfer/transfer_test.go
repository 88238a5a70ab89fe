package transfer_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"testing"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
	"github.com/enc-pipe/enc-pipe/transfer"
)

func newFactory(t *testing.T) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), kms, envelope.NewAES256GCM())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// span is a half-open byte interval.
type span struct{ lo, hi int64 }

// unionLen is the number of bytes covered by the spans.
func unionLen(ss []span) int64 {
	sort.Slice(ss, func(i, j int) bool { return ss[i].lo < ss[j].lo })
	var total, end int64 = 0, -1
	for _, s := range ss {
		if s.hi <= s.lo {
			continue
		}
		if s.lo > end {
			total += s.hi - s.lo
			end = s.hi
		} else if s.hi > end {
			total += s.hi - end
			end = s.hi
		}
	}
	return total
}

// TestDecryptRangeFetchesTheHeaderAndOnlyTheChunksOfTheRange encrypts a
// stream into a multipart object whose parts hold whole chunks, then
// decrypts ranges at and around chunk and part boundaries, and checks the
// plaintext and the exact number of bytes fetched from S3: the header (or
// the prefetch) and the chunks that hold the range. The final chunk is
// one of them only when the range reaches it (or runs to the end, or
// starts after it).
func TestDecryptRangeFetchesTheHeaderAndOnlyTheChunksOfTheRange(t *testing.T) {
	c := s3test.Client(t, s3test.Endpoint(t))
	bucket := s3test.Bucket(t, c)
	ctx := context.Background()
	f := newFactory(t)
	sess, err := f.GetSession("tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	const chunk = stream.MinChunkSize
	const ct = chunk + stream.TagSize
	partSize := int64((s3sink.MinPartSize + ct - 1) / ct * ct)
	plain := s3test.Random(7, int(3*partSize-5000))
	up, err := s3sink.New(ctx, c, bucket, "obj.ep", s3sink.WithPartSize(partSize))
	if err != nil {
		t.Fatal(err)
	}
	w, err := encpipe.NewWriter(ctx, up, sess, stream.WithChunkSize(chunk))
	if err != nil {
		t.Fatal(err)
	}
	hdr := w.Header().Len()
	if err := up.Align(hdr); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}

	size := int64(len(plain))
	nChunks := (size + chunk - 1) / chunk
	objSize := hdr + size + nChunks*stream.TagSize
	final := span{hdr + (nChunks-1)*ct, objSize}
	lastStart := (nChunks - 1) * chunk // plaintext offset of the final chunk
	chunksPerPart := partSize / ct
	partBoundary := chunksPerPart * chunk // plaintext offset where part 2 starts
	type rng struct{ off, n int64 }
	ranges := []rng{
		{0, 1}, {0, chunk}, {chunk - 1, 2}, {chunk, chunk}, {3*chunk + 5, 10 * chunk},
		{partBoundary - 1, 2}, {partBoundary - chunk, 2 * chunk}, {partBoundary, 1},
		{2*partBoundary - 100, 200}, {lastStart - 10, 10}, {lastStart - 10, 11}, {size - 1, 1},
		{size - chunk - 1, chunk + 1}, {size - 5, 100}, {size / 2, -1}, {0, -1}, {size, 0}, {size / 2, 0},
	}
	for _, prefetch := range []int{0, 1024} {
		for _, r := range ranges {
			t.Run(fmt.Sprintf("prefetch=%d,off=%d,n=%d", prefetch, r.off, r.n), func(t *testing.T) {
				obj, err := s3source.Open(ctx, c, bucket, "obj.ep", s3source.WithPrefetch(prefetch))
				if err != nil {
					t.Fatal(err)
				}
				defer obj.Close()
				if obj.Size() != objSize {
					t.Fatalf("object holds %d bytes, want %d", obj.Size(), objSize)
				}
				var out bytes.Buffer
				got, err := transfer.DecryptRange(ctx, &out, obj, f, r.off, r.n)
				if err != nil {
					t.Fatal(err)
				}
				n := r.n
				if n < 0 || n > size-r.off {
					n = size - r.off
				}
				if got != n || !bytes.Equal(out.Bytes(), plain[r.off:r.off+n]) {
					t.Fatalf("wrote %d bytes, want plaintext [%d, %d)", got, r.off, r.off+n)
				}
				// The range reaches the end: it asks for bytes of the final
				// chunk, runs to the end, or starts there.
				reachesEnd := r.n < 0 || r.off+n > lastStart || r.off >= lastStart
				spans := []span{{0, hdr}, {0, min(int64(prefetch), objSize)}}
				if n > 0 {
					first, last := r.off/chunk, (r.off+n-1)/chunk
					spans = append(spans, span{hdr + first*ct, min(hdr+(last+1)*ct, objSize)})
				}
				if reachesEnd {
					spans = append(spans, final)
				}
				want := unionLen(spans)
				if obj.Fetched() != want {
					t.Errorf("fetched %d bytes, want %d (header %d, the chunks of the range, final chunk: %v)", obj.Fetched(), want, hdr, reachesEnd)
				}
				// The bound: range + two chunks (with the range's
				// tags) + header (or the prefetch).
				tags := (n + chunk - 1) / chunk * stream.TagSize
				bound := n + tags + 2*ct + max(hdr, int64(prefetch))
				if obj.Fetched() > bound {
					t.Errorf("fetched %d bytes, over the bound %d", obj.Fetched(), bound)
				}
				// Requests: the HEAD or prefetch; two GETs for the header
				// (its length, then the rest) unless prefetched; one for
				// the final chunk if the range reaches the end (it is
				// authenticated first); one for the other chunks of the
				// range.
				wantReq := int64(1)
				if int64(prefetch) < hdr {
					wantReq += 2
				}
				if reachesEnd {
					wantReq++
				}
				if n > 0 && hdr+(r.off/chunk)*ct < final.lo {
					wantReq++
				}
				if obj.Requests() != wantReq {
					t.Errorf("%d requests, want %d", obj.Requests(), wantReq)
				}
			})
		}
	}
	obj, err := s3source.Open(ctx, c, bucket, "obj.ep")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if _, err := transfer.DecryptRange(ctx, io.Discard, obj, f, size+1, 1); !errors.Is(err, transfer.ErrRange) {
		t.Errorf("range after the end: %v, want ErrRange", err)
	}
}

// TestDecryptRangeOfADamagedObject stores an encrypted stream cut at a
// chunk boundary, one with bytes appended, and one with a modified chunk,
// as S3 objects. A range before the damage gives the authentic bytes; a
// range that reaches it fails (ErrTruncated, ErrAuth) with nothing written
// when the damage is at the end; an offset after the apparent end is not
// reported as ErrRange, since that end is not authentic.
func TestDecryptRangeOfADamagedObject(t *testing.T) {
	c := s3test.Client(t, s3test.Endpoint(t))
	bucket := s3test.Bucket(t, c)
	ctx := context.Background()
	f := newFactory(t)
	sess, err := f.GetSession("tenant-a")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	const chunk = stream.MinChunkSize
	const ct = chunk + stream.TagSize
	plain := s3test.Random(8, 20*chunk+300)
	var buf bytes.Buffer
	w, err := encpipe.NewWriter(ctx, &buf, sess, stream.WithChunkSize(chunk))
	if err != nil {
		t.Fatal(err)
	}
	hdr := w.Header().Len()
	w.Write(plain)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	enc := buf.Bytes()
	const kept = 12 // chunks left in the cut object
	cut := enc[:hdr+kept*ct]
	extended := append(bytes.Clone(enc), s3test.Random(9, ct)...)
	tampered := bytes.Clone(enc)
	tampered[hdr+5*ct+100] ^= 1
	s3test.Put(t, c, bucket, "cut.ep", cut)
	s3test.Put(t, c, bucket, "extended.ep", extended)
	s3test.Put(t, c, bucket, "tampered.ep", tampered)

	decrypt := func(key string, off, n int64) ([]byte, error) {
		t.Helper()
		obj, err := s3source.Open(ctx, c, bucket, key)
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Close()
		var out bytes.Buffer
		got, err := transfer.DecryptRange(ctx, &out, obj, f, off, n)
		if got != int64(out.Len()) {
			t.Fatalf("%s [%d, +%d): returned %d, wrote %d", key, off, n, got, out.Len())
		}
		return out.Bytes(), err
	}
	type check struct {
		key    string
		off, n int64
		want   error // nil: the plaintext
	}
	for _, k := range []check{
		{"cut.ep", 0, (kept - 1) * chunk, nil},
		{"cut.ep", 3*chunk + 7, 5 * chunk, nil},
		{"cut.ep", (kept-1)*chunk - 1, 2, stream.ErrTruncated},
		{"cut.ep", (kept - 1) * chunk, 1, stream.ErrTruncated},
		{"cut.ep", 5, -1, stream.ErrTruncated},
		{"cut.ep", kept * chunk, 0, stream.ErrTruncated},
		{"cut.ep", kept*chunk + 1, 1, stream.ErrTruncated}, // not ErrRange
		{"extended.ep", 0, 20 * chunk, nil},
		{"extended.ep", 20*chunk + 1, 10, stream.ErrAuth},
		{"extended.ep", 0, -1, stream.ErrAuth},
		{"extended.ep", 21*chunk + 5000, 1, stream.ErrAuth}, // not ErrRange
		{"tampered.ep", 0, 5 * chunk, nil},
		{"tampered.ep", 6 * chunk, 3 * chunk, nil},
		{"tampered.ep", 5*chunk + 10, 1, stream.ErrAuth},
	} {
		got, err := decrypt(k.key, k.off, k.n)
		if k.want == nil {
			if err != nil || !bytes.Equal(got, plain[k.off:k.off+k.n]) {
				t.Errorf("%s [%d, +%d): %d bytes, %v; want the plaintext", k.key, k.off, k.n, len(got), err)
			}
			continue
		}
		if !errors.Is(err, k.want) || len(got) != 0 {
			t.Errorf("%s [%d, +%d): %d bytes, %v; want nothing written and %v", k.key, k.off, k.n, len(got), err, k.want)
		}
	}
	// A range across the modified chunk: the chunks before it are
	// written (each authenticated), then ErrAuth.
	got, err := decrypt("tampered.ep", 4*chunk, 3*chunk)
	if !errors.Is(err, stream.ErrAuth) || !bytes.Equal(got, plain[4*chunk:5*chunk]) {
		t.Errorf("tampered.ep across chunk 5: %d bytes, %v; want chunk 4, then ErrAuth", len(got), err)
	}
}

// copyJob copies the object, and fails for the names in fail.
func copyJob(fail map[string]bool) transfer.Job {
	return func(ctx context.Context, dst sinks.Sink, src sources.Source, e transfer.Entry) error {
		if fail[e.Name] {
			io.CopyN(dst, src, 10)
			return errors.New("job failed on purpose")
		}
		_, err := io.Copy(dst, src)
		return err
	}
}

func TestRunnerMapsNamesSkipsDoneObjectsAndGoesOnAfterFailures(t *testing.T) {
	c := s3test.Client(t, s3test.Endpoint(t))
	bucket := s3test.Bucket(t, c)
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string][]byte{}
	for i := range 30 {
		name := fmt.Sprintf("d%d/f%02d.txt", i%3, i)
		files[name] = s3test.Random(uint64(i), i*100)
	}
	files["big.bin"] = s3test.Random(99, s3sink.MinPartSize+12345)
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := &transfer.DirStore{Root: dir}
	dst := &transfer.S3Store{Client: c, Bucket: bucket, Prefix: "out/"}
	r := &transfer.Runner{Src: src, Dst: dst, Jobs: 3, Job: copyJob(map[string]bool{"d1/f04.txt": true, "big.bin": true})}
	res, err := r.Run(ctx)
	if !errors.Is(err, transfer.ErrFailures) || res.Objects != len(files) || res.Failed != 2 || res.Written != len(files)-2 {
		t.Fatalf("first run: %+v, %v", res, err)
	}
	for _, name := range []string{"d1/f04.txt", "big.bin"} {
		if s3test.Exists(t, c, bucket, "out/"+name) {
			t.Errorf("failed object %s was written", name)
		}
	}
	if u := s3test.Uploads(t, c, bucket, ""); len(u) != 0 {
		t.Errorf("%d incomplete uploads after failed jobs", len(u))
	}
	// A rerun does only what failed; a file changed since is done again.
	files["d2/f02.txt"] = []byte("changed since the first run")
	os.WriteFile(filepath.Join(dir, "d2", "f02.txt"), files["d2/f02.txt"], 0o644)
	r.Job = copyJob(nil)
	res, err = r.Run(ctx)
	if err != nil || res.Written != 3 || res.Skipped != len(files)-3 {
		t.Fatalf("rerun: %+v, %v: want 3 written (2 failed before, 1 changed), the rest skipped", res, err)
	}
	for name, data := range files {
		if got := s3test.Get(t, c, bucket, "out/"+name); !bytes.Equal(got, data) {
			t.Errorf("%s: %d bytes, want %d", name, len(got), len(data))
		}
	}
	// Back to a directory.
	back := t.TempDir()
	r = &transfer.Runner{Src: dst, Dst: &transfer.DirStore{Root: back}, Job: copyJob(nil)}
	res, err = r.Run(ctx)
	if err != nil || res.Written != len(files) {
		t.Fatalf("to a directory: %+v, %v", res, err)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(back, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v", name, err)
		}
	}
	res, err = r.Run(ctx)
	if res.Skipped != len(files) {
		t.Errorf("rerun to a directory: %+v, %v: want every file skipped", res, err)
	}
}

// TestDirStoreRefusesNamesOutsideTheRoot checks the names an S3 listing
// could hand to a directory: none may leave the root or alias another.
func TestDirStoreRefusesNamesOutsideTheRoot(t *testing.T) {
	root := t.TempDir()
	d := &transfer.DirStore{Root: filepath.Join(root, "out")}
	for _, name := range []string{"../escape", "a/../../escape", "/abs", "a//b", "a/./b", "a/", ".", "", "a\x00b"} {
		if _, err := d.Create(context.Background(), name, transfer.Entry{}); !errors.Is(err, transfer.ErrUnsafeName) {
			t.Errorf("Create(%q) = %v, want ErrUnsafeName", name, err)
		}
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("refused names left %d entries in the parent", len(ents))
	}
}
