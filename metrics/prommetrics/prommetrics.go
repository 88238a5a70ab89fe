// Package prommetrics adapts metrics.Provider to Prometheus: each name
// becomes a metric family of the registry the caller gives, registered
// the first time an instrument of that name is asked for.
//
// Names map as follows: dots become underscores, counters get "_total"
// and timers, which become histograms of seconds, "_seconds". So
// Asherah's timer "ael.drr.encrypt" is ael_drr_encrypt_seconds and the
// counter "secret.allocated" is secret_allocated_total; the gauge
// "secret.inuse" stays secret_inuse.
//
// Nothing is registered with prometheus.DefaultRegisterer unless the
// caller passes it. A Provider is safe for concurrent use; its
// instruments cost what the client_golang instruments cost (an atomic
// add, or a few for a histogram).
package prommetrics

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// DefaultBuckets are the histogram buckets of timers, in seconds: powers
// of four from 1 µs to about 4 s, which spans an envelope operation
// (microseconds) and a KMS or metastore call (milliseconds to seconds).
var DefaultBuckets = prometheus.ExponentialBuckets(1e-6, 4, 12)

// Option configures New.
type Option func(*Provider)

// WithBuckets sets the histogram buckets of timers, in seconds.
func WithBuckets(b []float64) Option {
	return func(p *Provider) { p.buckets = slices.Clone(b) }
}

// WithHelp sets the help text of each family: help is called with the
// metric's name (as given to the Provider, with dots) and returns "" when
// it has none, in which case the help is that name.
func WithHelp(help func(name string) string) Option {
	return func(p *Provider) { p.help = help }
}

// Provider is a metrics.Provider that registers its families with a
// prometheus.Registerer. It panics when a name is asked for as two kinds
// or with two sets of label names, and when the registry refuses a
// family (a name taken by another collector): programming errors.
type Provider struct {
	reg     prometheus.Registerer
	buckets []float64
	help    func(string) string

	mu   sync.Mutex
	fams map[string]*family // by Prometheus name
}

var _ metrics.Provider = (*Provider)(nil)

type family struct {
	kind   metrics.Kind
	name   string   // as given
	labels []string // label names, sorted
	vec    any      // *prometheus.CounterVec, *GaugeVec or *HistogramVec
}

// New returns a Provider that registers with reg.
func New(reg prometheus.Registerer, opts ...Option) *Provider {
	p := &Provider{reg: reg, buckets: DefaultBuckets, fams: map[string]*family{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

var validName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// Name returns the Prometheus name of the metric name of kind k.
func Name(name string, k metrics.Kind) string {
	n := strings.NewReplacer(".", "_", "-", "_").Replace(name)
	switch k {
	case metrics.KindCounter:
		n += "_total"
	case metrics.KindTimer:
		n += "_seconds"
	}
	return n
}

func (p *Provider) family(k metrics.Kind, name string, labels []metrics.Label) (*family, []string) {
	sorted := slices.Clone(labels)
	slices.SortFunc(sorted, func(a, b metrics.Label) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(sorted))
	values := make([]string, len(sorted))
	for i, l := range sorted {
		names[i], values[i] = l.Name, l.Value
	}
	pn := Name(name, k)
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.fams[pn]; f != nil {
		if f.kind != k || !slices.Equal(f.labels, names) {
			panic(fmt.Sprintf("prommetrics: %q asked for as a %v with labels %v, already a %v with labels %v", name, k, names, f.kind, f.labels))
		}
		return f, values
	}
	if !validName.MatchString(pn) {
		panic(fmt.Sprintf("prommetrics: %q does not make a valid Prometheus name (%q)", name, pn))
	}
	help := name
	if p.help != nil {
		if h := p.help(name); h != "" {
			help = h
		}
	}
	f := &family{kind: k, name: name, labels: names}
	var c prometheus.Collector
	switch k {
	case metrics.KindCounter:
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: pn, Help: help}, names)
		f.vec, c = v, v
	case metrics.KindGauge:
		v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: pn, Help: help}, names)
		f.vec, c = v, v
	case metrics.KindTimer:
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: pn, Help: help, Buckets: p.buckets}, names)
		f.vec, c = v, v
	}
	if err := p.reg.Register(c); err != nil {
		panic(fmt.Sprintf("prommetrics: cannot register %s: %v", pn, err))
	}
	p.fams[pn] = f
	return f, values
}

// Counter implements metrics.Provider.
func (p *Provider) Counter(name string, labels ...metrics.Label) metrics.Counter {
	f, values := p.family(metrics.KindCounter, name, labels)
	return counter{f.vec.(*prometheus.CounterVec).WithLabelValues(values...)}
}

// Gauge implements metrics.Provider.
func (p *Provider) Gauge(name string, labels ...metrics.Label) metrics.Gauge {
	f, values := p.family(metrics.KindGauge, name, labels)
	return gauge{f.vec.(*prometheus.GaugeVec).WithLabelValues(values...)}
}

// Timer implements metrics.Provider.
func (p *Provider) Timer(name string, labels ...metrics.Label) metrics.Timer {
	f, values := p.family(metrics.KindTimer, name, labels)
	return timer{f.vec.(*prometheus.HistogramVec).WithLabelValues(values...)}
}

type counter struct{ c prometheus.Counter }

func (c counter) Add(d int64) { c.c.Add(float64(d)) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Add(d int64) { g.g.Add(float64(d)) }
func (g gauge) Set(v int64) { g.g.Set(float64(v)) }

type timer struct{ o prometheus.Observer }

func (t timer) Observe(d time.Duration) { t.o.Observe(d.Seconds()) }
