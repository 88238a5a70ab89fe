package securebuf

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// A Factory reports to a metrics.Provider under Asherah's names:
// secret.allocated counts secrets made, secret.inuse those not closed.
func TestWithMetricsReportsAsherahNamesToAProvider(t *testing.T) {
	m := metrics.NewMemory()
	f := newTestFactory(t, WithMetrics(m))
	const made, closed = 5, 2
	var ss []Secret
	for range made {
		s, err := f.CreateRandom(32)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	for _, s := range ss[:closed] {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := m.Value("secret.allocated"); got != made {
		t.Errorf("secret.allocated = %d, want %d", got, made)
	}
	if got := m.Value("secret.inuse"); got != made-closed {
		t.Errorf("secret.inuse = %d, want %d", got, made-closed)
	}
	if p, _ := m.Point("secret.inuse"); p.Kind != metrics.KindGauge {
		t.Errorf("secret.inuse is a %v, want a gauge", p.Kind)
	}
	if got := m.Value("securebuf.locked_bytes"); got <= 0 {
		t.Errorf("securebuf.locked_bytes = %d with %d live secrets", got, made-closed)
	}
	for _, s := range ss[closed:] {
		s.Close()
	}
	if got := m.Value("secret.inuse"); got != 0 {
		t.Errorf("secret.inuse = %d after every Close", got)
	}
	// Every Metric was asked for, so a scrape shows zeros rather than
	// nothing: the failure counters exist with their reasons.
	if _, ok := m.Point("securebuf.alloc_failures", metrics.Label{Name: "reason", Value: "lock_limit"}); !ok {
		t.Error("securebuf.alloc_failures{reason=lock_limit} was not created")
	}
}

// MetricsFunc maps names and reason labels back to the Metric constants.
func TestMetricsFuncMapsEveryMetricBack(t *testing.T) {
	got := map[Metric]int64{}
	p := MetricsFunc(func(m Metric, d int64) { got[m] += d })
	in := newInstruments(p)
	for m := range numMetrics {
		in.Add(m, int64(m)+1)
	}
	for m := range numMetrics {
		if got[m] != int64(m)+1 {
			t.Errorf("%v: got %d, want %d", m, got[m], int64(m)+1)
		}
	}
	p.Counter("not.securebuf").Add(1) // ignored, no panic
}
