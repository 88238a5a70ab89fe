// Package statickms is a KMS whose master key is a fixed 32-byte key held
// in protected memory: Asherah's static KMS, for tests, local files and
// migration. System keys are wrapped with AES-256-GCM in Asherah's blob
// layout (no JSON envelope), so a static master key shared with Asherah
// opens the same system keys.
//
// Anyone with the master key can unwrap every system key: keep it out of
// source code and logs, and use a real KMS in production.
package statickms

import (
	"context"
	"errors"
	"fmt"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// ErrKeySize is returned by New for a master key that is not 32 bytes.
var ErrKeySize = errors.New("statickms: master key must be exactly 32 bytes")

// KMS wraps and unwraps system keys with a static master key. It is safe
// for concurrent use. Close it when done.
type KMS struct {
	key     securebuf.Secret
	secrets *securebuf.Factory
	ownSecs bool
	aead    envelope.AEAD
}

var _ envelope.KMS = (*KMS)(nil)

// Option configures a KMS.
type Option func(*KMS) error

// WithSecretFactory keeps the master key in a secret made by sf (not closed
// by Close). By default New makes its own securebuf.Factory.
func WithSecretFactory(sf *securebuf.Factory) Option {
	return func(k *KMS) error {
		if sf == nil {
			return errors.New("statickms: WithSecretFactory(nil)")
		}
		k.secrets = sf
		return nil
	}
}

// New returns a KMS with masterKey, which must be exactly 32 bytes. The key
// is copied into protected memory and masterKey is wiped (zeroed), also
// when New fails after validating its length.
func New(masterKey []byte, opts ...Option) (*KMS, error) {
	if len(masterKey) != envelope.AES256KeySize {
		return nil, fmt.Errorf("%w (got %d)", ErrKeySize, len(masterKey))
	}
	k := &KMS{aead: envelope.NewAES256GCM()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(k); err != nil {
			clear(masterKey)
			return nil, err
		}
	}
	if k.secrets == nil {
		sf, err := securebuf.NewFactory()
		if err != nil {
			clear(masterKey)
			return nil, fmt.Errorf("statickms: %w", err)
		}
		k.secrets, k.ownSecs = sf, true
	}
	s, err := k.secrets.New(masterKey)
	if err != nil {
		clear(masterKey)
		k.closeFactory()
		return nil, fmt.Errorf("statickms: failed to protect the master key: %w", err)
	}
	k.key = s
	return k, nil
}

// EncryptKey wraps key under the master key (60 bytes for a 32-byte key).
func (k *KMS) EncryptKey(ctx context.Context, key []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := k.key.WithBytes(func(mk []byte) error {
		var err error
		out, err = k.aead.Encrypt(key, mk)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("statickms: failed to encrypt key: %w", err)
	}
	return out, nil
}

// DecryptKey unwraps a key wrapped by EncryptKey. It fails with an error
// wrapping envelope.ErrDecrypt when the blob was not made with this master
// key or was altered.
func (k *KMS) DecryptKey(ctx context.Context, encrypted []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []byte
	err := k.key.WithBytes(func(mk []byte) error {
		var err error
		out, err = k.aead.Decrypt(encrypted, mk)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("statickms: failed to decrypt key: %w", err)
	}
	return out, nil
}

// Close wipes and frees the master key (and the secret factory New made).
// Later calls fail with an error wrapping securebuf.ErrClosed. Close is
// idempotent.
func (k *KMS) Close() error {
	err := k.key.Close()
	if cerr := k.closeFactory(); err == nil {
		err = cerr
	}
	return err
}

func (k *KMS) closeFactory() error {
	if k.ownSecs {
		return k.secrets.Close()
	}
	return nil
}
