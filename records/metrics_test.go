package records_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/records"
)

// lagSource is a memSource that reports a lag: the records it has not
// produced yet, of a topic that holds behind more than it will produce.
type lagSource struct {
	*memSource
	behind   int64
	produced atomic.Int64
}

func (s *lagSource) Next(ctx context.Context) (*records.Record, error) {
	r, err := s.memSource.Next(ctx)
	if err == nil {
		s.produced.Add(1)
	}
	return r, err
}

func (s *lagSource) Lag() int64 { return s.behind - s.produced.Load() }

// cachingTransform is failEvery(7) that reports a hit for every record and
// a miss for every tenth.
type cachingTransform struct {
	records.TransformFunc
	hits, misses atomic.Int64
}

func (c *cachingTransform) Transform(ctx context.Context, r *records.Record) error {
	if c.hits.Add(1)%10 == 0 {
		c.misses.Add(1)
	}
	return c.TransformFunc(ctx, r)
}

func (c *cachingTransform) CacheStats() (int64, int64) { return c.hits.Load(), c.misses.Load() }

// A Pipeline with Metrics reports what its Stats say, by the same names
// for any source: counts, errors by kind, nothing left in flight, and the
// source's lag and the Transformer's cache counts as last sampled.
func TestPipelineMetricsMatchItsStats(t *testing.T) {
	m := metrics.NewMemory()
	sink, dead := &memSink{}, &memSink{}
	src := &lagSource{memSource: &memSource{t: t, n: 1000, lanes: 3, written: func(r *records.Record) bool { return sink.has(r) || len(r.Value) > 0 }}, behind: 1005}
	xf := &cachingTransform{TransformFunc: failEvery(7)}
	p := &records.Pipeline{Source: src, Transform: xf, Sink: sink, DeadLetter: dead, Workers: 4, Metrics: m}
	if err := p.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	for _, c := range []struct {
		name string
		want int64
	}{
		{records.MetricRead, st.Read}, {records.MetricWritten, st.Written}, {records.MetricDeadLettered, st.DeadLettered},
		{records.MetricAcked, st.Acked}, {records.MetricBytesRead, st.BytesRead}, {records.MetricBytesWritten, st.BytesWritten},
		{records.MetricInFlight, 0}, {records.MetricLag, st.Lag},
		{records.MetricCacheHits, st.KeyCacheHits}, {records.MetricCacheMisses, st.KeyCacheMisses},
	} {
		if got := m.Value(c.name); got != c.want {
			t.Errorf("%s = %d, want %d (Stats %+v)", c.name, got, c.want, st)
		}
	}
	if st.Read != int64(src.n) || st.KeyCacheHits != int64(src.n) || st.Lag != src.behind-int64(src.n) {
		t.Fatalf("the run did not see every record: %+v", st)
	}
	auth := metrics.Label{Name: "kind", Value: string(records.KindAuth)}
	if got := m.Value(records.MetricErrors, auth); got != st.Errors[records.KindAuth] || got == 0 {
		t.Errorf("errors{kind=auth} = %d, Stats say %d", got, st.Errors[records.KindAuth])
	}
}
