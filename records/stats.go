package records

import "sync/atomic"

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
	read, written, dead, acked atomic.Int64
	bytesRead, bytesWritten    atomic.Int64
	fatal                      atomic.Int64
	kinds                      [6]atomic.Int64 // in allKinds order
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
