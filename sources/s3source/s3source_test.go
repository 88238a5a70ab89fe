package s3source_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/url"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
)

// fixture stores data under a fresh bucket and returns a client that
// talks to the server through a proxy the test controls.
type fixture struct {
	bucket string
	proxy  *s3test.Proxy
	direct *s3.Client
	viaPx  *s3.Client
}

func newFixture(t *testing.T, objects map[string][]byte) *fixture {
	t.Helper()
	ep := s3test.Endpoint(t)
	c := s3test.Client(t, ep)
	u, err := url.Parse(ep)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{bucket: s3test.Bucket(t, c), direct: c}
	f.proxy = s3test.NewProxy(t, u.Host)
	f.viaPx = s3test.Client(t, f.proxy.URL)
	for k, v := range objects {
		s3test.Put(t, c, f.bucket, k, v)
	}
	return f
}

func TestReadStreamsTheWholeObject(t *testing.T) {
	data := s3test.Random(1, 3<<20+17)
	f := newFixture(t, map[string][]byte{"obj": data, "empty": nil, "small": data[:100]})
	ctx := context.Background()
	for _, c := range []struct {
		key      string
		prefetch int
		requests int64 // derived below
	}{
		{"obj", 0, 2},      // HEAD, one GET
		{"obj", 4096, 2},   // prefetching GET, one GET for the rest
		{"small", 4096, 1}, // the prefetch holds it all
		{"empty", 0, 1},
		{"empty", 4096, 2}, // 416 for byte 0 of an empty object, then HEAD
	} {
		obj, err := s3source.Open(ctx, f.direct, f.bucket, c.key, s3source.WithPrefetch(c.prefetch))
		if err != nil {
			t.Fatalf("%s prefetch %d: %v", c.key, c.prefetch, err)
		}
		got, err := io.ReadAll(obj)
		if err != nil {
			t.Fatalf("%s prefetch %d: %v", c.key, c.prefetch, err)
		}
		want := map[string][]byte{"obj": data, "small": data[:100], "empty": {}}[c.key]
		if !bytes.Equal(got, want) || obj.Size() != int64(len(want)) {
			t.Errorf("%s prefetch %d: read %d bytes (size %d), want %d", c.key, c.prefetch, len(got), obj.Size(), len(want))
		}
		if obj.Fetched() != int64(len(want)) {
			t.Errorf("%s prefetch %d: fetched %d bytes, want %d", c.key, c.prefetch, obj.Fetched(), len(want))
		}
		if obj.Requests() != c.requests {
			t.Errorf("%s prefetch %d: %d requests, want %d", c.key, c.prefetch, obj.Requests(), c.requests)
		}
		obj.Close()
	}
	// iotest.TestReader also reads every byte with ReadAt: one GET each.
	s3test.Put(t, f.direct, f.bucket, "iotest", data[:3000])
	obj, err := s3source.Open(ctx, f.direct, f.bucket, "iotest", s3source.WithPrefetch(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if err := iotest.TestReader(obj, data[:3000]); err != nil {
		t.Error(err)
	}
}

func TestReadResumesAfterADroppedConnection(t *testing.T) {
	data := s3test.Random(2, 8<<20)
	f := newFixture(t, map[string][]byte{"obj": data})
	obj, err := s3source.Open(context.Background(), f.viaPx, f.bucket, "obj", s3source.WithBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	f.proxy.CutAfter(1 << 20)
	got, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes that differ from the %d stored", len(got), len(data))
	}
	if f.proxy.Cuts() != 1 || obj.Resumes() < 1 {
		t.Errorf("cuts %d, resumes %d: the connection was not cut and resumed", f.proxy.Cuts(), obj.Resumes())
	}
	if obj.Fetched() != int64(len(data)) {
		t.Errorf("fetched %d bytes for a %d-byte object: the resume did not start at the first missing byte", obj.Fetched(), len(data))
	}
}

func TestReadAtFetchesOnlyTheBytesAskedFor(t *testing.T) {
	data := s3test.Random(3, 1<<20)
	f := newFixture(t, map[string][]byte{"obj": data})
	obj, err := s3source.Open(context.Background(), f.viaPx, f.bucket, "obj", s3source.WithPrefetch(512), s3source.WithBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	fetched := obj.Fetched()
	if fetched != 512 {
		t.Fatalf("Open fetched %d bytes, want the 512 prefetched", fetched)
	}
	for _, r := range []struct{ off, n int64 }{{0, 100}, {500, 100}, {4096, 65536}, {1<<20 - 10, 10}, {1000, 1}} {
		p := make([]byte, r.n)
		n, err := obj.ReadAt(p, r.off)
		if err != nil || n != len(p) || !bytes.Equal(p, data[r.off:r.off+r.n]) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", r.off, r.n, n, err)
		}
		// Bytes below 512 come from the prefetch.
		fromServer := r.off + r.n - max(r.off, min(512, r.off+r.n))
		if d := obj.Fetched() - fetched; d != fromServer {
			t.Errorf("ReadAt(%d, %d) fetched %d bytes, want %d", r.off, r.n, d, fromServer)
		}
		fetched = obj.Fetched()
	}
	// Past the end: io.EOF with the bytes that exist.
	p := make([]byte, 100)
	n, err := obj.ReadAt(p, int64(len(data))-40)
	if n != 40 || err != io.EOF || !bytes.Equal(p[:40], data[len(data)-40:]) {
		t.Errorf("ReadAt at the end = %d, %v", n, err)
	}
	// A dropped connection inside a ReadAt is resumed.
	f.proxy.CutAfter(100 << 10)
	p = make([]byte, 512<<10)
	if n, err := obj.ReadAt(p, 1000); err != nil || !bytes.Equal(p[:n], data[1000:1000+len(p)]) {
		t.Fatalf("ReadAt through a cut connection = %d, %v", n, err)
	}
	if f.proxy.Cuts() != 1 || obj.Resumes() != 1 {
		t.Errorf("cuts %d, resumes %d, want 1 and 1", f.proxy.Cuts(), obj.Resumes())
	}
}

func TestReadAheadServesSequentialReadsWithOneGet(t *testing.T) {
	data := s3test.Random(4, 2<<20)
	f := newFixture(t, map[string][]byte{"obj": data})
	obj, err := s3source.Open(context.Background(), f.direct, f.bucket, "obj")
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	const off, n, step = 100_000, 1_000_000, 65552
	obj.ReadAhead(off, n)
	req, fetched := obj.Requests(), obj.Fetched()
	for pos := int64(off); pos < off+n; pos += step {
		p := make([]byte, min(step, off+n-pos))
		if k, err := obj.ReadAt(p, pos); err != nil || !bytes.Equal(p[:k], data[pos:pos+int64(k)]) {
			t.Fatalf("ReadAt(%d) = %d, %v", pos, k, err)
		}
	}
	if obj.Requests()-req != 1 || obj.Fetched()-fetched != n {
		t.Errorf("sequential reads of a %d-byte window took %d requests and %d bytes, want 1 and %d",
			n, obj.Requests()-req, obj.Fetched()-fetched, n)
	}
	// A read outside the window gets its own GET.
	p := make([]byte, 10)
	if _, err := obj.ReadAt(p, 5); err != nil || !bytes.Equal(p, data[5:15]) {
		t.Fatal(err)
	}
}

func TestReplacedObjectFailsWithErrChanged(t *testing.T) {
	data := s3test.Random(5, 1<<20)
	f := newFixture(t, map[string][]byte{"obj": data})
	obj, err := s3source.Open(context.Background(), f.direct, f.bucket, "obj", s3source.WithPrefetch(4096))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	s3test.Put(t, f.direct, f.bucket, "obj", s3test.Random(6, 1<<20))
	if _, err := io.ReadAll(obj); !errors.Is(err, s3source.ErrChanged) {
		t.Errorf("reading a replaced object: %v, want ErrChanged", err)
	}
}

func TestOpenMissingObjectFailsWithErrNotFound(t *testing.T) {
	f := newFixture(t, nil)
	for _, prefetch := range []int{0, 4096} {
		_, err := s3source.Open(context.Background(), f.direct, f.bucket, "missing", s3source.WithPrefetch(prefetch))
		if !errors.Is(err, s3source.ErrNotFound) {
			t.Errorf("prefetch %d: %v, want ErrNotFound", prefetch, err)
		}
	}
	_, err := s3source.Open(context.Background(), f.direct, "ep-no-such-bucket-"+f.bucket[len(f.bucket)-12:], "k")
	if !errors.Is(err, s3source.ErrNotFound) {
		t.Errorf("missing bucket: %v, want ErrNotFound", err)
	}
}
