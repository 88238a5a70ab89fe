package metrics

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Memory is a Provider that keeps every series in memory: for tests, and
// for summaries at the end of a run. Instruments are atomic counters; a
// Timer keeps the count and the sum of its durations. The zero Memory is
// not usable: call NewMemory. Memory is safe for concurrent use. It
// panics when a name is asked for as two kinds or with two sets of label
// names.
type Memory struct {
	mu     sync.Mutex
	series map[string]*memSeries // by name and labels
	kinds  map[string]memKind    // by name
}

type memKind struct {
	kind   Kind
	labels string // the label names, sorted and joined
}

type memSeries struct {
	p     Point
	v     atomic.Int64 // counter or gauge value; timer count
	total atomic.Int64 // timer: nanoseconds
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{series: map[string]*memSeries{}, kinds: map[string]memKind{}}
}

// Point is the value of one series.
type Point struct {
	Kind   Kind
	Name   string
	Labels []Label // sorted by name
	// Value is a counter's or a gauge's value, or a timer's count.
	Value int64
	// Total is the sum of a timer's durations.
	Total time.Duration
}

// String renders the point as name{a="x",b="y"} value.
func (p Point) String() string {
	s := seriesKey(p.Name, p.Labels)
	if p.Kind == KindTimer {
		return fmt.Sprintf("%s count=%d total=%v", s, p.Value, p.Total)
	}
	return fmt.Sprintf("%s %d", s, p.Value)
}

func sortedLabels(labels []Label) []Label {
	l := slices.Clone(labels)
	slices.SortFunc(l, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
	return l
}

func seriesKey(name string, sorted []Label) string {
	if len(sorted) == 0 {
		return name
	}
	var b strings.Builder
	b.WriteString(name)
	b.WriteByte('{')
	for i, l := range sorted {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.Name, l.Value)
	}
	b.WriteByte('}')
	return b.String()
}

func labelNames(sorted []Label) string {
	names := make([]string, len(sorted))
	for i, l := range sorted {
		names[i] = l.Name
	}
	return strings.Join(names, ",")
}

func (m *Memory) get(kind Kind, name string, labels []Label) *memSeries {
	sorted := sortedLabels(labels)
	key := seriesKey(name, sorted)
	m.mu.Lock()
	defer m.mu.Unlock()
	want := memKind{kind, labelNames(sorted)}
	if k, ok := m.kinds[name]; ok && k != want {
		panic(fmt.Sprintf("metrics: %q used as a %v with labels (%s) and as a %v with labels (%s)", name, k.kind, k.labels, kind, want.labels))
	}
	m.kinds[name] = want
	s := m.series[key]
	if s == nil {
		s = &memSeries{p: Point{Kind: kind, Name: name, Labels: sorted}}
		m.series[key] = s
	}
	return s
}

// Counter implements Provider.
func (m *Memory) Counter(name string, labels ...Label) Counter {
	return (*memCounter)(m.get(KindCounter, name, labels))
}

// Gauge implements Provider.
func (m *Memory) Gauge(name string, labels ...Label) Gauge {
	return (*memGauge)(m.get(KindGauge, name, labels))
}

// Timer implements Provider.
func (m *Memory) Timer(name string, labels ...Label) Timer {
	return (*memTimer)(m.get(KindTimer, name, labels))
}

type memCounter memSeries

func (c *memCounter) Add(d int64) {
	if d < 0 {
		panic(fmt.Sprintf("metrics: counter %q decreased by %d", c.p.Name, -d))
	}
	c.v.Add(d)
}

type memGauge memSeries

func (g *memGauge) Add(d int64) { g.v.Add(d) }
func (g *memGauge) Set(v int64) { g.v.Store(v) }

type memTimer memSeries

func (t *memTimer) Observe(d time.Duration) {
	t.v.Add(1)
	t.total.Add(int64(d))
}

// Value returns the value of the counter or gauge name with exactly these
// labels, or a timer's count; 0 if there is no such series.
func (m *Memory) Value(name string, labels ...Label) int64 {
	p, _ := m.Point(name, labels...)
	return p.Value
}

// Point returns the series name with exactly these labels, and whether it
// exists.
func (m *Memory) Point(name string, labels ...Label) (Point, bool) {
	key := seriesKey(name, sortedLabels(labels))
	m.mu.Lock()
	s := m.series[key]
	m.mu.Unlock()
	if s == nil {
		return Point{Name: name}, false
	}
	return s.point(), true
}

// Sum returns the sum of Value over every series of name (all label
// values), and the sum of their Totals for a timer.
func (m *Memory) Sum(name string) (value int64, total time.Duration) {
	for _, p := range m.Points() {
		if p.Name == name {
			value += p.Value
			total += p.Total
		}
	}
	return value, total
}

// Points returns every series, sorted by name and labels.
func (m *Memory) Points() []Point {
	m.mu.Lock()
	keys := make([]string, 0, len(m.series))
	for k := range m.series {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	ps := make([]Point, len(keys))
	for i, k := range keys {
		ps[i] = m.series[k].point()
	}
	m.mu.Unlock()
	return ps
}

func (s *memSeries) point() Point {
	p := s.p
	p.Labels = slices.Clone(p.Labels)
	p.Value = s.v.Load()
	p.Total = time.Duration(s.total.Load())
	return p
}
