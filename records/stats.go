package records

import (
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// Metric names of a Pipeline with Metrics. Bytes are key, value and header
// bytes, as in Stats.
const (
	MetricRead         = "records.read"         // counter: records the source produced
	MetricWritten      = "records.written"      // counter: records the sink acknowledged
	MetricDeadLettered = "records.deadlettered" // counter: records the dead-letter sink acknowledged
	MetricAcked        = "records.acked"        // counter: records acknowledged to the source (Kafka: committed)
	MetricBytesRead    = "records.read.bytes"   // counter
	MetricBytesWritten = "records.written.bytes"
	// MetricErrors counts failed records by label "kind" (an ErrorKind).
	MetricErrors = "records.errors"
	// MetricFatal counts failures that stopped a run without being a
	// record's fault.
	MetricFatal = "records.fatal"
	// MetricInFlight is the number of records read and not yet
	// acknowledged (gauge).
	MetricInFlight = "records.inflight"
	// MetricLag is the source's lag when it is a LagReporter (gauge),
	// sampled at every acknowledgement.
	MetricLag = "records.lag"
	// MetricCacheHits and MetricCacheMisses are the Transformer's key
	// cache counts when it is a CacheReporter, sampled at every
	// acknowledgement.
	MetricCacheHits   = "records.cache.hits"
	MetricCacheMisses = "records.cache.misses"
)

// Stats are a Pipeline's counts, for monitoring. Counts only grow during a
// run.
type Stats struct {
	Read         int64 // records the source produced
	Written      int64 // records the sink acknowledged
	DeadLettered int64 // records the dead-letter sink acknowledged
	Acked        int64 // records acknowledged to the source
	BytesRead    int64 // key, value and header bytes of the records read
	BytesWritten int64 // the same of the records written to the sink
	// Errors counts the records that failed, by kind (dead-lettered or
	// the one that stopped the run).
	Errors map[ErrorKind]int64
	// Fatal counts failures that stopped the run without being a
	// record's fault (a backend, the sink, a panic); 0 or 1.
	Fatal int64
	// KeyCacheHits and KeyCacheMisses count, when the Transformer is an
	// Encrypter or a Decrypter, the lookups of partitions' sessions and
	// data keys that were served from its caches or had to load.
	KeyCacheHits   int64
	KeyCacheMisses int64
	// Lag is the source's lag (records behind the end of its partitions)
	// when it reports one (a LagReporter), else -1.
	Lag int64
}

// LagReporter is implemented by sources that know how far behind they are.
type LagReporter interface {
	Lag() int64
}

// CacheReporter is implemented by Transformers with key caches.
type CacheReporter interface {
	CacheStats() (hits, misses int64)
}

var allKinds = []ErrorKind{KindFormat, KindJSON, KindPartition, KindKey, KindAuth, KindSize}

type counters struct {
	read, written, dead, acked stat
	bytesRead, bytesWritten    stat
	fatal                      stat
	kinds                      [6]stat // in allKinds order

	inFlight          metrics.Gauge // nil without metrics
	lag               func() int64
	lagGauge          metrics.Gauge
	cache             func() (hits, misses int64)
	hits, misses      metrics.Counter
	lastHit, lastMiss atomic.Int64
}

// stat is a count of Stats that also goes to a metrics.Counter, and to an
// optional hook, once bound.
type stat struct {
	atomic.Int64
	c     metrics.Counter
	after func(delta int64)
}

func (s *stat) Add(delta int64) int64 {
	v := s.Int64.Add(delta)
	if s.c != nil {
		s.c.Add(delta)
		if s.after != nil {
			s.after(delta)
		}
	}
	return v
}

// bind connects the counts to p.Metrics, before the run starts.
func (c *counters) bind(p *Pipeline) {
	m := p.Metrics
	if metrics.IsDiscard(m) {
		return
	}
	for _, s := range []struct {
		st   *stat
		name string
	}{
		{&c.read, MetricRead}, {&c.written, MetricWritten}, {&c.dead, MetricDeadLettered}, {&c.acked, MetricAcked},
		{&c.bytesRead, MetricBytesRead}, {&c.bytesWritten, MetricBytesWritten}, {&c.fatal, MetricFatal},
	} {
		s.st.c = m.Counter(s.name)
	}
	for i, k := range allKinds {
		c.kinds[i].c = m.Counter(MetricErrors, metrics.Label{Name: "kind", Value: string(k)})
	}
	c.inFlight = m.Gauge(MetricInFlight)
	c.read.after = func(d int64) { c.inFlight.Add(d) }
	if lr, ok := p.Source.(LagReporter); ok {
		c.lag, c.lagGauge = lr.Lag, m.Gauge(MetricLag)
	}
	if cr, ok := p.Transform.(CacheReporter); ok {
		c.cache, c.hits, c.misses = cr.CacheStats, m.Counter(MetricCacheHits), m.Counter(MetricCacheMisses)
	}
	c.acked.after = func(d int64) {
		c.inFlight.Add(-d)
		c.sample()
	}
}

// sample reports the figures that the source and the Transformer keep.
func (c *counters) sample() {
	if c.lag != nil {
		c.lagGauge.Set(c.lag())
	}
	if c.cache != nil {
		h, m := c.cache()
		advance(&c.lastHit, h, c.hits)
		advance(&c.lastMiss, m, c.misses)
	}
}

// advance adds to ctr what v has grown by since last.
func advance(last *atomic.Int64, v int64, ctr metrics.Counter) {
	for {
		prev := last.Load()
		if v <= prev {
			return
		}
		if last.CompareAndSwap(prev, v) {
			ctr.Add(v - prev)
			return
		}
	}
}

func (c *counters) countKind(k ErrorKind) {
	for i, kk := range allKinds {
		if kk == k {
			c.kinds[i].Add(1)
			return
		}
	}
}

// Stats returns the counts so far. It is safe to call during Run.
func (p *Pipeline) Stats() Stats {
	c := &p.stats
	s := Stats{
		Read: c.read.Load(), Written: c.written.Load(), DeadLettered: c.dead.Load(), Acked: c.acked.Load(),
		BytesRead: c.bytesRead.Load(), BytesWritten: c.bytesWritten.Load(), Fatal: c.fatal.Load(),
		Errors: map[ErrorKind]int64{}, Lag: -1,
	}
	for i, k := range allKinds {
		if n := c.kinds[i].Load(); n > 0 {
			s.Errors[k] = n
		}
	}
	if cr, ok := p.Transform.(CacheReporter); ok {
		s.KeyCacheHits, s.KeyCacheMisses = cr.CacheStats()
	}
	if lr, ok := p.Source.(LagReporter); ok {
		s.Lag = lr.Lag()
	}
	return s
}
