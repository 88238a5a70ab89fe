package securebuf

import (
	"errors"
	"fmt"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// Defaults of the Factory options.
const (
	// DefaultMaxSize is the largest secret a Factory accepts unless
	// WithMaxSize says otherwise.
	DefaultMaxSize = 1 << 20
	// MaxScratchSize is the size of one scratch slot, the largest n that
	// Factory.Scratch accepts.
	MaxScratchSize = 64
	// DefaultScratchPages bounds the scratch arena of a Factory unless
	// WithScratchPages says otherwise: 16 pages of 4 KiB hold 1024 slots.
	DefaultScratchPages = 16

	maxMaxSize = 1 << 30
)

// Option configures a Factory. Options validate their argument; NewFactory
// returns the first option error.
type Option func(*options) error

type options struct {
	guardPages   bool
	canary       bool
	requireLock  bool
	maxSize      int
	scratchPages int
	metrics      eventSink
	logger       Logger
	access       AccessMode
}

func defaultOptions() options {
	return options{
		guardPages:   true,
		canary:       true,
		requireLock:  true,
		maxSize:      DefaultMaxSize,
		scratchPages: DefaultScratchPages,
		metrics:      nopMetrics{},
		access:       AccessMprotect,
	}
}

// WithGuardPages puts a no-access, unlocked guard page before and after
// every secret (default true). Without them a secret costs one mapping
// instead of three, which matters near vm.max_map_count, but an overrun or
// underrun of a callback's slice is no longer stopped by a fault.
func WithGuardPages(on bool) Option {
	return func(o *options) error { o.guardPages = on; return nil }
}

// WithCanary fills the unused head of a secret's data pages with a random
// canary that Close checks (default true). A mismatch makes Close return
// ErrCanary, after wiping.
func WithCanary(on bool) Option {
	return func(o *options) error { o.canary = on; return nil }
}

// WithRequireLock decides what happens when mlock fails (default true). When
// true the allocation fails with ErrLockLimit. When false the secret is
// created unlocked (it may be swapped out), the Logger is told, and the
// LockDegraded metric counts it. Exclusion from core dumps is never relaxed.
func WithRequireLock(on bool) Option {
	return func(o *options) error { o.requireLock = on; return nil }
}

// WithMaxSize sets the largest secret, in bytes, that New and CreateRandom
// accept (default DefaultMaxSize, at most 1 GiB). Larger requests fail with
// ErrInvalidSize.
func WithMaxSize(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > maxMaxSize {
			return fmt.Errorf("securebuf: WithMaxSize(%d): want 1..%d: %w", n, maxMaxSize, ErrInvalidSize)
		}
		o.maxSize = n
		return nil
	}
}

// WithScratchPages bounds the scratch arena to n pages (default
// DefaultScratchPages). The arena grows one chunk at a time as slots are
// needed and never beyond n pages; when every slot is taken, Scratch fails
// with ErrScratchFull.
func WithScratchPages(n int) Option {
	return func(o *options) error {
		if n <= 0 || n > 1<<16 {
			return fmt.Errorf("securebuf: WithScratchPages(%d): want 1..65536", n)
		}
		o.scratchPages = n
		return nil
	}
}

// WithMetrics reports the Factory's counters and gauges to p (default:
// none); see [Metric] for the names. The instruments are asked for when
// the option is applied.
func WithMetrics(p metrics.Provider) Option {
	return func(o *options) error {
		if p == nil {
			return errors.New("securebuf: WithMetrics(nil)")
		}
		o.metrics = newInstruments(p)
		return nil
	}
}

// WithLogger sets the logger that hears about leaked secrets (with the stack
// that created them) and degraded locking. Setting a logger makes every
// secret record its creation stack, which costs a few microseconds per
// secret. Key material is never logged.
func WithLogger(l Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("securebuf: WithLogger(nil)")
		}
		o.logger = l
		return nil
	}
}

// Logger receives debug messages. It is Asherah's one-method logger.
type Logger interface {
	Debugf(format string, args ...any)
}

// eventSink receives a Factory's metric events. It is called with no package
// lock held.
type eventSink interface {
	Add(m Metric, delta int64)
}

// Metric identifies one counter or gauge that a Factory reports to the
// metrics.Provider of WithMetrics, under Name and, for the allocation
// failures, a "reason" label of value Reason.
type Metric int

