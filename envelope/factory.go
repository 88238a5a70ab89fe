package envelope

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/internal/evict"
	"github.com/enc-pipe/enc-pipe/envelope/internal/keycache"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Config names the keys a SessionFactory uses.
type Config struct {
	// Service and Product name the system key, _SK_{Service}_{Product},
	// and are part of every intermediate key id. Both are required.
	Service string
	Product string
	// Policy is the crypto policy; nil means NewCryptoPolicy().
	Policy *CryptoPolicy
	// RegionSuffix, when set, is appended to system and intermediate key
	// ids as "_{RegionSuffix}" (Asherah's DynamoDB global-table layout).
	// It must look like an AWS region (see IsRegionSuffix). When empty and
	// the metastore implements RegionSuffixer with a non-empty answer,
	// that suffix is used, as Asherah does.
	RegionSuffix string
}

// RegionSuffixer is an optional Metastore method, Asherah's
// GetRegionSuffix: a metastore that returns a non-empty suffix makes the
// factory write region-suffixed key ids unless Config.RegionSuffix is set.
type RegionSuffixer interface {
	GetRegionSuffix() string
}

// SessionFactory makes Sessions for partitions and owns the caches they
// share: the system key cache, the shared intermediate key cache and the
// session cache when the policy asks for them.
//
// A SessionFactory is safe for concurrent use. Close it when done, after
// closing its sessions; it does not close the metastore or the KMS.
type SessionFactory struct {
	service, product, suffix string
	skID                     string

	policy  CryptoPolicy
	store   Metastore
	kms     KMS
	crypto  AEAD
	native  bool // crypto is NewAES256GCM: keys are unwrapped in place into scratch memory
	cacheIK bool // native and KeyAccessCached: cached intermediate keys carry their cipher
	access  KeyAccess
	secrets *securebuf.Factory
	ownSecs bool
	m       *instruments // nil without metrics
	log     *slog.Logger
	now     func() time.Time
	// realClock: now is time.Now (no WithClock), so a reading of it
	// can start a timing.
	realClock bool

	skCache  *keycache.Cache
	sharedIK *keycache.Cache                   // nil unless SharedIntermediateKeyCache
	sessions evict.Store[string, *sessionCore] // nil unless CacheSessions

	sweepMu   sync.Mutex
	lastSweep time.Time

	liveMu sync.Mutex
	live   map[*sessionCore]struct{} // open session cores, for RevokeKey and rotations

	closed atomic.Bool
}

