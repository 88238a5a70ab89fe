package s3sink_test

import (
	"context"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
)

// WithMetrics counts the parts, bytes and retries of an upload, and the
// object once committed.
func TestMetricsCountPartsBytesRetriesAndObjects(t *testing.T) {
	c, bucket := newClient(t)
	const part = s3sink.MinPartSize
	data := s3test.Random(7, 3*part+5)
	wantParts := int64((len(data) + part - 1) / part)
	f := &faulty{Client: c, failPart: 2, failTimes: 1}
	m := metrics.NewMemory()
	w, err := s3sink.New(context.Background(), f, bucket, "obj", s3sink.WithPartSize(part),
		s3sink.WithBackoff(time.Millisecond), s3sink.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeInSteps(w, data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		want int64
	}{
		{s3sink.MetricParts, wantParts}, {s3sink.MetricBytes, int64(len(data))}, {s3sink.MetricObjects, 1},
		{s3sink.MetricRetries, int64(f.failed.Load())}, {s3sink.MetricAborts, 0},
		{s3sink.MetricPart, int64(f.partsTried.Load())}, // every attempt is timed
	} {
		if got := m.Value(c.name); got != c.want {
			t.Errorf("%s = %d, want %d", c.name, got, c.want)
		}
	}

	w, err = s3sink.New(context.Background(), c, bucket, "aborted", s3sink.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("short"))
	w.CloseWithError(nil)
	if got := m.Value(s3sink.MetricAborts); got != 1 {
		t.Errorf("%s = %d after CloseWithError, want 1", s3sink.MetricAborts, got)
	}
}