// The metrics a Factory reports. Names follow Asherah where Asherah has
// one (secret.allocated, secret.inuse; Asherah's secret.inuse is a
// go-metrics counter that goes down too, here a gauge).
const (
	// Allocated counts secrets created (cumulative).
	Allocated Metric = iota
	// InUse is the number of secrets not yet closed (gauge).
	InUse
	// LockedBytes is the memory locked for secrets and scratch slots, in
	// whole pages (gauge).
	LockedBytes
	// FailLockLimit counts allocations that failed at RLIMIT_MEMLOCK.
	FailLockLimit
	// FailMapLimit counts allocations that failed at vm.max_map_count or
	// for lack of address space.
	FailMapLimit
	// FailDontDump counts allocations that failed because memory could not
	// be excluded from core dumps.
	FailDontDump
	// FailProtect counts allocations and accesses that failed to change a
	// page protection.
	FailProtect
	// CanaryFailures counts canary mismatches found by Close.
	CanaryFailures
	// FinalizedUnclosed counts secrets closed by the garbage collector
	// because their owner forgot to Close them.
	FinalizedUnclosed
	// LockDegraded counts secrets created unlocked (WithRequireLock(false)).
	LockDegraded
	// ScratchInUse is the number of scratch slots handed out (gauge).
	ScratchInUse
	numMetrics
)

var metricNames = [numMetrics]struct {
	name, reason string
	kind         metrics.Kind
}{
	Allocated:         {"secret.allocated", "", metrics.KindCounter},
	InUse:             {"secret.inuse", "", metrics.KindGauge},
	LockedBytes:       {"securebuf.locked_bytes", "", metrics.KindGauge},
	FailLockLimit:     {"securebuf.alloc_failures", "lock_limit", metrics.KindCounter},
	FailMapLimit:      {"securebuf.alloc_failures", "map_limit", metrics.KindCounter},
	FailDontDump:      {"securebuf.alloc_failures", "dontdump", metrics.KindCounter},
	FailProtect:       {"securebuf.alloc_failures", "protect", metrics.KindCounter},
	CanaryFailures:    {"securebuf.canary_failures", "", metrics.KindCounter},
	FinalizedUnclosed: {"securebuf.finalized_unclosed", "", metrics.KindCounter},
	LockDegraded:      {"securebuf.lock_degraded", "", metrics.KindCounter},
	ScratchInUse:      {"securebuf.scratch_inuse", "", metrics.KindGauge},
}

// Name is the metric's name, such as "secret.inuse".
func (m Metric) Name() string {
	if m < 0 || m >= numMetrics {
		return "securebuf.unknown"
	}
	return metricNames[m].name
}

// Reason is the value of the metric's "reason" label, or "" if it has none.
func (m Metric) Reason() string {
	if m < 0 || m >= numMetrics {
		return ""
	}
	return metricNames[m].reason
}

// Kind is the metric's kind: a counter or a gauge.
func (m Metric) Kind() metrics.Kind {
	if m < 0 || m >= numMetrics {
		return 0
	}
	return metricNames[m].kind
}

func (m Metric) String() string {
	if r := m.Reason(); r != "" {
		return m.Name() + "{reason=" + r + "}"
	}
	return m.Name()
}

type nopMetrics struct{}

func (nopMetrics) Add(Metric, int64) {}

// instruments are the instruments of a Provider, by Metric.
type instruments [numMetrics]interface{ Add(int64) }

func newInstruments(p metrics.Provider) *instruments {
	var in instruments
	for m := range numMetrics {
		var labels []metrics.Label
		if r := m.Reason(); r != "" {
			labels = []metrics.Label{{Name: "reason", Value: r}}
		}
		if m.Kind() == metrics.KindGauge {
			in[m] = p.Gauge(m.Name(), labels...)
		} else {
			in[m] = p.Counter(m.Name(), labels...)
		}
	}
	return &in
}

func (in *instruments) Add(m Metric, delta int64) { in[m].Add(delta) }

// MetricsFunc returns a metrics.Provider that calls f with the Metric and
// the delta of every event of a Factory that reports to it (through
// WithMetrics): a typed view of the events, for callers that follow one
// metric closely, as tests do. Instruments of names that are not a
// Factory's do nothing. f must be safe for concurrent use and must not
// block.
func MetricsFunc(f func(m Metric, delta int64)) metrics.Provider {
	return metricsFunc(f)
}

type metricsFunc func(Metric, int64)

func (f metricsFunc) lookup(name string, labels []metrics.Label) interface{ Add(int64) } {
	reason := ""
	for _, l := range labels {
		if l.Name == "reason" {
			reason = l.Value
		}
	}
	for m := range numMetrics {
		if m.Name() == name && m.Reason() == reason {
			return funcInstrument{f, m}
		}
	}
	return funcInstrument{}
}

func (f metricsFunc) Counter(name string, labels ...metrics.Label) metrics.Counter {
	return f.lookup(name, labels).(funcInstrument)
}

func (f metricsFunc) Gauge(name string, labels ...metrics.Label) metrics.Gauge {
	return f.lookup(name, labels).(funcInstrument)
}

func (f metricsFunc) Timer(string, ...metrics.Label) metrics.Timer { return metrics.Discard.Timer("") }

type funcInstrument struct {
	f func(Metric, int64)
	m Metric
}

func (i funcInstrument) Add(d int64) {
	if i.f != nil {
		i.f(i.m, d)
	}
}

func (i funcInstrument) Set(int64) {}
