// Package kms is the static KMS of Asherah Go's pkg/kms on top of package
// envelope (see package appencryption of this tree). For AWS KMS use
// envelope/kms/awskms, which reads and writes Asherah's multi-region
// envelope: NewAWS(crypto, preferred, arnMap) becomes awskms.New(ctx,
// awskms.Spec{Regions: ...}) with the preferred region first.
package kms

import (
	"context"
	"errors"
	"reflect"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
)

// StaticKMS is Asherah's static KMS: a fixed 32-byte master key, for
// tests only. It wraps envelope/kms/statickms, which keeps the key in
// protected memory. It is safe for concurrent use.
type StaticKMS struct {
	k *statickms.KMS
}

var _ appencryption.KeyManagementService = (*StaticKMS)(nil)

// NewStatic returns a StaticKMS with key, which must be 32 bytes. crypto
// must be aead.NewAES256GCM() (or nil), the only AEAD Asherah has: system
// keys are wrapped with it.
func NewStatic(key string, crypto appencryption.AEAD) (*StaticKMS, error) {
	if crypto != nil && reflect.TypeOf(crypto) != reflect.TypeOf(envelope.NewAES256GCM()) {
		return nil, errors.New("kms: NewStatic supports only aead.NewAES256GCM()")
	}
	k, err := statickms.New([]byte(key))
	if err != nil {
		return nil, err
	}
	return &StaticKMS{k: k}, nil
}

// EncryptKey wraps a system key under the master key.
func (s *StaticKMS) EncryptKey(ctx context.Context, key []byte) ([]byte, error) {
	return s.k.EncryptKey(ctx, key)
}

// DecryptKey unwraps a system key wrapped by EncryptKey (or by Asherah with
// the same master key).
func (s *StaticKMS) DecryptKey(ctx context.Context, encrypted []byte) ([]byte, error) {
	return s.k.DecryptKey(ctx, encrypted)
}

// Close wipes the master key. Asherah's Close returns nothing; this one
// returns the error of statickms.KMS.Close.
func (s *StaticKMS) Close() error { return s.k.Close() }
