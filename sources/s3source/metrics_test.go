package s3source_test

import (
	"context"
	"io"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
)

// WithMetrics reports what the Object's own counters say.
func TestMetricsFollowTheObjectsCounters(t *testing.T) {
	data := s3test.Random(3, 1<<20+3)
	f := newFixture(t, map[string][]byte{"obj": data})
	m := metrics.NewMemory()
	obj, err := s3source.Open(context.Background(), f.direct, f.bucket, "obj", s3source.WithPrefetch(4096), s3source.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if _, err := io.Copy(io.Discard, obj); err != nil {
		t.Fatal(err)
	}
	if got := m.Value(s3source.MetricBytes); got != obj.Fetched() || got != int64(len(data)) {
		t.Errorf("%s = %d, Fetched %d, object %d bytes", s3source.MetricBytes, got, obj.Fetched(), len(data))
	}
	if got := m.Value(s3source.MetricRequests); got != obj.Requests() || got == 0 {
		t.Errorf("%s = %d, Requests %d", s3source.MetricRequests, got, obj.Requests())
	}
	if got := m.Value(s3source.MetricResumes); got != obj.Resumes() {
		t.Errorf("%s = %d, Resumes %d", s3source.MetricResumes, got, obj.Resumes())
	}
}
