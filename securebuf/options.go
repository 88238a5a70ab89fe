package securebuf

import (
	"errors"
	"fmt"
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
	metrics      Metrics
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

// WithMetrics sends the Factory's counters to m (default: discarded).
func WithMetrics(m Metrics) Option {
	return func(o *options) error {
		if m == nil {
			return errors.New("securebuf: WithMetrics(nil)")
		}
		o.metrics = m
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

// Metrics receives counters and gauges from a Factory. There is no global
// registry: adapt this interface to the metrics library of your choice.
// Implementations must be safe for concurrent use and must not block.
type Metrics interface {
	// Add adds delta to the metric m.
	Add(m Metric, delta int64)
}

// Metric identifies one counter or gauge.
type Metric int

// The metrics reported through Metrics. Names follow Asherah where Asherah
// has one.
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

var metricNames = [numMetrics]struct{ name, reason string }{
	Allocated:         {"secret.allocated", ""},
	InUse:             {"secret.inuse", ""},
	LockedBytes:       {"securebuf.locked_bytes", ""},
	FailLockLimit:     {"securebuf.alloc_failures", "lock_limit"},
	FailMapLimit:      {"securebuf.alloc_failures", "map_limit"},
	FailDontDump:      {"securebuf.alloc_failures", "dontdump"},
	FailProtect:       {"securebuf.alloc_failures", "protect"},
	CanaryFailures:    {"securebuf.canary_failures", ""},
	FinalizedUnclosed: {"securebuf.finalized_unclosed", ""},
	LockDegraded:      {"securebuf.lock_degraded", ""},
	ScratchInUse:      {"securebuf.scratch_inuse", ""},
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

func (m Metric) String() string {
	if r := m.Reason(); r != "" {
		return m.Name() + "{reason=" + r + "}"
	}
	return m.Name()
}

type nopMetrics struct{}

func (nopMetrics) Add(Metric, int64) {}
