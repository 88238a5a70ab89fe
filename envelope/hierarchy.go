package envelope

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/internal/keycache"
	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// maxCreateAttempts bounds how often a key creation is retried when it
// loses the store race to a key that turns out to be unusable.
const maxCreateAttempts = 3

// usable reports whether a stored key may be used for new writes.
func (f *SessionFactory) usable(revoked bool, created int64, now time.Time) bool {
	return !revoked && !now.After(time.Unix(created, 0).Add(f.policy.ExpireKeyAfter))
}

// newCreated returns the created time of a new system or intermediate key:
// now truncated to CreateDatePrecision, so that concurrent creators collide
// on one row. When the newest stored key (latestKnown) is unusable and was
// created in the same window, it returns latestKnown+1 instead, the same
// answer for every concurrent creator, so they still collide.
func (f *SessionFactory) newCreated(now time.Time, latestKnown int64) int64 {
	c := truncateCreated(now, f.policy.CreateDatePrecision)
	if c <= latestKnown {
		c = latestKnown + 1
	}
	return c
}

// ---- system keys ----

// skLoader loads and creates system keys for the system key cache.
type skLoader struct{ f *SessionFactory }

var _ keycache.Loader = skLoader{}

func (l skLoader) LoadLatest(ctx context.Context, id string, cur *keycache.Entry) (*keycache.Entry, error) {
	f := l.f
	rec, err := f.loadLatest(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return f.createSystemKey(ctx, id, 0)
	}
	if err != nil {
		return nil, keyErr("load latest", SystemKey, id, 0, err)
	}
	now := f.now()
	if cur != nil && rec.Created == cur.Created() {
		cur.SetRevoked(rec.Revoked)
		cur.MarkChecked(now)
		if f.usable(rec.Revoked, rec.Created, now) {
			return cur, nil
		}
	}
	if !f.usable(rec.Revoked, rec.Created, now) {
		f.log.DebugContext(ctx, "envelope: latest system key is revoked or expired; creating a new one",
			"id", id, "created", rec.Created, "revoked", rec.Revoked)
		return f.createSystemKey(ctx, id, rec.Created)
	}
	return f.openSystemKey(ctx, id, rec, now)
}

func (l skLoader) Load(ctx context.Context, k keycache.Key) (*keycache.Entry, error) {
	f := l.f
	rec, err := f.load(ctx, k.ID, k.Created)
	if err != nil {
		return nil, keyErr("load", SystemKey, k.ID, k.Created, err)
	}
	return f.openSystemKey(ctx, k.ID, rec, f.now())
}

func (l skLoader) Refresh(ctx context.Context, e *keycache.Entry) error {
	return l.f.refresh(ctx, SystemKey, e)
}

// refresh re-reads the row of a cached key for its Revoked flag.
func (f *SessionFactory) refresh(ctx context.Context, kind KeyKind, e *keycache.Entry) error {
	rec, err := f.load(ctx, e.ID(), e.Created())
	if err != nil {
		return keyErr("re-check", kind, e.ID(), e.Created(), err)
	}
	e.SetRevoked(rec.Revoked)
	e.MarkChecked(f.now())
	f.log.DebugContext(ctx, "envelope: re-checked cached key", "kind", string(kind), "id", e.ID(), "created", e.Created(), "revoked", rec.Revoked)
	return nil
}

// openSystemKey unwraps a stored system key with the KMS.
func (f *SessionFactory) openSystemKey(ctx context.Context, id string, rec *EnvelopeKeyRecord, checked time.Time) (*keycache.Entry, error) {
	raw, err := f.kmsDecrypt(ctx, rec.EncryptedKey)
	if err != nil {
		return nil, keyErr("decrypt (KMS)", SystemKey, id, rec.Created, err)
	}
	if len(raw) != AES256KeySize {
		clear(raw)
		return nil, keyErr("decrypt (KMS)", SystemKey, id, rec.Created, fmt.Errorf("%w: KMS returned %d bytes", ErrInvalidKey, len(raw)))
	}
	s, err := f.secrets.New(raw) // wipes raw
	if err != nil {
		clear(raw)
		return nil, keyErr("protect", SystemKey, id, rec.Created, err)
	}
	f.count(MetricSystemKeyLoad)
	return keycache.NewEntry(id, rec.Created, s, nil, rec.Revoked, checked), nil
}

