package envelope

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/internal/keycache"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Session encrypts and decrypts the records of one partition. Get one from
// SessionFactory.GetSession and Close it when done: a session holds its
// partition's decrypted intermediate keys in locked memory.
//
// A Session is safe for concurrent use. Its methods fail with ErrClosed
// after Close, or after the factory is closed.
type Session struct {
	core   *sessionCore
	closed atomic.Bool
}

// sessionCore is the state of a session, shared by the handles the session
// cache gives out for one partition.
type sessionCore struct {
	f            *SessionFactory
	partition    string
	ikID         string // the id this session writes under
	ikBase       string // the id without region suffix
	ikBasePrefix string // ikBase + "_", for suffixed factories only
	ik           *keycache.Cache
	ownIK        bool
	refs         atomic.Int32
	lastUsed     atomic.Int64 // UnixNano, for the session cache
}

func (c *sessionCore) acquire() bool {
	for {
		n := c.refs.Load()
		if n <= 0 {
			return false
		}
		if c.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (c *sessionCore) release() {
	if c.refs.Add(-1) != 0 {
		return
	}
	c.f.liveMu.Lock()
	delete(c.f.live, c)
	c.f.liveMu.Unlock()
	if c.ownIK {
		c.ik.Close()
	}
}

func (s *Session) use() (*sessionCore, error) {
	if s.closed.Load() || s.core.f.closed.Load() {
		return nil, ErrClosed
	}
	return s.core, nil
}

// Partition returns the session's partition id.
func (s *Session) Partition() string { return s.core.partition }

// checkPartition accepts the intermediate key ids this session may decrypt
// with: its own id; and, when the factory uses a region suffix, the
// unsuffixed id or the unsuffixed id followed by "_" and a region (see
// IsRegionSuffix), which is how records written in other regions look.
// Asherah accepts any id that merely starts with the unsuffixed id, which
// lets partition "a" open records of partition "a_svc_prod"; we do not.
func (c *sessionCore) checkPartition(id string) error {
	if id == c.ikID {
		return nil
	}
	if c.ikBasePrefix != "" {
		if id == c.ikBase {
			return nil
		}
		if rest, ok := strings.CutPrefix(id, c.ikBasePrefix); ok && IsRegionSuffix(rest) {
			return nil
		}
	}
	return fmt.Errorf("%w: intermediate key %q is not this session's (%q)", ErrPartitionMismatch, id, c.ikID)
}

// Encrypt encrypts data under a fresh data row key, wraps that key with the
// partition's latest intermediate key and returns both as a DataRowRecord.
// If the intermediate key (or the system key above it) is missing, expired
// or revoked, a new one is created and stored first. data is not modified
// or retained.
func (s *Session) Encrypt(ctx context.Context, data []byte) (*DataRowRecord, error) {
	c, err := s.use()
	if err != nil {
		return nil, err
	}
	f := c.f
	if uint64(len(data)) > MaxPlaintextSize {
		return nil, ErrDataTooLarge
	}
	// One reading of the clock (two vDSO calls) serves the cache's check
	// of the latest key, the record's Created and, with metrics and the
	// real clock, the start of the timing.
	now := f.now()
	start := now
	if f.m != nil && !f.realClock {
		start = time.Now()
	}
	ik, err := c.ik.GetOrLoadLatestAt(ctx, c.ikID, now)
	if err != nil {
		return nil, cacheErr(err)
	}
	defer ik.Release()
	// One allocation for the record, its key record, the parent's meta
	// and the wrapped data row key.
	a := new(drrAlloc)
	// One read from crypto/rand for the data row key and both nonces.
	err = f.withScratch(ctx, AES256KeySize+2*GCMNonceSize, func(buf []byte) error {
		rand.Read(buf)
		drk := buf[:AES256KeySize]
		dataNonce := buf[AES256KeySize : AES256KeySize+GCMNonceSize]
		keyNonce := buf[AES256KeySize+GCMNonceSize:]
		var err error
		if a.drr.Data, err = f.seal(data, drk, dataNonce); err != nil {
			return fmt.Errorf("envelope: failed to encrypt data: %w", err)
		}
		if a.key.EncryptedKey, err = f.wrapBytes(a.wrapped[:0], drk, ik, keyNonce); err != nil {
			return fmt.Errorf("envelope: failed to wrap data row key: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.meta = KeyMeta{ID: ik.ID(), Created: ik.Created()}
	a.key.Created = now.Unix()
	a.key.ParentKeyMeta = &a.meta
	a.drr.Key = &a.key
	if f.m != nil {
		f.m.encrypt.Observe(time.Since(start))
	}
	return &a.drr, nil
}

// drrAlloc holds everything Encrypt returns, allocated at once.
type drrAlloc struct {
	drr     DataRowRecord
	key     EnvelopeKeyRecord
	meta    KeyMeta
	wrapped [AES256KeySize + Overhead]byte
}

// Decrypt returns the plaintext of drr. It checks, in this order, that the
// record has a Key and a ParentKeyMeta (ErrInvalidRecord), that the key is
// this session's partition's (ErrPartitionMismatch), loads the
// intermediate and system keys (a *KeyError matching ErrNotFound when
// absent) and authenticates the wrapped key and the data (ErrDecrypt). It
// never returns plaintext together with an error. Revoked and expired keys
// still decrypt.
func (s *Session) Decrypt(ctx context.Context, drr DataRowRecord) ([]byte, error) {
	c, err := s.use()
	if err != nil {
		return nil, err
	}
	f := c.f
	var start time.Time
	if f.m != nil {
		start = time.Now()
	}
	if err := checkKeyRecord(drr.Key); err != nil {
		return nil, err
	}
	if err := c.checkPartition(drr.Key.ParentKeyMeta.ID); err != nil {
		return nil, err
	}
	ik, err := c.ik.GetOrLoad(ctx, keycache.Key{ID: drr.Key.ParentKeyMeta.ID, Created: drr.Key.ParentKeyMeta.Created})
	if err != nil {
		return nil, cacheErr(err)
	}
	defer ik.Release()
	var pt []byte
	err = f.withScratch(ctx, AES256KeySize, func(buf []byte) error {
		drk, err := f.unwrapInto(buf, drr.Key.EncryptedKey, ik)
		if err != nil {
			return fmt.Errorf("envelope: failed to unwrap data row key: %w", err)
		}
		if pt, err = f.open(drr.Data, drk); err != nil {
			return fmt.Errorf("envelope: failed to decrypt data: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if f.m != nil {
		f.m.decrypt.Observe(time.Since(start))
	}
	return pt, nil
}

func checkKeyRecord(rec *EnvelopeKeyRecord) error {
	if rec == nil {
		return fmt.Errorf("%w: datarow key record cannot be empty", ErrInvalidRecord)
	}
	if rec.ParentKeyMeta == nil {
		return fmt.Errorf("%w: parent key cannot be empty", ErrInvalidRecord)
	}
	return nil
}

// NewDataKey makes a fresh random 32-byte data key in protected memory and
// wraps it with the partition's current intermediate key, rotating inline
// like Encrypt. The record is exactly what Encrypt puts in
// DataRowRecord.Key. The caller owns the secret and must Close it.
func (s *Session) NewDataKey(ctx context.Context) (securebuf.Secret, *EnvelopeKeyRecord, error) {
	c, err := s.use()
	if err != nil {
		return nil, nil, err
	}
	f := c.f
	ik, err := c.ik.GetOrLoadLatest(ctx, c.ikID)
	if err != nil {
		return nil, nil, cacheErr(err)
	}
	defer ik.Release()
	drk, err := f.secrets.CreateRandom(AES256KeySize)
	if err != nil {
		return nil, nil, fmt.Errorf("envelope: failed to create data key: %w", err)
	}
	wrapped, err := f.wrapSecret(drk, ik)
	if err != nil {
		drk.Close()
		return nil, nil, fmt.Errorf("envelope: failed to wrap data key: %w", err)
	}
	f.count(MetricDataKeyNew)
	return drk, &EnvelopeKeyRecord{
		Created:       f.now().Unix(),
		EncryptedKey:  wrapped,
		ParentKeyMeta: &KeyMeta{ID: ik.ID(), Created: ik.Created()},
	}, nil
}

// OpenDataKey unwraps a data key record made by NewDataKey or Encrypt,
// after the same checks Decrypt makes, into protected memory. The caller
// owns the secret and must Close it.
func (s *Session) OpenDataKey(ctx context.Context, rec *EnvelopeKeyRecord) (securebuf.Secret, error) {
	c, err := s.use()
	if err != nil {
		return nil, err
	}
	if err := checkKeyRecord(rec); err != nil {
		return nil, err
	}
	if err := c.checkPartition(rec.ParentKeyMeta.ID); err != nil {
		return nil, err
	}
	ik, err := c.ik.GetOrLoad(ctx, keycache.Key{ID: rec.ParentKeyMeta.ID, Created: rec.ParentKeyMeta.Created})
	if err != nil {
		return nil, cacheErr(err)
	}
	defer ik.Release()
	key, _, err := c.f.unwrapKey(ctx, rec.EncryptedKey, ik, false)
	if err != nil {
		return nil, fmt.Errorf("envelope: failed to unwrap data key: %w", err)
	}
	c.f.count(MetricDataKeyOpened)
	return key, nil
}

// Storer persists a DataRowRecord and returns the key to find it by.
type Storer interface {
	Store(ctx context.Context, d DataRowRecord) (any, error)
}

// StorerFunc adapts a function to Storer.
type StorerFunc func(ctx context.Context, d DataRowRecord) (any, error)

// Store calls fn.
func (fn StorerFunc) Store(ctx context.Context, d DataRowRecord) (any, error) { return fn(ctx, d) }

// Loader finds a DataRowRecord by the key a Storer returned.
type Loader interface {
	Load(ctx context.Context, key any) (*DataRowRecord, error)
}

// LoaderFunc adapts a function to Loader.
type LoaderFunc func(ctx context.Context, key any) (*DataRowRecord, error)

// Load calls fn.
func (fn LoaderFunc) Load(ctx context.Context, key any) (*DataRowRecord, error) { return fn(ctx, key) }

var (
	_ Storer = StorerFunc(nil)
	_ Loader = LoaderFunc(nil)
)

// Store encrypts payload and hands the record to store, returning the key
// store returns.
func (s *Session) Store(ctx context.Context, payload []byte, store Storer) (any, error) {
	drr, err := s.Encrypt(ctx, payload)
	if err != nil {
		return nil, err
	}
	return store.Store(ctx, *drr)
}

// Load fetches the record for key from loader and decrypts it.
func (s *Session) Load(ctx context.Context, key any, loader Loader) ([]byte, error) {
	drr, err := loader.Load(ctx, key)
	if err != nil {
		return nil, err
	}
	if drr == nil {
		return nil, fmt.Errorf("%w: loader returned no record", ErrInvalidRecord)
	}
	return s.Decrypt(ctx, *drr)
}

// Close releases the session's intermediate key cache (with the session
// cache or a shared intermediate key cache, it only hands the session
// back). Operations in flight finish with the keys they hold. Close is
// idempotent and always returns nil.
func (s *Session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.core.release()
	return nil
}