// NewSessionFactory returns a factory for the keys of cfg.Service and
// cfg.Product, stored in store and protected by kms, with crypto as the
// AEAD at every level (nil means NewAES256GCM). It fails with an error
// wrapping ErrInvalidConfig for a bad configuration, such as an unknown
// eviction policy; it never panics on one. It reads nothing from the
// metastore: keys are loaded or created on first use.
func NewSessionFactory(cfg *Config, store Metastore, kms KMS, crypto AEAD, opts ...FactoryOption) (*SessionFactory, error) {
	if cfg == nil {
		return nil, fmt.Errorf("%w: nil *Config", ErrInvalidConfig)
	}
	if cfg.Service == "" || cfg.Product == "" {
		return nil, fmt.Errorf("%w: Config.Service and Config.Product are required", ErrInvalidConfig)
	}
	if store == nil || kms == nil {
		return nil, fmt.Errorf("%w: a Metastore and a KMS are required", ErrInvalidConfig)
	}
	if crypto == nil {
		crypto = NewAES256GCM()
	}
	policy := NewCryptoPolicy()
	if cfg.Policy != nil {
		p := *cfg.Policy
		policy = &p
	}
	if err := policy.validate(); err != nil {
		return nil, err
	}
	suffix := cfg.RegionSuffix
	if suffix == "" {
		if rs, ok := store.(RegionSuffixer); ok {
			suffix = rs.GetRegionSuffix()
		}
	}
	if suffix != "" && !IsRegionSuffix(suffix) {
		return nil, fmt.Errorf("%w: region suffix %q does not look like an AWS region (such as us-west-2)", ErrInvalidConfig, suffix)
	}
	var o factoryOptions
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(&o); err != nil {
			return nil, err
		}
	}

	f := &SessionFactory{
		service: cfg.Service,
		product: cfg.Product,
		suffix:  suffix,
		skID:    systemKeyID(cfg.Service, cfg.Product, suffix),
		policy:  *policy,
		store:   store,
		kms:     kms,
		crypto:  crypto,
		secrets: o.secrets,
		live:    make(map[*sessionCore]struct{}),
		m:       newInstruments(o.metrics),
		log:     o.logger,
		now:     o.now,
	}
	_, f.native = crypto.(aes256GCM)
	f.access = o.keyAccess
	if !f.native {
		f.access = KeyAccessStrict
	}
	f.cacheIK = f.access == KeyAccessCached
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.now == nil {
		f.now, f.realClock = time.Now, true
	}
	if f.secrets == nil {
		sf, err := securebuf.NewFactory()
		if err != nil {
			return nil, fmt.Errorf("envelope: failed to create the secret factory: %w", err)
		}
		f.secrets, f.ownSecs = sf, true
	}
	if err := f.buildCaches(); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (f *SessionFactory) buildCaches() error {
	var err error
	p := &f.policy
	f.skCache, err = keycache.New(keycache.Config{
		Policy:              p.SystemKeyCacheEvictionPolicy,
		Capacity:            p.SystemKeyCacheMaxSize,
		Disabled:            !p.CacheSystemKeys,
		ExpireAfter:         p.ExpireKeyAfter,
		RevokeCheckInterval: p.RevokeCheckInterval,
		Now:                 f.now,
	}, skLoader{f})
	if err != nil {
		return fmt.Errorf("%w: system key cache: %v", ErrInvalidConfig, err)
	}
	if p.SharedIntermediateKeyCache {
		if f.sharedIK, err = f.newIKCache(); err != nil {
			return err
		}
	}
	if p.CacheSessions {
		policy := p.SessionCacheEvictionPolicy
		if policy == "" {
			policy = DefaultSessionCacheEvictionPolicy
		}
		f.sessions, err = evict.New(policy, p.SessionCacheMaxSize, func(_ string, c *sessionCore) { c.release() })
		if err != nil {
			return fmt.Errorf("%w: session cache: %v", ErrInvalidConfig, err)
		}
	}
	return nil
}

func (f *SessionFactory) newIKCache() (*keycache.Cache, error) {
	p := &f.policy
	c, err := keycache.New(keycache.Config{
		Policy:              p.IntermediateKeyCacheEvictionPolicy,
		Capacity:            p.IntermediateKeyCacheMaxSize,
		Disabled:            !p.CacheIntermediateKeys,
		ExpireAfter:         p.ExpireKeyAfter,
		RevokeCheckInterval: p.RevokeCheckInterval,
		Now:                 f.now,
	}, ikLoader{f})
	if err != nil {
		return nil, fmt.Errorf("%w: intermediate key cache: %v", ErrInvalidConfig, err)
	}
	return c, nil
}

// GetSession returns a session for partitionID, which must not be empty.
// The caller must Close the session. With the session cache on, sessions
// for the same partition share their intermediate key cache and Close only
// hands the session back to the cache.
func (f *SessionFactory) GetSession(partitionID string) (*Session, error) {
	if f.closed.Load() {
		return nil, ErrClosed
	}
	if partitionID == "" {
		return nil, ErrEmptyPartition
	}
	if f.sessions == nil {
		c, err := f.newCore(partitionID)
		if err != nil {
			return nil, err
		}
		return &Session{core: c}, nil
	}
	now := f.now()
	f.sweepSessions(now)
	for {
		if c, ok := f.sessions.Get(partitionID); ok {
			if f.sessionExpired(c, now) {
				f.sessions.Remove(partitionID)
			} else if c.acquire() {
				c.lastUsed.Store(now.UnixNano())
				return &Session{core: c}, nil
			}
		}
		c, err := f.newCore(partitionID)
		if err != nil {
			return nil, err
		}
		c.lastUsed.Store(now.UnixNano())
		c.refs.Add(1) // the cache's reference
		got, added := f.sessions.Add(partitionID, c)
		if added {
			if f.closed.Load() {
				f.sessions.Remove(partitionID)
			}
			return &Session{core: c}, nil
		}
		c.refs.Add(-1)
		c.release()
		if got.acquire() {
			got.lastUsed.Store(now.UnixNano())
			return &Session{core: got}, nil
		}
	}
}

