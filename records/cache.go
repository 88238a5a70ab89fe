package records

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Defaults of the key caches.
const (
	// DefaultSessionCacheSize bounds the partitions whose sessions (and
	// decrypted intermediate keys, one locked page each) stay open.
	DefaultSessionCacheSize = 1024
	// DefaultDataKeyCacheSize bounds the data keys a Decrypter keeps
	// unwrapped (64 bytes of locked memory each).
	DefaultDataKeyCacheSize = 4096
	// DefaultDataKeyMaxUses, DefaultDataKeyMaxBytes and
	// DefaultDataKeyMaxAge bound how long an Encrypter of binary records
	// uses one data key for a partition: 2^20 records, 64 GiB or an hour,
	// whichever comes first. The AES-GCM limits (2^32 messages, about
	// 2^36 blocks for a 2^-57 advantage) are far above.
	DefaultDataKeyMaxUses  = 1 << 20
	DefaultDataKeyMaxBytes = 1 << 36
	DefaultDataKeyMaxAge   = time.Hour
	// maxDataKeyUses is the hard bound: nonces count uses in 64 bits,
	// but GCM with one key must stay under 2^32 messages.
	maxDataKeyUses = 1 << 32
)

// dataKey is an unwrapped data key in a locked scratch slot, shared by the
// workers that use it and freed when the last one lets go.
type dataKey struct {
	slot *securebuf.Scratch
	key  []byte // slot.Bytes(), read-only by convention
	refs atomic.Int32

	// Encrypter only, guarded by the partition entry's mu.
	prefix      []byte // binary header up to the nonce
	noncePrefix [4]byte
	uses        uint64
	bytes       int64
	created     time.Time
}

func (d *dataKey) release() {
	if d.refs.Add(-1) == 0 {
		d.slot.Release()
	}
}

// newDataKey copies an unwrapped key from a securebuf Secret (which it
// closes) into a scratch slot. The returned key holds one reference.
func newDataKey(secrets *securebuf.Factory, s securebuf.Secret) (*dataKey, error) {
	defer s.Close()
	slot, err := secrets.Scratch(envelope.AES256KeySize)
	if err != nil {
		return nil, fmt.Errorf("records: no room for a data key: %w", err)
	}
	err = s.WithBytes(func(b []byte) error {
		if len(b) != envelope.AES256KeySize {
			return fmt.Errorf("records: data key of %d bytes", len(b))
		}
		copy(slot.Bytes(), b)
		return nil
	})
	if err != nil {
		slot.Release()
		return nil, err
	}
	d := &dataKey{slot: slot, key: slot.Bytes()}
	d.refs.Store(1)
	return d, nil
}

// entry is one partition's open session and, for an Encrypter, its current
// data key.
type entry struct {
	partition string
	sess      *envelope.Session
	refs      int // guarded by keyCache.mu; the cache holds one
	elem      *list.Element

	mu sync.Mutex
	dk *dataKey // current data key (Encrypter)
}

// keyCache keeps sessions per partition, least recently used out, and the
// Decrypter's unwrapped data keys. Sessions come from one shared factory;
// when warm, a record costs no factory, metastore or KMS call.
type keyCache struct {
	f       *envelope.SessionFactory
	secrets *securebuf.Factory
	ownSecs bool
	max     int

	mu      sync.Mutex
	entries map[string]*entry
	lru     list.List // of *entry, most recent first
	closed  bool

	dkMu   sync.Mutex
	dkMax  int
	dks    map[string]*list.Element // of *openedKey
	dkLRU  list.List
	hits   atomic.Int64
	misses atomic.Int64
}

type openedKey struct {
	id string
	dk *dataKey
}

func newKeyCache(f *envelope.SessionFactory, secrets *securebuf.Factory, sessions, dataKeys int) (*keyCache, error) {
	if f == nil {
		return nil, errors.New("records: a SessionFactory is required")
	}
	if sessions <= 0 {
		sessions = DefaultSessionCacheSize
	}
	c := &keyCache{f: f, secrets: secrets, max: sessions, dkMax: dataKeys, entries: map[string]*entry{}, dks: map[string]*list.Element{}}
	if c.secrets == nil {
		// One slot per cached data key and per worker refreshing one,
		// 64 slots a page.
		pages := (sessions+dataKeys+256)/64 + 1
		sf, err := securebuf.NewFactory(securebuf.WithScratchPages(pages))
		if err != nil {
			return nil, fmt.Errorf("records: failed to create the secret factory: %w", err)
		}
		c.secrets, c.ownSecs = sf, true
	}
	return c, nil
}

