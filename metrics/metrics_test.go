package metrics_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/metrics"
)

func TestMemoryCountsPerSeriesWhateverTheLabelOrder(t *testing.T) {
	m := metrics.NewMemory()
	a := m.Counter("x.errors", metrics.Label{Name: "op", Value: "load"}, metrics.Label{Name: "kind", Value: "io"})
	b := m.Counter("x.errors", metrics.Label{Name: "kind", Value: "io"}, metrics.Label{Name: "op", Value: "load"})
	c := m.Counter("x.errors", metrics.Label{Name: "kind", Value: "auth"}, metrics.Label{Name: "op", Value: "load"})
	a.Add(2)
	b.Add(3)
	c.Add(7)
	if got := m.Value("x.errors", metrics.Label{Name: "op", Value: "load"}, metrics.Label{Name: "kind", Value: "io"}); got != 5 {
		t.Fatalf("io series = %d, want 2+3", got)
	}
	if v, _ := m.Sum("x.errors"); v != 12 {
		t.Fatalf("sum over series = %d, want 12", v)
	}
	if _, ok := m.Point("x.errors"); ok {
		t.Fatal("a series without labels exists though none was asked for")
	}
}

func TestMemoryGaugeAndTimer(t *testing.T) {
	m := metrics.NewMemory()
	g := m.Gauge("secret.inuse")
	g.Add(5)
	g.Add(-2)
	if got := m.Value("secret.inuse"); got != 3 {
		t.Fatalf("gauge = %d, want 3", got)
	}
	g.Set(10)
	if got := m.Value("secret.inuse"); got != 10 {
		t.Fatalf("gauge after Set = %d", got)
	}
	tm := m.Timer("ael.drr.encrypt")
	tm.Observe(3 * time.Millisecond)
	tm.Observe(4 * time.Millisecond)
	p, ok := m.Point("ael.drr.encrypt")
	if !ok || p.Kind != metrics.KindTimer || p.Value != 2 || p.Total != 7*time.Millisecond {
		t.Fatalf("timer point %+v", p)
	}
	if s := p.String(); !strings.Contains(s, "count=2") {
		t.Fatalf("String() = %q", s)
	}
}

func TestMemoryRefusesANameWithTwoKinds(t *testing.T) {
	m := metrics.NewMemory()
	m.Counter("a.b")
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("a counter name reused as a gauge did not panic")
		}
	}()
	m.Gauge("a.b")
}

func TestMemoryRefusesANegativeCounterDelta(t *testing.T) {
	m := metrics.NewMemory()
	c := m.Counter("a.b")
	defer func() {
		if r := recover(); r == nil {
			t.Fatal("Add(-1) on a counter did not panic")
		}
	}()
	c.Add(-1)
}

func TestMemoryIsSafeForConcurrentUse(t *testing.T) {
	m := metrics.NewMemory()
	var wg sync.WaitGroup
	const goroutines, adds = 8, 1000
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := m.Counter("n")
			for range adds {
				c.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := m.Value("n"); got != goroutines*adds {
		t.Fatalf("count = %d, want %d", got, goroutines*adds)
	}
}

func TestTeeReportsToEveryProviderAndDropsDiscard(t *testing.T) {
	a, b := metrics.NewMemory(), metrics.NewMemory()
	p := metrics.Tee(a, nil, metrics.Discard, b)
	p.Counter("c").Add(2)
	p.Gauge("g").Set(4)
	p.Timer("t").Observe(time.Second)
	for i, m := range []*metrics.Memory{a, b} {
		if m.Value("c") != 2 || m.Value("g") != 4 || m.Value("t") != 1 {
			t.Fatalf("provider %d: %v", i, m.Points())
		}
	}
	if got := metrics.Tee(nil, metrics.Discard); !metrics.IsDiscard(got) {
		t.Fatalf("Tee of nothing live = %T, want Discard", got)
	}
	if got := metrics.Tee(a, metrics.Discard); got != metrics.Provider(a) {
		t.Fatalf("Tee of one live provider = %T, want it", got)
	}
}

func TestDiscardAndOr(t *testing.T) {
	if !metrics.IsDiscard(nil) || !metrics.IsDiscard(metrics.Discard) || metrics.IsDiscard(metrics.NewMemory()) {
		t.Fatal("IsDiscard is wrong")
	}
	if metrics.Or(nil) != metrics.Discard {
		t.Fatal("Or(nil) is not Discard")
	}
	// Discard's instruments accept anything.
	metrics.Discard.Counter("x").Add(1)
	metrics.Discard.Gauge("x").Set(-1)
	metrics.Discard.Timer("x").Observe(time.Second)
}
