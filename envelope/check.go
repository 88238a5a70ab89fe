package envelope

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
)

// ErrCheck is wrapped by the error of Check when the KMS answers but
// gives back something else than it was given.
var ErrCheck = errors.New("envelope: KMS round trip returned other bytes")

// Check reports whether the metastore and the KMS answer, for health
// checks: it reads the latest system key row from the metastore (past the
// caches) and has the KMS unwrap it, wiping the result at once, which also
// proves that the KMS holds the master key of this metastore's keys. When
// no system key exists yet, it has the KMS wrap and unwrap a random
// 32-byte probe (in locked scratch memory) instead. It creates, stores
// and caches nothing. Its calls are timed like the factory's other
// backend calls. Bound it with ctx.
//
// It returns nil when both answered, or a *KeyError naming the system
// key and the failing call ("load latest", "decrypt (KMS)", ...). Check is
// safe for concurrent use.
func (f *SessionFactory) Check(ctx context.Context) error {
	if f.closed.Load() {
		return ErrClosed
	}
	rec, err := f.loadLatest(ctx, f.skID)
	switch {
	case errors.Is(err, ErrNotFound):
		return f.checkKMSRoundTrip(ctx)
	case err != nil:
		return keyErr("load latest", SystemKey, f.skID, 0, err)
	}
	raw, err := f.kmsDecrypt(ctx, rec.EncryptedKey)
	clear(raw)
	if err != nil {
		return keyErr("decrypt (KMS)", SystemKey, f.skID, rec.Created, err)
	}
	return nil
}

func (f *SessionFactory) checkKMSRoundTrip(ctx context.Context) error {
	return f.withScratch(ctx, AES256KeySize, func(probe []byte) error {
		rand.Read(probe)
		wrapped, err := f.kmsEncrypt(ctx, probe)
		if err != nil {
			return keyErr("encrypt (KMS)", SystemKey, f.skID, 0, err)
		}
		back, err := f.kmsDecrypt(ctx, wrapped)
		defer clear(back)
		if err != nil {
			return keyErr("decrypt (KMS)", SystemKey, f.skID, 0, err)
		}
		if subtle.ConstantTimeCompare(back, probe) != 1 {
			return keyErr("decrypt (KMS)", SystemKey, f.skID, 0, fmt.Errorf("%w (%d bytes)", ErrCheck, len(back)))
		}
		return nil
	})
}
