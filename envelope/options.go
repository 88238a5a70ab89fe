package envelope

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Metrics receives the factory's timings and counters. It is injected with
// WithMetrics; there are no global registries. Implementations must be safe
// for concurrent use and fast: they are called on every Encrypt and Decrypt.
type Metrics interface {
	// RecordDuration records how long one operation named name took.
	RecordDuration(name string, d time.Duration)
	// AddCount adds delta to the counter named name.
	AddCount(name string, delta int64)
}

// Metric names. The timers keep Asherah's names.
const (
	MetricEncrypt         = "ael.drr.encrypt"         // timer: Session.Encrypt
	MetricDecrypt         = "ael.drr.decrypt"         // timer: Session.Decrypt
	MetricSystemKeyNew    = "envelope.sk.created"     // counter: system keys created and stored
	MetricIntermediateNew = "envelope.ik.created"     // counter: intermediate keys created and stored
	MetricStoreLostRace   = "envelope.store.lostrace" // counter: Store returned ErrKeyExists; the winner's key was used
	MetricSystemKeyLoad   = "envelope.sk.loaded"      // counter: system keys read from the metastore and unwrapped by the KMS
	MetricIntermediateLd  = "envelope.ik.loaded"      // counter: intermediate keys read from the metastore and unwrapped
)

// FactoryOption configures a SessionFactory. Options validate their
// arguments: NewSessionFactory returns the first error.
type FactoryOption func(*factoryOptions) error

type factoryOptions struct {
	secrets *securebuf.Factory
	metrics Metrics
	logger  *slog.Logger
	now     func() time.Time
}

// WithSecretFactory makes the factory keep its keys in secrets made by sf.
// The SessionFactory does not close sf. Without this option it creates a
// securebuf.Factory with default settings and closes it in Close.
func WithSecretFactory(sf *securebuf.Factory) FactoryOption {
	return func(o *factoryOptions) error {
		if sf == nil {
			return fmt.Errorf("%w: WithSecretFactory(nil)", ErrInvalidConfig)
		}
		o.secrets = sf
		return nil
	}
}

// WithMetrics sends timings and counters to m (default: none).
func WithMetrics(m Metrics) FactoryOption {
	return func(o *factoryOptions) error {
		o.metrics = m
		return nil
	}
}

// WithLogger logs key creation, lost creation races and cache refreshes to
// l at debug level, and unusable stored keys at warn level (default: no
// logging). Key ids and created times are logged; key material and
// payloads never are.
func WithLogger(l *slog.Logger) FactoryOption {
	return func(o *factoryOptions) error {
		o.logger = l
		return nil
	}
}

// WithClock replaces time.Now, for tests of expiry and revocation.
func WithClock(now func() time.Time) FactoryOption {
	return func(o *factoryOptions) error {
		if now == nil {
			return fmt.Errorf("%w: WithClock(nil)", ErrInvalidConfig)
		}
		o.now = now
		return nil
	}
}
