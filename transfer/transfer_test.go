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

// TestDecryptRangeFetchesOnlyTheHeaderFinalChunkAndRangeChunks encrypts a
// stream into a multipart object whose parts hold whole chunks, then
// decrypts ranges at and around chunk and part boundaries, and checks the
// plaintext and the exact number of bytes fetched from S3: the header (or
// the prefetch), the final chunk, and the chunks that hold the range.
func TestDecryptRangeFetchesOnlyTheHeaderFinalChunkAndRangeChunks(t *testing.T) {
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
	chunksPerPart := partSize / ct
	partBoundary := chunksPerPart * chunk // plaintext offset where part 2 starts
	type rng struct{ off, n int64 }
	ranges := []rng{
		{0, 1}, {0, chunk}, {chunk - 1, 2}, {chunk, chunk}, {3*chunk + 5, 10 * chunk},
		{partBoundary - 1, 2}, {partBoundary - chunk, 2 * chunk}, {partBoundary, 1},
		{2*partBoundary - 100, 200}, {size - 1, 1}, {size - chunk - 1, chunk + 1}, {size / 2, -1}, {0, -1}, {size, 0},
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
				if n < 0 {
					n = size - r.off
				}
				if got != n || !bytes.Equal(out.Bytes(), plain[r.off:r.off+n]) {
					t.Fatalf("wrote %d bytes, want plaintext [%d, %d)", got, r.off, r.off+n)
				}
				spans := []span{{0, hdr}, {0, min(int64(prefetch), objSize)}, final}
				if n > 0 {
					first, last := r.off/chunk, (r.off+n-1)/chunk
					spans = append(spans, span{hdr + first*ct, min(hdr+(last+1)*ct, objSize)})
				}
				want := unionLen(spans)
				if obj.Fetched() != want {
					t.Errorf("fetched %d bytes, want %d (header %d, final chunk, chunks of the range)", obj.Fetched(), want, hdr)
				}
				// The bound, once the final chunk (always read, to
				// refuse a truncated stream) is set aside: range + two chunks
				// (with the range's tags) + header (or the prefetch).
				tags := (n + chunk - 1) / chunk * stream.TagSize
				bound := n + tags + 2*ct + max(hdr, int64(prefetch)) + (final.hi - final.lo)
				if obj.Fetched() > bound {
					t.Errorf("fetched %d bytes, over the bound %d", obj.Fetched(), bound)
				}
				// Requests: the HEAD or prefetch; two GETs for the header
				// (its length, then the rest) unless prefetched; one for
				// the final chunk; one for all the chunks of the range.
				wantReq := int64(2)
				if int64(prefetch) < hdr {
					wantReq += 2
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
