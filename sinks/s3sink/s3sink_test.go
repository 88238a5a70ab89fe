package s3sink_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
)

// faulty wraps the real client: it counts parts in flight and can fail or
// hold chosen parts.
type faulty struct {
	*s3.Client
	failPart   int32 // this part number fails ...
	failTimes  int32 // ... this many times (-1: always)
	failed     atomic.Int32
	hold       chan struct{} // when set, every UploadPart waits for it
	inFlight   atomic.Int32
	maxFlight  atomic.Int32
	partsTried atomic.Int32
	onCreate   func() // runs after the server has created the upload
}

// CreateMultipartUpload creates the upload, runs onCreate, and then fails
// if ctx was cancelled meanwhile, as the SDK does when a cancellation
// lands while the response is read.
func (f *faulty) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	out, err := f.Client.CreateMultipartUpload(context.WithoutCancel(ctx), in, opts...)
	if f.onCreate != nil {
		f.onCreate()
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return out, err
}

var errInjected = errors.New("injected failure: connection reset by peer")

func (f *faulty) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxFlight.Load()
		if n <= m || f.maxFlight.CompareAndSwap(m, n) {
			break
		}
	}
	f.partsTried.Add(1)
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if *in.PartNumber == f.failPart && (f.failTimes < 0 || f.failed.Load() < f.failTimes) {
		f.failed.Add(1)
		return nil, errInjected
	}
	return f.Client.UploadPart(ctx, in, opts...)
}

type tracker struct {
	mu             sync.Mutex
	started, ended []string
}

func (t *tracker) Started(b, k, id string) {
	t.mu.Lock()
	t.started = append(t.started, id)
	t.mu.Unlock()
}
func (t *tracker) Ended(b, k, id string) { t.mu.Lock(); t.ended = append(t.ended, id); t.mu.Unlock() }

func newClient(t *testing.T) (*s3.Client, string) {
	c := s3test.Client(t, s3test.Endpoint(t))
	return c, s3test.Bucket(t, c)
}