// createSystemKey makes a new system key, has the KMS wrap it and stores
// it. When another writer stored a key under the same (id, created) first,
// the newest stored key is used instead.
func (f *SessionFactory) createSystemKey(ctx context.Context, id string, latestKnown int64) (*keycache.Entry, error) {
	for range maxCreateAttempts {
		now := f.now()
		created := f.newCreated(now, latestKnown)
		sk, err := f.secrets.CreateRandom(AES256KeySize)
		if err != nil {
			return nil, keyErr("create", SystemKey, id, created, err)
		}
		var wrapped []byte
		err = sk.WithBytes(func(b []byte) error {
			var err error
			wrapped, err = f.kmsEncrypt(ctx, b)
			return err
		})
		if err != nil {
			sk.Close()
			return nil, keyErr("encrypt (KMS)", SystemKey, id, created, err)
		}
		rec := &EnvelopeKeyRecord{ID: id, Created: created, EncryptedKey: wrapped}
		err = f.storeKey(ctx, id, created, rec)
		if err == nil {
			f.count(MetricSystemKeyNew)
			f.log.DebugContext(ctx, "envelope: created system key", "id", id, "created", created)
			return keycache.NewEntry(id, created, sk, nil, false, now), nil
		}
		sk.Close()
		if !errors.Is(err, ErrKeyExists) {
			return nil, keyErr("store", SystemKey, id, created, err)
		}
		// Another writer created the key between our load and our store.
		f.count(MetricStoreLostRace)
		f.log.DebugContext(ctx, "envelope: lost the race to create a system key; using the stored one", "id", id, "created", created)
		rec, err = f.loadLatest(ctx, id)
		if err != nil {
			return nil, keyErr("load latest (after a lost store race)", SystemKey, id, 0, err)
		}
		if now := f.now(); f.usable(rec.Revoked, rec.Created, now) {
			return f.openSystemKey(ctx, id, rec, now)
		}
		latestKnown = max(latestKnown, rec.Created)
	}
	return nil, keyErr("create", SystemKey, id, 0, errors.New("every stored key was unusable after repeated store races"))
}

// ---- intermediate keys ----

// ikLoader loads and creates intermediate keys for the intermediate key
// caches. The key id alone says which partition a key belongs to.
type ikLoader struct{ f *SessionFactory }

var _ keycache.Loader = ikLoader{}

// errUnusableParent reports that a stored intermediate key's system key is
// revoked or expired, so the intermediate key must not be used for writes.
var errUnusableParent = errors.New("its system key is revoked or expired")

func (l ikLoader) LoadLatest(ctx context.Context, id string, cur *keycache.Entry) (*keycache.Entry, error) {
	f := l.f
	rec, err := f.loadLatest(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return f.createIntermediateKey(ctx, id, 0)
	}
	if err != nil {
		return nil, keyErr("load latest", IntermediateKey, id, 0, err)
	}
	now := f.now()
	if cur != nil && rec.Created == cur.Created() {
		// The cached key is still the newest: keep it if it and its
		// system key are still usable.
		cur.SetRevoked(rec.Revoked)
		cur.MarkChecked(now)
		if f.usable(rec.Revoked, rec.Created, now) {
			ok, err := f.parentUsable(ctx, rec, now)
			if err != nil {
				return nil, err
			}
			if ok {
				return cur, nil
			}
		}
		f.log.DebugContext(ctx, "envelope: cached intermediate key or its system key is revoked or expired; creating a new one",
			"id", id, "created", rec.Created)
		return f.createIntermediateKey(ctx, id, rec.Created)
	}
	if !f.usable(rec.Revoked, rec.Created, now) {
		f.log.DebugContext(ctx, "envelope: latest intermediate key is revoked or expired; creating a new one",
			"id", id, "created", rec.Created, "revoked", rec.Revoked)
		return f.createIntermediateKey(ctx, id, rec.Created)
	}
	e, err := f.openIntermediateKey(ctx, id, rec, now, true)
	if err != nil && (errors.Is(err, errUnusableParent) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, ErrDecrypt) || errors.Is(err, ErrInvalidRecord)) {
		// As Asherah does: a latest key that cannot serve writes is
		// replaced rather than failing every write.
		f.log.WarnContext(ctx, "envelope: latest intermediate key cannot be used for writes; creating a new one",
			"id", id, "created", rec.Created, "reason", err.Error())
		return f.createIntermediateKey(ctx, id, rec.Created)
	}
	return e, err
}

