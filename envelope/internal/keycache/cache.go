// Package keycache caches decrypted system and intermediate keys for the
// envelope package: bounded by an eviction policy, reference counted,
// re-checked against the metastore every RevokeCheckInterval, and loaded at
// most once at a time per key (concurrent misses wait for one load).
//
// The cache knows nothing about metastores or KMSs: it calls a Loader. It
// takes no lock that is held across a load, so loads of different keys run
// in parallel; lookups of cached keys take at most a short read lock (the
// bounded policies lru, lfu and slru take their own short mutex to record
// the access; tinylfu is lock-free).
package keycache

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/internal/evict"
)

// ErrClosed is returned by a closed cache.
var ErrClosed = errors.New("key cache is closed")

// Loader reads keys from the metastore (and creates them) for a Cache.
// Every method receives the caller's context.
type Loader interface {
	// LoadLatest returns the newest usable key for id. current is the
	// cached latest entry or nil. When current is still the newest usable
	// key, LoadLatest updates its flags (SetRevoked, MarkChecked) and
	// returns current itself; otherwise it returns a new entry, owned by
	// the caller, possibly a key it has just created.
	LoadLatest(ctx context.Context, id string, current *Entry) (*Entry, error)
	// Load returns the key k as a new entry owned by the caller.
	Load(ctx context.Context, k Key) (*Entry, error)
	// Refresh re-reads the row of e and records its Revoked flag and the
	// time of the check.
	Refresh(ctx context.Context, e *Entry) error
}

