package prommetrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/metrics/prommetrics"
)

func TestNamesFollowPrometheusConventions(t *testing.T) {
	for _, c := range []struct {
		name string
		kind metrics.Kind
		want string
	}{
		{"ael.drr.encrypt", metrics.KindTimer, "ael_drr_encrypt_seconds"},
		{"secret.allocated", metrics.KindCounter, "secret_allocated_total"},
		{"secret.inuse", metrics.KindGauge, "secret_inuse"},
	} {
		if got := prommetrics.Name(c.name, c.kind); got != c.want {
			t.Errorf("Name(%q, %v) = %q, want %q", c.name, c.kind, got, c.want)
		}
	}
}

func TestInstrumentsReachTheRegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	p := prommetrics.New(reg, prommetrics.WithHelp(func(n string) string {
		if n == "records.errors" {
			return "Records that failed, by kind."
		}
		return ""
	}))
	auth := p.Counter("records.errors", metrics.Label{Name: "kind", Value: "auth"})
	auth.Add(3)
	p.Counter("records.errors", metrics.Label{Name: "kind", Value: "json"}).Add(1)
	g := p.Gauge("secret.inuse")
	g.Add(4)
	g.Add(-1)
	tm := p.Timer("ael.kms.decryptkey")
	tm.Observe(2 * time.Millisecond)
	tm.Observe(3 * time.Millisecond)

	want := `
# HELP records_errors_total Records that failed, by kind.
# TYPE records_errors_total counter
records_errors_total{kind="auth"} 3
records_errors_total{kind="json"} 1
# HELP secret_inuse secret.inuse
# TYPE secret_inuse gauge
secret_inuse 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "records_errors_total", "secret_inuse"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, mf := range mfs {
		if mf.GetName() != "ael_kms_decryptkey_seconds" {
			continue
		}
		found = true
		h := mf.GetMetric()[0].GetHistogram()
		if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.005-1e-9 || h.GetSampleSum() > 0.005+1e-9 {
			t.Fatalf("histogram count %d sum %g, want 2 and 0.005", h.GetSampleCount(), h.GetSampleSum())
		}
	}
	if !found {
		t.Fatal("no ael_kms_decryptkey_seconds family")
	}
}

func TestNothingIsRegisteredBeforeUseNorWithTheDefaultRegistry(t *testing.T) {
	before, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	p := prommetrics.New(reg)
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("a new Provider registered %d series (%v)", n, err)
	}
	p.Counter("a.b").Add(1)
	after, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("the default registry went from %d to %d families", len(before), len(after))
	}
}

func TestSameNameAsTwoKindsPanics(t *testing.T) {
	p := prommetrics.New(prometheus.NewRegistry())
	p.Counter("x.y", metrics.Label{Name: "op", Value: "a"})
	defer func() {
		if recover() == nil {
			t.Fatal("the same name with other label names did not panic")
		}
	}()
	p.Counter("x.y", metrics.Label{Name: "kind", Value: "a"})
}
