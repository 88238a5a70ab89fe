package envelope

import (
	"fmt"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/internal/evict"
)

// Defaults of NewCryptoPolicy (Asherah's values).
const (
	DefaultExpireAfter          = 90 * 24 * time.Hour
	DefaultRevokedCheckInterval = 60 * time.Minute
	DefaultCreateDatePrecision  = time.Minute
	DefaultKeyCacheMaxSize      = 1000
	DefaultSessionCacheMaxSize  = 1000
	DefaultSessionCacheDuration = 2 * time.Hour
	// DefaultSessionCacheEvictionPolicy is used for the session cache when
	// SessionCacheEvictionPolicy is empty.
	DefaultSessionCacheEvictionPolicy = "slru"
)

// Cache eviction policies for the *EvictionPolicy fields of CryptoPolicy.
// Names are case-insensitive; any other name makes NewSessionFactory fail
// with ErrInvalidConfig.
const (
	PolicySimple  = "simple"  // unbounded, never evicts; the max size is ignored (also "")
	PolicyLRU     = "lru"     // least recently used
	PolicyLFU     = "lfu"     // least frequently used
	PolicySLRU    = "slru"    // segmented LRU (probation + 80 % protected)
	PolicyTinyLFU = "tinylfu" // W-TinyLFU admission and eviction
)

// CryptoPolicy says when keys expire, how often cached keys are re-checked
// for revocation, and how keys and sessions are cached. Build it with
// NewCryptoPolicy; NewSessionFactory copies it, so changing a policy later
// does not affect factories already made.
//
// A zero CryptoPolicy (not built by NewCryptoPolicy) has ExpireKeyAfter 0,
// so every key is expired at once and each write creates a new key, and no
// caching: use NewCryptoPolicy.
type CryptoPolicy struct {
	// ExpireKeyAfter is the lifetime of system and intermediate keys,
	// counted from their created time. An expired key is still used to
	// decrypt but never to encrypt: the next write creates a new one.
	ExpireKeyAfter time.Duration
	// RevokeCheckInterval is how long a cached key is used before its
	// metastore row is read again to pick up a Revoked flag (or, for the
	// latest key, a newer key written by another process).
	RevokeCheckInterval time.Duration
	// CreateDatePrecision truncates the created time of new system and
	// intermediate keys, so that processes creating the same key at about
	// the same time collide on one (id, created) row and agree on one key.
	// Zero or negative means no truncation (whole seconds).
	CreateDatePrecision time.Duration

	// CacheSystemKeys and CacheIntermediateKeys switch the key caches on.
	CacheSystemKeys       bool
	CacheIntermediateKeys bool
	// Capacity and eviction policy of the system key cache (one per
	// factory) and of the intermediate key caches (one per session, or
	// one per factory with SharedIntermediateKeyCache).
	SystemKeyCacheMaxSize              int
	SystemKeyCacheEvictionPolicy       string
	IntermediateKeyCacheMaxSize        int
	IntermediateKeyCacheEvictionPolicy string
	// SharedIntermediateKeyCache makes all sessions of a factory share one
	// intermediate key cache instead of one each.
	SharedIntermediateKeyCache bool

	// CacheSessions keeps sessions in a factory-wide cache keyed by
	// partition, so GetSession for a recent partition returns a session
	// whose intermediate key is already decrypted.
	CacheSessions bool
	// SessionCacheMaxSize bounds the session cache.
	SessionCacheMaxSize int
	// SessionCacheDuration drops a cached session that has not been
	// handed out for this long.
	SessionCacheDuration time.Duration
	// SessionCacheEvictionPolicy is the session cache's policy ("" = slru).
	SessionCacheEvictionPolicy string
}

// PolicyOption changes one setting of a CryptoPolicy.
type PolicyOption func(*CryptoPolicy)

// NewCryptoPolicy returns Asherah's default policy changed by opts:
// keys expire after 90 days, cached keys are re-checked every 60 minutes,
// created times are truncated to the minute, system and intermediate keys
// are cached (simple policy, max size 1000), sessions are not cached (if
// switched on: slru, 1000 sessions, 2 hours).
func NewCryptoPolicy(opts ...PolicyOption) *CryptoPolicy {
	p := &CryptoPolicy{
		ExpireKeyAfter:              DefaultExpireAfter,
		RevokeCheckInterval:         DefaultRevokedCheckInterval,
		CreateDatePrecision:         DefaultCreateDatePrecision,
		CacheSystemKeys:             true,
		CacheIntermediateKeys:       true,
		SystemKeyCacheMaxSize:       DefaultKeyCacheMaxSize,
		IntermediateKeyCacheMaxSize: DefaultKeyCacheMaxSize,
		SessionCacheMaxSize:         DefaultSessionCacheMaxSize,
		SessionCacheDuration:        DefaultSessionCacheDuration,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(p)
		}
	}
	return p
}

