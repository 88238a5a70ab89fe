package metrics

import "time"

// Provider hands out instruments. Asking twice for the same name and
// label values returns instruments that report to the same series.
// Implementations must be safe for concurrent use; they may panic when a
// name is asked for as two kinds or with two sets of label names, which
// is a programming error.
type Provider interface {
	// Counter returns the counter name with the given labels.
	Counter(name string, labels ...Label) Counter
	// Gauge returns the gauge name with the given labels.
	Gauge(name string, labels ...Label) Gauge
	// Timer returns the timer name with the given labels.
	Timer(name string, labels ...Label) Timer
}

// Counter is a count that only goes up.
type Counter interface {
	// Add adds delta, which must not be negative.
	Add(delta int64)
}

// Gauge is a value that goes up and down.
type Gauge interface {
	// Add adds delta (which may be negative).
	Add(delta int64)
	// Set sets the value.
	Set(value int64)
}

// Timer records durations.
type Timer interface {
	// Observe records one duration.
	Observe(d time.Duration)
}

// Label is one label of a series: a name such as "kind" and a value from
// a small fixed set such as "auth".
type Label struct {
	Name, Value string
}

// Kind is the kind of an instrument.
type Kind int

// Kinds of instruments.
const (
	KindCounter Kind = iota + 1
	KindGauge
	KindTimer
)

// String returns "counter", "gauge" or "timer".
func (k Kind) String() string {
	switch k {
	case KindCounter:
		return "counter"
	case KindGauge:
		return "gauge"
	case KindTimer:
		return "timer"
	}
	return "unknown"
}

// Discard is the Provider of packages given none: its instruments do
// nothing. It holds no state.
var Discard Provider = discard{}

// Or returns p, or Discard when p is nil.
func Or(p Provider) Provider {
	if p == nil {
		return Discard
	}
	return p
}

// IsDiscard reports whether p is nil or Discard, so that a package can
// skip the work of measuring (reading the clock) when nobody listens.
func IsDiscard(p Provider) bool {
	if p == nil {
		return true
	}
	_, ok := p.(discard)
	return ok
}

type discard struct{}

func (discard) Counter(string, ...Label) Counter { return nop{} }
func (discard) Gauge(string, ...Label) Gauge     { return nop{} }
func (discard) Timer(string, ...Label) Timer     { return nop{} }

type nop struct{}

func (nop) Add(int64)             {}
func (nop) Set(int64)             {}
func (nop) Observe(time.Duration) {}

// Tee returns a Provider whose instruments report to every provider of
// ps (nil and Discard ones are left out). With none left it returns
// Discard, with one that one.
func Tee(ps ...Provider) Provider {
	var live []Provider
	for _, p := range ps {
		if !IsDiscard(p) {
			live = append(live, p)
		}
	}
	switch len(live) {
	case 0:
		return Discard
	case 1:
		return live[0]
	}
	return tee(live)
}

type tee []Provider

func (t tee) Counter(name string, labels ...Label) Counter {
	cs := make(teeCounter, len(t))
	for i, p := range t {
		cs[i] = p.Counter(name, labels...)
	}
	return cs
}

func (t tee) Gauge(name string, labels ...Label) Gauge {
	gs := make(teeGauge, len(t))
	for i, p := range t {
		gs[i] = p.Gauge(name, labels...)
	}
	return gs
}

func (t tee) Timer(name string, labels ...Label) Timer {
	ts := make(teeTimer, len(t))
	for i, p := range t {
		ts[i] = p.Timer(name, labels...)
	}
	return ts
}

type teeCounter []Counter

func (c teeCounter) Add(d int64) {
	for _, x := range c {
		x.Add(d)
	}
}

type teeGauge []Gauge

func (g teeGauge) Add(d int64) {
	for _, x := range g {
		x.Add(d)
	}
}

func (g teeGauge) Set(v int64) {
	for _, x := range g {
		x.Set(v)
	}
}

type teeTimer []Timer

func (t teeTimer) Observe(d time.Duration) {
	for _, x := range t {
		x.Observe(d)
	}
}