// Config configures a Cache.
type Config struct {
	// Policy is the eviction policy (see package evict) and Capacity its
	// bound. Disabled caches keep nothing: every lookup loads.
	Policy   string
	Capacity int
	Disabled bool
	// ExpireAfter is the lifetime of a key counted from its created time;
	// an expired key is not returned by GetOrLoadLatest.
	ExpireAfter time.Duration
	// RevokeCheckInterval is how long a cached entry is trusted before its
	// row is read again.
	RevokeCheckInterval time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Cache maps (id, created) to decrypted keys and remembers, per id, which
// entry is the latest. It is safe for concurrent use.
type Cache struct {
	cfg    Config
	now    func() time.Time
	loader Loader
	store  evict.Store[Key, *Entry]

	latestMu sync.RWMutex
	latest   map[string]int64 // id -> created of the latest entry

	flights group
	closed  atomic.Bool
}

// New returns an empty cache that loads through loader.
func New(cfg Config, loader Loader) (*Cache, error) {
	c := &Cache{cfg: cfg, now: cfg.Now, loader: loader, latest: make(map[string]int64)}
	if c.now == nil {
		c.now = time.Now
	}
	policy := cfg.Policy
	if cfg.Disabled {
		policy = evict.None
	}
	store, err := evict.New(policy, cfg.Capacity, c.onRemove)
	if err != nil {
		return nil, err
	}
	c.store = store
	return c, nil
}

// onRemove runs for every entry that leaves the store: it forgets the
// latest pointer to it and drops the store's reference.
func (c *Cache) onRemove(k Key, e *Entry) {
	c.latestMu.Lock()
	if created, ok := c.latest[k.ID]; ok && created == k.Created {
		delete(c.latest, k.ID)
	}
	c.latestMu.Unlock()
	e.Release()
}

// Usable reports whether e may be used for new writes at now: not revoked
// and not expired.
func (c *Cache) Usable(e *Entry, now time.Time) bool {
	return !e.Revoked() && !c.Expired(e.Created(), now)
}

// Expired reports whether a key created at created is past ExpireAfter.
func (c *Cache) Expired(created int64, now time.Time) bool {
	return now.After(time.Unix(created, 0).Add(c.cfg.ExpireAfter))
}

func (c *Cache) fresh(e *Entry, now time.Time) bool {
	return now.Sub(e.Checked()) < c.cfg.RevokeCheckInterval
}

// cachedLatest returns the cached latest entry for id, acquired, or nil.
func (c *Cache) cachedLatest(id string) *Entry {
	c.latestMu.RLock()
	created, ok := c.latest[id]
	c.latestMu.RUnlock()
	if !ok {
		return nil
	}
	e, ok := c.store.Get(Key{ID: id, Created: created})
	if !ok || !e.acquire() {
		return nil
	}
	return e
}

// GetOrLoadLatest returns the latest usable key for id, acquired: the
// caller must Release it. A cached latest entry is used while it is usable
// and was checked within RevokeCheckInterval; otherwise the loader decides,
// and when it returns a different key (a newer one, or a replacement for a
// revoked or expired one) that key becomes the cached latest.
func (c *Cache) GetOrLoadLatest(ctx context.Context, id string) (*Entry, error) {
	return c.GetOrLoadLatestAt(ctx, id, c.now())
}

// GetOrLoadLatestAt is GetOrLoadLatest with the caller's reading of the
// clock for the check of the cached entry, so that a caller who needs the
// time anyway reads the clock once. A load still reads the clock itself.
func (c *Cache) GetOrLoadLatestAt(ctx context.Context, id string, now time.Time) (*Entry, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if e := c.cachedLatest(id); e != nil {
		if c.Usable(e, now) && c.fresh(e, now) {
			return e, nil
		}
		e.Release()
	}
	return c.flights.do(ctx, flightKey{kind: flightLatest, key: Key{ID: id}}, func() (*Entry, error) {
		now := c.now()
		cur := c.cachedLatest(id)
		if cur != nil && c.Usable(cur, now) && c.fresh(cur, now) {
			return cur, nil // loaded by the flight before ours
		}
		e, err := c.loader.LoadLatest(ctx, id, cur)
		if cur != nil && e != cur {
			c.retireRevoked(cur)
		}
		if err != nil {
			if cur != nil {
				cur.Release()
			}
			return nil, err
		}
		if e == cur {
			return cur, nil
		}
		if cur != nil {
			cur.Release()
		}
		e = c.insert(e)
		if !c.cfg.Disabled {
			c.latestMu.Lock()
			c.latest[id] = e.Created()
			c.latestMu.Unlock()
		}
		return e, nil
	})
}

// GetOrLoad returns the key k, acquired: the caller must Release it. A
// cached entry older than RevokeCheckInterval is refreshed first.
func (c *Cache) GetOrLoad(ctx context.Context, k Key) (*Entry, error) {
	if c.closed.Load() {
		return nil, ErrClosed
	}
	if e, ok := c.store.Get(k); ok && e.acquire() {
		if c.fresh(e, c.now()) {
			return e, nil
		}
		return c.refresh(ctx, e)
	}
	return c.flights.do(ctx, flightKey{kind: flightLoad, key: k}, func() (*Entry, error) {
		if e, ok := c.store.Get(k); ok && e.acquire() {
			return e, nil
		}
		e, err := c.loader.Load(ctx, k)
		if err != nil {
			return nil, err
		}
		if e.Key() != k {
			e.Release()
			return nil, fmt.Errorf("keycache: internal error: loader returned %v for %v", e.Key(), k)
		}
		return c.insert(e), nil
	})
}

// refresh re-reads the row of the acquired entry e. On failure e is
// released and dropped from the cache, so the next lookup loads afresh.
func (c *Cache) refresh(ctx context.Context, e *Entry) (*Entry, error) {
	_, err := c.flights.do(ctx, flightKey{kind: flightRefresh, key: e.Key()}, func() (*Entry, error) {
		if c.fresh(e, c.now()) {
			return nil, nil
		}
		return nil, c.loader.Refresh(ctx, e)
	})
	if err != nil {
		c.store.Remove(e.Key())
		e.Release()
		return nil, err
	}
	c.retireRevoked(e)
	return e, nil
}

// retireRevoked drops e from the cache when it is revoked and carries a
// cipher. A revoked key still decrypts, but it must not keep a key schedule
// on the heap for as long as it stays cached: the caller that holds e may
// finish with it, after which the cipher is wiped, and the next lookup
// loads the key again (loaders give revoked keys no cipher).
func (c *Cache) retireRevoked(e *Entry) {
	if e.aead == nil || !e.Revoked() {
		return
	}
	if got, ok := c.store.Get(e.Key()); ok && got == e {
		c.store.Remove(e.Key())
	}
}

// insert stores e (which the caller owns) unless an entry with its key is
// already cached, and returns the stored entry with one reference for the
// caller.
func (c *Cache) insert(e *Entry) *Entry {
	for {
		e.refs.Add(1) // the store's reference
		got, added := c.store.Add(e.Key(), e)
		if added {
			if c.closed.Load() {
				c.store.Remove(e.Key()) // raced with Close
			}
			return e
		}
		e.refs.Add(-1)
		if got.acquire() {
			e.Release()
			return got
		}
		// got is being dropped by a concurrent removal; try again.
	}
}

// MarkRevoked sets the Revoked flag of the cached entry k, if any, so that
// this cache stops using it for writes at once. An entry with a cipher is
// dropped instead (see retireRevoked).
func (c *Cache) MarkRevoked(k Key) {
	if e, ok := c.store.Get(k); ok {
		e.SetRevoked(true)
		c.retireRevoked(e)
	}
}

// ForgetLatest makes the next GetOrLoadLatest of id ask the loader, so a
// key created elsewhere (a forced rotation) is picked up at once.
func (c *Cache) ForgetLatest(id string) {
	c.latestMu.Lock()
	delete(c.latest, id)
	c.latestMu.Unlock()
}

// ForgetAllLatest is ForgetLatest for every id.
func (c *Cache) ForgetAllLatest() {
	c.latestMu.Lock()
	clear(c.latest)
	c.latestMu.Unlock()
}

// RemoveID drops every cached entry of id.
func (c *Cache) RemoveID(id string) {
	for _, k := range c.store.Keys() {
		if k.ID == id {
			c.store.Remove(k)
		}
	}
	c.latestMu.Lock()
	delete(c.latest, id)
	c.latestMu.Unlock()
}

// Len returns the number of cached entries.
func (c *Cache) Len() int { return c.store.Len() }

// Close drops every entry. Entries still held by callers are closed when
// they are released. Later lookups fail with ErrClosed. Close is
// idempotent.
func (c *Cache) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.store.Close()
}