// WithExpireAfterDuration sets ExpireKeyAfter.
func WithExpireAfterDuration(d time.Duration) PolicyOption {
	return func(p *CryptoPolicy) { p.ExpireKeyAfter = d }
}

// WithRevokeCheckInterval sets RevokeCheckInterval.
func WithRevokeCheckInterval(d time.Duration) PolicyOption {
	return func(p *CryptoPolicy) { p.RevokeCheckInterval = d }
}

// WithCreateDatePrecision sets CreateDatePrecision (Asherah has no helper
// for it; it sets the field).
func WithCreateDatePrecision(d time.Duration) PolicyOption {
	return func(p *CryptoPolicy) { p.CreateDatePrecision = d }
}

// WithNoCache switches off the system and intermediate key caches: every
// operation then reads its keys from the metastore and the KMS.
func WithNoCache() PolicyOption {
	return func(p *CryptoPolicy) {
		p.CacheSystemKeys = false
		p.CacheIntermediateKeys = false
	}
}

// WithSharedIntermediateKeyCache makes the sessions of a factory share one
// intermediate key cache holding at most capacity keys.
func WithSharedIntermediateKeyCache(capacity int) PolicyOption {
	return func(p *CryptoPolicy) {
		p.SharedIntermediateKeyCache = true
		p.IntermediateKeyCacheMaxSize = capacity
	}
}

// WithSystemKeyCache sets the system key cache's eviction policy and size.
func WithSystemKeyCache(policy string, maxSize int) PolicyOption {
	return func(p *CryptoPolicy) {
		p.SystemKeyCacheEvictionPolicy = policy
		p.SystemKeyCacheMaxSize = maxSize
	}
}

// WithIntermediateKeyCache sets the intermediate key caches' eviction
// policy and size.
func WithIntermediateKeyCache(policy string, maxSize int) PolicyOption {
	return func(p *CryptoPolicy) {
		p.IntermediateKeyCacheEvictionPolicy = policy
		p.IntermediateKeyCacheMaxSize = maxSize
	}
}

// WithSessionCache switches the session cache on.
func WithSessionCache() PolicyOption {
	return func(p *CryptoPolicy) { p.CacheSessions = true }
}

// WithSessionCacheMaxSize sets SessionCacheMaxSize.
func WithSessionCacheMaxSize(n int) PolicyOption {
	return func(p *CryptoPolicy) { p.SessionCacheMaxSize = n }
}

// WithSessionCacheDuration sets SessionCacheDuration.
func WithSessionCacheDuration(d time.Duration) PolicyOption {
	return func(p *CryptoPolicy) { p.SessionCacheDuration = d }
}

// WithSessionCacheEvictionPolicy sets SessionCacheEvictionPolicy.
func WithSessionCacheEvictionPolicy(policy string) PolicyOption {
	return func(p *CryptoPolicy) { p.SessionCacheEvictionPolicy = policy }
}

// validate reports the first setting NewSessionFactory cannot work with.
func (p *CryptoPolicy) validate() error {
	check := func(field, policy string, size int, enabled bool) error {
		norm, ok := evict.Normalize(policy)
		if !ok || norm == evict.None {
			return fmt.Errorf("%w: %s %q is not a cache eviction policy (want simple, lru, lfu, slru or tinylfu)", ErrInvalidConfig, field, policy)
		}
		if enabled && norm != evict.Simple && size <= 0 {
			return fmt.Errorf("%w: cache eviction policy %q of %s needs a max size above 0, got %d", ErrInvalidConfig, norm, field, size)
		}
		return nil
	}
	if err := check("SystemKeyCacheEvictionPolicy", p.SystemKeyCacheEvictionPolicy, p.SystemKeyCacheMaxSize, p.CacheSystemKeys); err != nil {
		return err
	}
	if err := check("IntermediateKeyCacheEvictionPolicy", p.IntermediateKeyCacheEvictionPolicy, p.IntermediateKeyCacheMaxSize, p.CacheIntermediateKeys); err != nil {
		return err
	}
	sp := p.SessionCacheEvictionPolicy
	if sp == "" {
		sp = DefaultSessionCacheEvictionPolicy
	}
	if err := check("SessionCacheEvictionPolicy", sp, p.SessionCacheMaxSize, p.CacheSessions); err != nil {
		return err
	}
	if p.ExpireKeyAfter < 0 || p.RevokeCheckInterval < 0 || (p.CacheSessions && p.SessionCacheDuration <= 0) {
		return fmt.Errorf("%w: ExpireKeyAfter and RevokeCheckInterval must not be negative, SessionCacheDuration must be positive", ErrInvalidConfig)
	}
	return nil
}