// parentUsable reports whether the system key that wraps the intermediate
// key rec is usable for writes. A missing system key is unusable.
func (f *SessionFactory) parentUsable(ctx context.Context, rec *EnvelopeKeyRecord, now time.Time) (bool, error) {
	if rec.ParentKeyMeta == nil {
		return false, nil
	}
	sk, err := f.skCache.GetOrLoad(ctx, keycache.Key{ID: rec.ParentKeyMeta.ID, Created: rec.ParentKeyMeta.Created})
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, cacheErr(err)
	}
	defer sk.Release()
	return f.usable(sk.Revoked(), sk.Created(), now), nil
}

func (l ikLoader) Load(ctx context.Context, k keycache.Key) (*keycache.Entry, error) {
	f := l.f
	rec, err := f.load(ctx, k.ID, k.Created)
	if err != nil {
		return nil, keyErr("load", IntermediateKey, k.ID, k.Created, err)
	}
	return f.openIntermediateKey(ctx, k.ID, rec, f.now(), false)
}

func (l ikLoader) Refresh(ctx context.Context, e *keycache.Entry) error {
	return l.f.refresh(ctx, IntermediateKey, e)
}

// openIntermediateKey unwraps a stored intermediate key with the system key
// its ParentKeyMeta names. forWrite additionally requires that system key
// to be usable.
func (f *SessionFactory) openIntermediateKey(ctx context.Context, id string, rec *EnvelopeKeyRecord, checked time.Time, forWrite bool) (*keycache.Entry, error) {
	if rec.ParentKeyMeta == nil {
		return nil, keyErr("load", IntermediateKey, id, rec.Created, fmt.Errorf("%w: stored key has no ParentKeyMeta", ErrInvalidRecord))
	}
	sk, err := f.skCache.GetOrLoad(ctx, keycache.Key{ID: rec.ParentKeyMeta.ID, Created: rec.ParentKeyMeta.Created})
	if err != nil {
		return nil, cacheErr(err)
	}
	defer sk.Release()
	if forWrite && !f.usable(sk.Revoked(), sk.Created(), checked) {
		return nil, keyErr("load", IntermediateKey, id, rec.Created, errUnusableParent)
	}
	s, aead, err := f.unwrapKey(ctx, rec.EncryptedKey, sk, f.cacheIK && !rec.Revoked)
	if err != nil {
		return nil, keyErr("unwrap", IntermediateKey, id, rec.Created, err)
	}
	f.count(MetricIntermediateLd)
	return keycache.NewEntry(id, rec.Created, s, aead, rec.Revoked, checked), nil
}

// createIntermediateKey makes a new intermediate key under the latest
// system key and stores it; a lost store race is resolved like
// createSystemKey's.
func (f *SessionFactory) createIntermediateKey(ctx context.Context, id string, latestKnown int64) (*keycache.Entry, error) {
	sk, err := f.skCache.GetOrLoadLatest(ctx, f.skID)
	if err != nil {
		return nil, cacheErr(err)
	}
	defer sk.Release()
	for range maxCreateAttempts {
		now := f.now()
		created := f.newCreated(now, latestKnown)
		ik, err := f.secrets.CreateRandom(AES256KeySize)
		if err != nil {
			return nil, keyErr("create", IntermediateKey, id, created, err)
		}
		wrapped, err := f.wrapSecret(ik, sk)
		if err != nil {
			ik.Close()
			return nil, keyErr("wrap", IntermediateKey, id, created, err)
		}
		rec := &EnvelopeKeyRecord{
			ID:            id,
			Created:       created,
			EncryptedKey:  wrapped,
			ParentKeyMeta: &KeyMeta{ID: sk.ID(), Created: sk.Created()},
		}
		err = f.storeKey(ctx, id, created, rec)
		if err == nil {
			f.count(MetricIntermediateNew)
			f.log.DebugContext(ctx, "envelope: created intermediate key", "id", id, "created", created,
				"system_key", sk.ID(), "system_key_created", sk.Created())
			var aead cipher.AEAD
			if f.cacheIK {
				if aead, err = f.cipherOf(ik); err != nil {
					ik.Close()
					return nil, keyErr("create", IntermediateKey, id, created, err)
				}
			}
			return keycache.NewEntry(id, created, ik, aead, false, now), nil
		}
		ik.Close()
		if !errors.Is(err, ErrKeyExists) {
			return nil, keyErr("store", IntermediateKey, id, created, err)
		}
		f.count(MetricStoreLostRace)
		f.log.DebugContext(ctx, "envelope: lost the race to create an intermediate key; using the stored one", "id", id, "created", created)
		rec, err = f.loadLatest(ctx, id)
		if err != nil {
			return nil, keyErr("load latest (after a lost store race)", IntermediateKey, id, 0, err)
		}
		if now := f.now(); f.usable(rec.Revoked, rec.Created, now) {
			return f.openIntermediateKey(ctx, id, rec, now, false)
		}
		latestKnown = max(latestKnown, rec.Created)
	}
	return nil, keyErr("create", IntermediateKey, id, 0, errors.New("every stored key was unusable after repeated store races"))
}