// get returns the entry of partition with a reference; release it with put.
func (c *keyCache) get(partition string) (*entry, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, envelope.ErrClosed
	}
	if e, ok := c.entries[partition]; ok {
		e.refs++
		c.lru.MoveToFront(e.elem)
		c.mu.Unlock()
		c.hits.Add(1)
		return e, nil
	}
	c.mu.Unlock()
	c.misses.Add(1)
	sess, err := c.f.GetSession(partition)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		sess.Close()
		return nil, envelope.ErrClosed
	}
	if e, ok := c.entries[partition]; ok { // another worker was quicker
		sess.Close()
		e.refs++
		c.lru.MoveToFront(e.elem)
		return e, nil
	}
	e := &entry{partition: partition, sess: sess, refs: 2}
	e.elem = c.lru.PushFront(e)
	c.entries[partition] = e
	for len(c.entries) > c.max {
		old := c.lru.Back().Value.(*entry)
		c.lru.Remove(old.elem)
		delete(c.entries, old.partition)
		c.unref(old)
	}
	return e, nil
}

func (c *keyCache) put(e *entry) {
	c.mu.Lock()
	c.unref(e)
	c.mu.Unlock()
}

// unref drops a reference, closing the entry at zero. c.mu is held.
func (c *keyCache) unref(e *entry) {
	e.refs--
	if e.refs > 0 {
		return
	}
	e.sess.Close()
	e.mu.Lock()
	if e.dk != nil {
		e.dk.release()
		e.dk = nil
	}
	e.mu.Unlock()
}

// currentKey returns the partition's data key for encrypting a record of n
// bytes with its use number (the nonce counter), making a new key when the
// current one has reached a bound. Release the key when done.
func (c *keyCache) currentKey(ctx context.Context, e *entry, flags byte, lim dataKeyLimits, n int) (*dataKey, uint64, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.dk
	if d == nil || d.uses >= lim.uses || d.bytes+int64(n) > lim.bytes || lim.now().Sub(d.created) >= lim.age {
		secret, rec, err := e.sess.NewDataKey(ctx)
		if err != nil {
			return nil, 0, err
		}
		nd, err := newDataKey(c.secrets, secret)
		if err != nil {
			return nil, 0, err
		}
		nd.prefix = appendBinaryPrefix(nil, flags, rec)
		rand.Read(nd.noncePrefix[:])
		nd.created = lim.now()
		if d != nil {
			d.release()
		}
		e.dk, d = nd, nd
		c.misses.Add(1)
	} else {
		c.hits.Add(1)
	}
	use := d.uses
	d.uses++
	d.bytes += int64(n)
	d.refs.Add(1)
	return d, use, nil
}

type dataKeyLimits struct {
	uses  uint64
	bytes int64
	age   time.Duration
	now   func() time.Time
}

// openedKey returns the unwrapped data key of a binary record of partition
// e, from the cache or unwrapped by the partition's session (which checks
// that the key is the partition's). Release it when done.
func (c *keyCache) openedKey(ctx context.Context, e *entry, h *binHeader) (*dataKey, error) {
	var buf [512]byte
	idb := append(buf[:0], e.partition...)
	idb = append(append(idb, 0), h.ikID...)
	idb = append(append(idb, 0), h.wrapped...)
	idb = strconv.AppendInt(append(idb, 0), h.ikCreated, 10)
	c.dkMu.Lock()
	if el, ok := c.dks[string(idb)]; ok {
		d := el.Value.(*openedKey).dk
		c.dkLRU.MoveToFront(el)
		d.refs.Add(1)
		c.dkMu.Unlock()
		c.hits.Add(1)
		return d, nil
	}
	c.dkMu.Unlock()
	c.misses.Add(1)
	secret, err := e.sess.OpenDataKey(ctx, &envelope.EnvelopeKeyRecord{
		EncryptedKey:  h.wrapped,
		ParentKeyMeta: &envelope.KeyMeta{ID: h.ikID, Created: h.ikCreated},
	})
	if err != nil {
		return nil, err
	}
	d, err := newDataKey(c.secrets, secret)
	if err != nil {
		return nil, err
	}
	id := string(idb)
	c.dkMu.Lock()
	defer c.dkMu.Unlock()
	if el, ok := c.dks[id]; ok { // another worker was quicker
		d.release()
		d = el.Value.(*openedKey).dk
		c.dkLRU.MoveToFront(el)
		d.refs.Add(1)
		return d, nil
	}
	if c.dkMax > 0 {
		c.dks[id] = c.dkLRU.PushFront(&openedKey{id: id, dk: d})
		d.refs.Add(1)
		for len(c.dks) > c.dkMax {
			old := c.dkLRU.Back().Value.(*openedKey)
			c.dkLRU.Remove(c.dks[old.id])
			delete(c.dks, old.id)
			old.dk.release()
		}
	}
	return d, nil
}

// close closes every cached session and data key (in-flight users keep
// theirs until they release them) and the secret factory if the cache made
// it.
func (c *keyCache) close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for p, e := range c.entries {
		delete(c.entries, p)
		c.unref(e)
	}
	c.lru.Init()
	c.mu.Unlock()
	c.dkMu.Lock()
	for id, el := range c.dks {
		el.Value.(*openedKey).dk.release()
		delete(c.dks, id)
	}
	c.dkLRU.Init()
	c.dkMu.Unlock()
	if c.ownSecs {
		return c.secrets.Close()
	}
	return nil
}

// stats returns the lookups served from the caches and those that had to
// load.
func (c *keyCache) stats() (hits, misses int64) { return c.hits.Load(), c.misses.Load() }