func (f *SessionFactory) sessionExpired(c *sessionCore, now time.Time) bool {
	return now.Sub(time.Unix(0, c.lastUsed.Load())) >= f.policy.SessionCacheDuration
}

// sweepSessions drops expired sessions from the cache, at most once per
// tenth of SessionCacheDuration, so that idle sessions do not keep their
// keys in locked memory until the cache happens to evict them.
func (f *SessionFactory) sweepSessions(now time.Time) {
	if !f.sweepMu.TryLock() {
		return
	}
	defer f.sweepMu.Unlock()
	if now.Sub(f.lastSweep) < f.policy.SessionCacheDuration/10 {
		return
	}
	f.lastSweep = now
	for _, k := range f.sessions.Keys() {
		if c, ok := f.sessions.Get(k); ok && f.sessionExpired(c, now) {
			f.sessions.Remove(k)
		}
	}
}

func (f *SessionFactory) newCore(partition string) (*sessionCore, error) {
	c := &sessionCore{
		f:         f,
		partition: partition,
		ikID:      intermediateKeyID(partition, f.service, f.product, f.suffix),
		ikBase:    intermediateKeyID(partition, f.service, f.product, ""),
	}
	if f.suffix != "" {
		c.ikBasePrefix = c.ikBase + "_"
	}
	if f.sharedIK != nil {
		c.ik = f.sharedIK
	} else {
		ik, err := f.newIKCache()
		if err != nil {
			return nil, err
		}
		c.ik, c.ownIK = ik, true
	}
	c.refs.Store(1)
	f.liveMu.Lock()
	f.live[c] = struct{}{}
	f.liveMu.Unlock()
	return c, nil
}

// SystemKeyID returns the id of the factory's system key.
func (f *SessionFactory) SystemKeyID() string { return f.skID }

// IntermediateKeyID returns the id of partition's intermediate key, as
// written by this factory.
func (f *SessionFactory) IntermediateKeyID(partition string) string {
	return intermediateKeyID(partition, f.service, f.product, f.suffix)
}

// KeyAccess returns how the factory uses its cached intermediate keys:
// the WithKeyAccess setting, or KeyAccessStrict when the factory's AEAD is
// not NewAES256GCM.
func (f *SessionFactory) KeyAccess() KeyAccess { return f.access }

// RegionSuffix returns the region suffix of the factory's key ids, or "".
func (f *SessionFactory) RegionSuffix() string { return f.suffix }

// Close releases the session cache, the shared intermediate key cache and
// the system key cache, and the secret factory if NewSessionFactory made
// it. Keys still used by an operation in flight are freed when it ends.
// Sessions and methods of the factory fail with ErrClosed afterwards. It
// does not close the metastore or the KMS. Close is idempotent.
func (f *SessionFactory) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	if f.sessions != nil {
		f.sessions.Close()
	}
	if f.sharedIK != nil {
		f.sharedIK.Close()
	}
	if f.skCache != nil {
		f.skCache.Close()
	}
	if f.ownSecs {
		return f.secrets.Close()
	}
	return nil
}

// cacheErr maps the key cache's closed error to ErrClosed.
func cacheErr(err error) error {
	if errors.Is(err, keycache.ErrClosed) {
		return ErrClosed
	}
	return err
}