// ---- key wrapping ----

// cipherOf builds the AES-256-GCM cipher of the key in s (one WithBytes).
func (f *SessionFactory) cipherOf(s securebuf.Secret) (cipher.AEAD, error) {
	f.count(MetricKeyOpened)
	var aead cipher.AEAD
	err := s.WithBytes(func(b []byte) error {
		var err error
		aead, err = newGCM(b)
		return err
	})
	return aead, err
}

// wrapSecret encrypts the bytes of key under parent's key. key is
// unprotected only for the duration of the call.
func (f *SessionFactory) wrapSecret(key securebuf.Secret, parent *keycache.Entry) ([]byte, error) {
	var out []byte
	err := key.WithBytes(func(kb []byte) error {
		var err error
		out, err = f.wrapBytes(nil, kb, parent, nil)
		return err
	})
	return out, err
}

// keyOp carries one wrap or unwrap through Secret.WithBytes. The callbacks
// are method values bound once per pooled keyOp, so the hot path does not
// allocate a closure per call.
type keyOp struct {
	f        *SessionFactory
	nonce    []byte // for wrap: the nonce to use, or nil for a random one
	in       []byte // the key to wrap, or the blob to unwrap
	dst      []byte // where the result goes (appended to dst[:0])
	out      []byte
	wrapFn   func([]byte) error
	unwrapFn func([]byte) error
}

var keyOps = sync.Pool{New: func() any {
	op := &keyOp{}
	op.wrapFn = op.wrap
	op.unwrapFn = op.unwrap
	return op
}}

func getKeyOp(f *SessionFactory, in, dst []byte) *keyOp {
	op := keyOps.Get().(*keyOp)
	op.f, op.in, op.dst, op.out, op.nonce = f, in, dst, nil, nil
	return op
}

func (op *keyOp) put() {
	op.f, op.in, op.dst, op.out, op.nonce = nil, nil, nil, nil, nil
	keyOps.Put(op)
}

// wrap runs inside parent.WithBytes: it encrypts op.in under pb.
func (op *keyOp) wrap(pb []byte) error {
	var err error
	if op.f.native {
		op.out, err = sealAppendNonce(op.dst[:0], op.in, pb, op.nonce)
	} else {
		op.out, err = op.f.crypto.Encrypt(op.in, pb)
	}
	return err
}

// unwrap runs inside parent.WithBytes: it decrypts the blob op.in under pb
// into op.dst.
func (op *keyOp) unwrap(pb []byte) error {
	if op.f.native {
		var err error
		op.out, err = openAppend(op.dst[:0], op.in, pb)
		return err
	}
	pt, err := op.f.crypto.Decrypt(op.in, pb)
	if err != nil {
		return asDecryptErr(err)
	}
	defer clear(pt)
	if len(pt) > cap(op.dst) {
		return fmt.Errorf("%w: key of %d bytes", ErrDecrypt, len(pt))
	}
	op.out = append(op.dst[:0], pt...)
	return nil
}

