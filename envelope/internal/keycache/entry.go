package keycache

import (
	"crypto/cipher"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Key names a cached key: its metastore id and created time.
type Key struct {
	ID      string
	Created int64
}

// Entry is a decrypted key in protected memory together with what the
// cache knows about its metastore row, and optionally a cipher built from
// the key (an aesgcm AEAD) so that users need not open the secret.
//
// An Entry is reference counted. Whoever receives one from the cache or
// from NewEntry holds one reference and must call Release exactly once; the
// cache holds its own reference while the entry is stored. The secret is
// closed and the cipher wiped when the last reference is released, so an
// entry evicted while an Encrypt is using it stays valid until that
// Encrypt is done.
type Entry struct {
	key     Key
	secret  securebuf.Secret
	aead    cipher.AEAD // nil when the key is used through its secret only
	revoked atomic.Bool
	checked atomic.Int64 // UnixNano of the last metastore read of the row
	refs    atomic.Int32
}

// NewEntry returns an entry holding secret and aead (nil for none; the
// entry owns it and wipes it), with one reference owned by the caller.
// checked is when the row was read from the metastore.
func NewEntry(id string, created int64, secret securebuf.Secret, aead cipher.AEAD, revoked bool, checked time.Time) *Entry {
	e := &Entry{key: Key{ID: id, Created: created}, secret: secret, aead: aead}
	e.revoked.Store(revoked)
	e.checked.Store(checked.UnixNano())
	e.refs.Store(1)
	return e
}

// Key returns the entry's id and created time.
func (e *Entry) Key() Key { return e.key }

// ID returns the key's metastore id.
func (e *Entry) ID() string { return e.key.ID }

// Created returns the key's created time in Unix seconds.
func (e *Entry) Created() int64 { return e.key.Created }

// Secret returns the key bytes in protected memory. It stays open while the
// caller holds its reference.
func (e *Entry) Secret() securebuf.Secret { return e.secret }

// AEAD returns the cipher built from the key, or nil when the entry has
// none. It stays usable while the caller holds its reference.
func (e *Entry) AEAD() cipher.AEAD { return e.aead }

// Revoked reports the Revoked flag last read from the metastore.
func (e *Entry) Revoked() bool { return e.revoked.Load() }

// SetRevoked records the Revoked flag read from the metastore.
func (e *Entry) SetRevoked(v bool) { e.revoked.Store(v) }

// MarkChecked records that the row was read from the metastore at t.
func (e *Entry) MarkChecked(t time.Time) { e.checked.Store(t.UnixNano()) }

// Checked returns when the row was last read from the metastore.
func (e *Entry) Checked() time.Time { return time.Unix(0, e.checked.Load()) }

// acquire takes a reference unless the entry is already released for good.
func (e *Entry) acquire() bool {
	for {
		n := e.refs.Load()
		if n <= 0 {
			return false
		}
		if e.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops one reference. The last one wipes the cipher and closes
// the secret.
func (e *Entry) Release() {
	n := e.refs.Add(-1)
	if n == 0 {
		if e.aead != nil {
			aesgcm.Wipe(e.aead)
			e.aead = nil
		}
		e.secret.Close()
	} else if n < 0 {
		panic("keycache: internal error: entry released more often than acquired")
	}
}