// writeInSteps writes data in pieces of varying sizes.
func writeInSteps(w *s3sink.Writer, data []byte) error {
	steps := []int{1, 65552, 300, 1 << 20, 7}
	for i := 0; len(data) > 0; i++ {
		n := min(steps[i%len(steps)], len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func TestMultipartUploadRoundTripsWithAlignedParts(t *testing.T) {
	c, bucket := newClient(t)
	const part, extra = s3sink.MinPartSize, 300
	data := s3test.Random(1, 4*part+extra+12345)
	f := &faulty{Client: c}
	tr := &tracker{}
	w, err := s3sink.New(context.Background(), f, bucket, "dir/obj.ep", s3sink.WithPartSize(part), s3sink.WithConcurrency(2),
		s3sink.WithMetadata(map[string]string{"enc-pipe-format": "1"}), s3sink.WithTracker(tr))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Align(extra); err != nil {
		t.Fatal(err)
	}
	if err := writeInSteps(w, data); err != nil {
		t.Fatal(err)
	}
	id := w.UploadID()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s3test.Get(t, c, bucket, "dir/obj.ep"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(data))
	}
	// Part 1 holds extra + part bytes, the others part bytes.
	wantParts := 1 + (len(data)-part-extra+part-1)/part
	head, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &bucket, Key: aws.String("dir/obj.ep"), PartNumber: aws.Int32(1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToInt64(head.ContentLength); got != part+extra {
		t.Errorf("part 1 holds %d bytes, want %d", got, part+extra)
	}
	if !strings.HasSuffix(strings.Trim(aws.ToString(head.ETag), `"`), fmt.Sprintf("-%d", wantParts)) {
		t.Errorf("ETag %s: want %d parts", aws.ToString(head.ETag), wantParts)
	}
	if head.Metadata["enc-pipe-format"] != "1" {
		t.Errorf("metadata %v", head.Metadata)
	}
	if m := f.maxFlight.Load(); m > 2 {
		t.Errorf("%d parts in flight with concurrency 2", m)
	}
	if fmt.Sprint(tr.started) != fmt.Sprint([]string{id}) || fmt.Sprint(tr.ended) != fmt.Sprint([]string{id}) {
		t.Errorf("tracker saw started %v, ended %v; upload %s", tr.started, tr.ended, id)
	}
	if u := s3test.Uploads(t, c, bucket, ""); len(u) != 0 {
		t.Errorf("%d incomplete uploads left", len(u))
	}
}

func TestShortObjectIsWrittenWithOnePut(t *testing.T) {
	c, bucket := newClient(t)
	for _, n := range []int{0, 1, s3sink.MinPartSize - 1} {
		data := s3test.Random(2, n)
		f := &faulty{Client: c}
		key := fmt.Sprintf("short-%d", n)
		w, err := s3sink.New(context.Background(), f, bucket, key, s3sink.WithPartSize(s3sink.MinPartSize),
			s3sink.WithContentType("application/x-test"))
		if err != nil {
			t.Fatal(err)
		}
		if err := writeInSteps(w, data); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if f.partsTried.Load() != 0 || w.UploadID() != "" {
			t.Errorf("%d bytes: %d parts, upload %q: want one PutObject", n, f.partsTried.Load(), w.UploadID())
		}
		if got := s3test.Get(t, c, bucket, key); !bytes.Equal(got, data) {
			t.Errorf("%d bytes: read back %d", n, len(got))
		}
	}
}

func TestFailingPartAbortsAndLeavesNoObject(t *testing.T) {
	c, bucket := newClient(t)
	old := []byte("the object that was there before")
	s3test.Put(t, c, bucket, "existing", old)
	for _, key := range []string{"new", "existing"} {
		f := &faulty{Client: c, failPart: 3, failTimes: -1}
		w, err := s3sink.New(context.Background(), f, bucket, key, s3sink.WithPartSize(s3sink.MinPartSize),
			s3sink.WithRetries(2), s3sink.WithBackoff(time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		werr := writeInSteps(w, s3test.Random(3, 5*s3sink.MinPartSize))
		cerr := w.Close()
		if !errors.Is(errors.Join(werr, cerr), errInjected) {
			t.Fatalf("%s: Write %v, Close %v: want the part's error", key, werr, cerr)
		}
		if f.failed.Load() != 3 {
			t.Errorf("%s: part 3 was tried %d times, want 1 + 2 retries", key, f.failed.Load())
		}
		if key == "new" && s3test.Exists(t, c, bucket, key) {
			t.Errorf("a failed upload left object %s", key)
		}
		if key == "existing" && !bytes.Equal(s3test.Get(t, c, bucket, key), old) {
			t.Errorf("a failed upload changed the existing object")
		}
		if u := s3test.Uploads(t, c, bucket, key); len(u) != 0 {
			t.Errorf("%s: %d incomplete uploads left after the failure", key, len(u))
		}
		if _, err := w.Write([]byte("x")); !errors.Is(err, sinks.ErrClosed) {
			t.Errorf("Write after a failed Close: %v", err)
		}
	}
}

func TestFailedPartIsRetried(t *testing.T) {
	c, bucket := newClient(t)
	data := s3test.Random(4, 3*s3sink.MinPartSize+5)
	f := &faulty{Client: c, failPart: 2, failTimes: 2}
	w, err := s3sink.New(context.Background(), f, bucket, "obj", s3sink.WithPartSize(s3sink.MinPartSize), s3sink.WithBackoff(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeInSteps(w, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if f.failed.Load() != 2 {
		t.Errorf("part 2 failed %d times, want 2", f.failed.Load())
	}
	if !bytes.Equal(s3test.Get(t, c, bucket, "obj"), data) {
		t.Error("object differs after retried parts")
	}
}

func TestCloseWithErrorInterruptsABlockedWriteAndAborts(t *testing.T) {
	c, bucket := newClient(t)
	f := &faulty{Client: c, hold: make(chan struct{})}
	w, err := s3sink.New(context.Background(), f, bucket, "obj", s3sink.WithPartSize(s3sink.MinPartSize), s3sink.WithConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { werr <- writeInSteps(w, s3test.Random(5, 4*s3sink.MinPartSize)) }()
	// With one part held in flight and both buffers full, Write blocks.
	deadline := time.Now().Add(10 * time.Second)
	for f.inFlight.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cause := errors.New("interrupted by SIGTERM")
	if err := w.CloseWithError(cause); err != nil {
		t.Fatal(err)
	}
	if err := <-werr; !errors.Is(err, cause) {
		t.Errorf("blocked Write returned %v, want the abort cause", err)
	}
	if s3test.Exists(t, c, bucket, "obj") {
		t.Error("an aborted upload left the object")
	}
	if u := s3test.Uploads(t, c, bucket, ""); len(u) != 0 {
		t.Errorf("%d incomplete uploads left after CloseWithError", len(u))
	}
	if m := f.maxFlight.Load(); m != 1 {
		t.Errorf("%d parts in flight with concurrency 1", m)
	}
}

// TestAbortDuringCreateStillAbortsTheUpload interrupts the writer while
// CreateMultipartUpload is in flight, after the server created the upload:
// the writer must still learn the upload's id and abort it.
func TestAbortDuringCreateStillAbortsTheUpload(t *testing.T) {
	c, bucket := newClient(t)
	f := &faulty{Client: c}
	w, err := s3sink.New(context.Background(), f, bucket, "obj", s3sink.WithPartSize(s3sink.MinPartSize))
	if err != nil {
		t.Fatal(err)
	}
	cause := errors.New("interrupted by SIGINT")
	aborted := make(chan error, 1)
	f.onCreate = func() {
		go func() { aborted <- w.CloseWithError(cause) }()
		time.Sleep(100 * time.Millisecond) // CloseWithError cancels, then waits for Write
	}
	if err := writeInSteps(w, s3test.Random(6, 2*s3sink.MinPartSize)); !errors.Is(err, cause) {
		t.Errorf("Write: %v, want the abort cause", err)
	}
	if err := <-aborted; err != nil {
		t.Fatal(err)
	}
	if u := s3test.Uploads(t, c, bucket, ""); len(u) != 0 {
		t.Errorf("%d incomplete uploads left by an abort during CreateMultipartUpload", len(u))
	}
}