// wrapBytes encrypts kb under parent's key, appending the blob to dst[:0]
// when the built-in AEAD is used, with nonce (nil for a random one; custom
// AEADs always choose their own). It uses parent's cipher when it has one
// (KeyAccessCached) and otherwise opens parent's secret once.
func (f *SessionFactory) wrapBytes(dst, kb []byte, parent *keycache.Entry, nonce []byte) ([]byte, error) {
	if aead := parent.AEAD(); aead != nil {
		return sealWith(aead, dst[:0], kb, nonce), nil
	}
	f.count(MetricKeyOpened)
	op := getKeyOp(f, kb, dst)
	op.nonce = nonce
	defer op.put()
	if err := parent.Secret().WithBytes(op.wrapFn); err != nil {
		return nil, err
	}
	return op.out, nil
}

// unwrapInto decrypts blob under parent's key and writes the key bytes
// into dst[:0], which must have room for them (a scratch slot): with the
// built-in AEAD the key never touches the Go heap. It returns the filled
// part of dst. Like wrapBytes it uses parent's cipher when it has one.
func (f *SessionFactory) unwrapInto(dst, blob []byte, parent *keycache.Entry) ([]byte, error) {
	if len(blob) < Overhead || len(blob)-Overhead > cap(dst) {
		return nil, fmt.Errorf("%w: wrapped key of %d bytes", ErrDecrypt, len(blob))
	}
	if aead := parent.AEAD(); aead != nil {
		return openWith(aead, dst[:0], blob)
	}
	f.count(MetricKeyOpened)
	op := getKeyOp(f, blob, dst)
	defer op.put()
	if err := parent.Secret().WithBytes(op.unwrapFn); err != nil {
		return nil, err
	}
	return op.out, nil
}

// unwrapKey decrypts blob under parent's key into a new secret and, when
// withCipher is set and the built-in AEAD is used, also returns the key's
// cipher, built from the same scratch copy before it is wiped.
func (f *SessionFactory) unwrapKey(ctx context.Context, blob []byte, parent *keycache.Entry, withCipher bool) (securebuf.Secret, cipher.AEAD, error) {
	var s securebuf.Secret
	var aead cipher.AEAD
	err := f.withScratch(ctx, AES256KeySize, func(buf []byte) error {
		key, err := f.unwrapInto(buf, blob, parent)
		if err != nil {
			return err
		}
		if len(key) != AES256KeySize {
			return fmt.Errorf("%w: unwrapped key has %d bytes", ErrInvalidKey, len(key))
		}
		if withCipher && f.native {
			if aead, err = newGCM(key); err != nil {
				return err
			}
		}
		s, err = f.secrets.New(key) // copies, then wipes the scratch bytes
		if err != nil && aead != nil {
			aesgcm.Wipe(aead)
			aead = nil
		}
		return err
	})
	return s, aead, err
}

// seal encrypts data under a raw key (a data row key in scratch memory),
// with nonce (nil for a random one; custom AEADs choose their own).
func (f *SessionFactory) seal(data, key, nonce []byte) ([]byte, error) {
	if f.native {
		return sealAppendNonce(nil, data, key, nonce)
	}
	return f.crypto.Encrypt(data, key)
}

// open decrypts blob under a raw key.
func (f *SessionFactory) open(blob, key []byte) ([]byte, error) {
	if f.native {
		return openAppend(nil, blob, key)
	}
	pt, err := f.crypto.Decrypt(blob, key)
	if err != nil {
		return nil, asDecryptErr(err)
	}
	return pt, nil
}

// asDecryptErr makes a custom AEAD's failure match ErrDecrypt.
func asDecryptErr(err error) error {
	if errors.Is(err, ErrDecrypt) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDecrypt, err)
}

// withScratch calls fn with a locked, zeroed scratch slot of n bytes
// (at most securebuf.MaxScratchSize), wiped and released when fn returns.
// When every slot is taken it waits for one (slots are held for
// microseconds) rather than put a key on the Go heap.
func (f *SessionFactory) withScratch(ctx context.Context, n int, fn func(buf []byte) error) error {
	wait := time.Microsecond
	for i := 0; ; i++ {
		called := false
		err := f.secrets.WithScratch(n, func(buf []byte) error {
			called = true
			return fn(buf)
		})
		if called || err == nil {
			return err
		}
		if !errors.Is(err, securebuf.ErrScratchFull) {
			if errors.Is(err, securebuf.ErrClosed) {
				return ErrClosed
			}
			return fmt.Errorf("envelope: failed to get scratch memory for a key: %w", err)
		}
		if i < 16 {
			runtime.Gosched()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, time.Millisecond)
	}
}
