package envelope

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Metric names. Timers keep Asherah's names; the metastore and KMS timers
// drop Asherah's backend segment (ael.metastore.sql.load is
// ael.metastore.load for every metastore), so that one name serves every
// backend.
const (
	MetricEncrypt = "ael.drr.encrypt" // timer: Session.Encrypt
	MetricDecrypt = "ael.drr.decrypt" // timer: Session.Decrypt
	// Timers of the backend calls the factory makes, errors included.
	MetricMetastoreLoad       = "ael.metastore.load"       // timer: Metastore.Load
	MetricMetastoreLoadLatest = "ael.metastore.loadlatest" // timer: Metastore.LoadLatest
	MetricMetastoreStore      = "ael.metastore.store"      // timer: Metastore.Store
	MetricKMSEncrypt          = "ael.kms.encryptkey"       // timer: KMS.EncryptKey
	MetricKMSDecrypt          = "ael.kms.decryptkey"       // timer: KMS.DecryptKey
	// MetricMetastoreErrors and MetricKMSErrors count failed backend
	// calls, with label "op" (load, loadlatest, store; encryptkey,
	// decryptkey). ErrNotFound and ErrKeyExists are answers, not failures.
	MetricMetastoreErrors = "envelope.metastore.errors"
	MetricKMSErrors       = "envelope.kms.errors"

	MetricSystemKeyNew    = "envelope.sk.created"      // counter: system keys created and stored
	MetricIntermediateNew = "envelope.ik.created"      // counter: intermediate keys created and stored
	MetricStoreLostRace   = "envelope.store.lostrace"  // counter: Store returned ErrKeyExists; the winner's key was used
	MetricSystemKeyLoad   = "envelope.sk.loaded"       // counter: system keys read from the metastore and unwrapped by the KMS
	MetricIntermediateLd  = "envelope.ik.loaded"       // counter: intermediate keys read from the metastore and unwrapped
	MetricDataKeyNew      = "envelope.datakey.created" // counter: Session.NewDataKey (one per stream)
	MetricDataKeyOpened   = "envelope.datakey.opened"  // counter: Session.OpenDataKey (one per stream read)
	// MetricKeyOpened counts the times the secret of a system or
	// intermediate key was opened (securebuf WithBytes) to wrap or unwrap
	// a key, or to build a cached key's cipher: once per record with
	// KeyAccessStrict, once per key load or creation with KeyAccessCached.
	MetricKeyOpened = "envelope.key.opened"
)

// FactoryOption configures a SessionFactory. Options validate their
// arguments: NewSessionFactory returns the first error.
type FactoryOption func(*factoryOptions) error

type factoryOptions struct {
	secrets   *securebuf.Factory
	metrics   metrics.Provider
	logger    *slog.Logger
	now       func() time.Time
	keyAccess KeyAccess
}

// KeyAccess says how a SessionFactory uses the intermediate keys it has
// cached to wrap and unwrap data row keys. docs/THREAT-MODEL.md ("Key
// memory") says what each leaves on the Go heap and for how long, and
// docs/PERFORMANCE.md what each costs.
type KeyAccess int

const (
	// KeyAccessCached, the default, builds one AES-256-GCM cipher per
	// cached intermediate key, once, when the key is loaded or created,
	// and uses it for every record without opening the key's securebuf
	// secret. The cipher (the expanded AES round keys, which begin with
	// the key itself, and the GHASH key; about 800 bytes) is on the Go
	// heap while the key is cached, and is wiped when the key leaves the
	// cache (eviction, revocation, Session or SessionFactory Close) and
	// the last operation using it has ended. The heap thus holds at most
	// one key schedule per live intermediate key. A revoked key keeps
	// decrypting, without a cipher of its own.
	KeyAccessCached KeyAccess = iota
	// KeyAccessStrict opens the intermediate key's secret (securebuf
	// WithBytes) for every record, builds the cipher inside the callback
	// and wipes it before the call returns: no key schedule outlives a
	// call. Each record then costs two page-protection changes with
	// securebuf.AccessMprotect (two system calls), or two WRPKRU
	// instructions with securebuf.AccessPKey, plus one AES key expansion.
	KeyAccessStrict
)

// String returns "cached" or "strict", the names ParseKeyAccess accepts.
func (a KeyAccess) String() string {
	switch a {
	case KeyAccessCached:
		return "cached"
	case KeyAccessStrict:
		return "strict"
	}
	return fmt.Sprintf("KeyAccess(%d)", int(a))
}

// ParseKeyAccess parses "cached" or "strict" (any case).
func ParseKeyAccess(s string) (KeyAccess, error) {
	for _, a := range []KeyAccess{KeyAccessCached, KeyAccessStrict} {
		if strings.EqualFold(s, a.String()) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown key access %q (want cached or strict)", ErrInvalidConfig, s)
}

// WithKeyAccess chooses how cached intermediate keys are used (default
// KeyAccessCached). With an AEAD other than NewAES256GCM, keys are always
// used as with KeyAccessStrict: a custom AEAD takes raw keys. System keys
// are always used as with KeyAccessStrict: they unwrap an intermediate key
// once per load, so caching their schedule would save little.
func WithKeyAccess(a KeyAccess) FactoryOption {
	return func(o *factoryOptions) error {
		switch a {
		case KeyAccessCached, KeyAccessStrict:
			o.keyAccess = a
			return nil
		}
		return fmt.Errorf("%w: WithKeyAccess(%d): want KeyAccessCached or KeyAccessStrict", ErrInvalidConfig, int(a))
	}
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

// WithMetrics reports the factory's timings and counters (the Metric
// names above) to p (default: none; nil means none). The instruments are
// asked for once, by NewSessionFactory. Without a Provider, or with
// metrics.Discard, Encrypt and Decrypt do not read the clock.
func WithMetrics(p metrics.Provider) FactoryOption {
	return func(o *factoryOptions) error {
		o.metrics = p
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
