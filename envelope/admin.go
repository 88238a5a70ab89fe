package envelope

import (
	"context"
	"fmt"

	"github.com/enc-pipe/enc-pipe/envelope/internal/keycache"
)

// Optional Metastore interfaces for key administration (enc-pipe keys
// rotate|revoke|list|delete). The SessionFactory methods below use them
// when the metastore implements them and return ErrNotSupported otherwise.
// memstore and sqlstore implement all three.

// Revoker marks a stored key revoked. It sets the Revoked flag of the
// record under (id, created), keeping everything else, and returns an error
// wrapping ErrNotFound when there is no such record. Revoking twice is not
// an error.
type Revoker interface {
	Revoke(ctx context.Context, id string, created int64) error
}

// Lister lists stored keys. List returns the records whose id starts with
// idPrefix (compared byte for byte: "_" and "%" are not wildcards), with
// their ID field set, sorted by id and then created time.
type Lister interface {
	List(ctx context.Context, idPrefix string) ([]*EnvelopeKeyRecord, error)
}

// Deleter deletes keys, for crypto-shredding: once every row of an
// intermediate key id is gone, the records written under it can no longer
// be decrypted by anyone. Delete removes every row of id and returns how
// many it removed.
type Deleter interface {
	Delete(ctx context.Context, id string) (int, error)
}

// RotateSystemKey creates and stores a new system key now, even though the
// current one is still valid, and returns its id and created time. New
// intermediate keys are wrapped by it; existing intermediate keys keep
// their system key until they are rotated themselves. Other processes pick
// the new key up when their cached one is re-checked (RevokeCheckInterval).
func (f *SessionFactory) RotateSystemKey(ctx context.Context) (KeyMeta, error) {
	if f.closed.Load() {
		return KeyMeta{}, ErrClosed
	}
	latest, err := f.latestCreated(ctx, SystemKey, f.skID)
	if err != nil {
		return KeyMeta{}, err
	}
	e, err := f.createSystemKey(ctx, f.skID, latest)
	if err != nil {
		return KeyMeta{}, err
	}
	defer e.Release()
	f.skCache.ForgetLatest(f.skID)
	return KeyMeta{ID: e.ID(), Created: e.Created()}, nil
}

// RotateIntermediateKey creates and stores a new intermediate key for
// partition now, wrapped by the latest system key, and returns its id and
// created time. Sessions of this factory that share a cache see it on their
// next write; others on their next re-check (RevokeCheckInterval).
func (f *SessionFactory) RotateIntermediateKey(ctx context.Context, partition string) (KeyMeta, error) {
	if f.closed.Load() {
		return KeyMeta{}, ErrClosed
	}
	if partition == "" {
		return KeyMeta{}, ErrEmptyPartition
	}
	id := f.IntermediateKeyID(partition)
	latest, err := f.latestCreated(ctx, IntermediateKey, id)
	if err != nil {
		return KeyMeta{}, err
	}
	e, err := f.createIntermediateKey(ctx, id, latest)
	if err != nil {
		return KeyMeta{}, err
	}
	defer e.Release()
	f.forEachIKCache(func(c *keycache.Cache) { c.ForgetLatest(id) })
	return KeyMeta{ID: e.ID(), Created: e.Created()}, nil
}

// latestCreated returns the created time of the newest stored key of id,
// or 0 when there is none.
func (f *SessionFactory) latestCreated(ctx context.Context, kind KeyKind, id string) (int64, error) {
	rec, err := f.loadLatest(ctx, id)
	switch {
	case err == nil:
		return rec.Created, nil
	case isNotFound(err):
		return 0, nil
	default:
		return 0, keyErr("load latest", kind, id, 0, err)
	}
}

// RevokeKey marks the stored key (id, created) revoked through the
// metastore's Revoker. It is never used for new writes again: this
// factory's sessions stop using it at once (for a system key, they also
// replace the intermediate keys it wraps on their next write), other
// processes when they re-check it (RevokeCheckInterval). Records written
// under it still decrypt.
func (f *SessionFactory) RevokeKey(ctx context.Context, id string, created int64) error {
	if f.closed.Load() {
		return ErrClosed
	}
	r, ok := f.store.(Revoker)
	if !ok {
		return fmt.Errorf("%w: %T does not implement Revoker", ErrNotSupported, f.store)
	}
	if err := r.Revoke(ctx, id, created); err != nil {
		return fmt.Errorf("envelope: failed to revoke %s (created %d): %w", id, created, err)
	}
	k := keycache.Key{ID: id, Created: created}
	f.skCache.MarkRevoked(k)
	f.forEachIKCache(func(c *keycache.Cache) {
		c.MarkRevoked(k)
		if id == f.skID {
			// Intermediate keys wrapped by a revoked system key must
			// not serve writes either: make the next write re-check.
			c.ForgetAllLatest()
		}
	})
	return nil
}

// ListKeys returns the stored keys whose id starts with idPrefix, through
// the metastore's Lister.
func (f *SessionFactory) ListKeys(ctx context.Context, idPrefix string) ([]*EnvelopeKeyRecord, error) {
	if f.closed.Load() {
		return nil, ErrClosed
	}
	l, ok := f.store.(Lister)
	if !ok {
		return nil, fmt.Errorf("%w: %T does not implement Lister", ErrNotSupported, f.store)
	}
	return l.List(ctx, idPrefix)
}

// DeleteKeys deletes every stored row of key id through the metastore's
// Deleter and drops the key from this factory's caches. Deleting a
// partition's intermediate key id crypto-shreds the partition: its records
// can no longer be decrypted, here or anywhere (sessions of other
// processes that still cache the key lose it at their next re-check). It
// returns the number of rows deleted.
func (f *SessionFactory) DeleteKeys(ctx context.Context, id string) (int, error) {
	if f.closed.Load() {
		return 0, ErrClosed
	}
	d, ok := f.store.(Deleter)
	if !ok {
		return 0, fmt.Errorf("%w: %T does not implement Deleter", ErrNotSupported, f.store)
	}
	n, err := d.Delete(ctx, id)
	if err != nil {
		return n, fmt.Errorf("envelope: failed to delete %s: %w", id, err)
	}
	f.skCache.RemoveID(id)
	f.forEachIKCache(func(c *keycache.Cache) { c.RemoveID(id) })
	return n, nil
}

// forEachIKCache calls fn for the intermediate key caches of this
// factory: the shared one, or those of its open sessions.
func (f *SessionFactory) forEachIKCache(fn func(*keycache.Cache)) {
	if f.sharedIK != nil {
		fn(f.sharedIK)
		return
	}
	f.liveMu.Lock()
	caches := make([]*keycache.Cache, 0, len(f.live))
	for c := range f.live {
		caches = append(caches, c.ik)
	}
	f.liveMu.Unlock()
	for _, c := range caches {
		fn(c)
	}
}
