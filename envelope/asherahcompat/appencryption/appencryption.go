// Package appencryption is Asherah Go's appencryption API on top of
// package envelope, so that an Asherah Go program moves to enc-pipe by
// changing its import paths and nothing else:
//
//	github.com/godaddy/asherah/go/appencryption/...
//	github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/...
//
// which is one command over the source tree:
//
//	sed -i 's#github.com/godaddy/asherah/go/appencryption#github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption#' $(grep -rl godaddy/asherah --include='*.go' .)
//
// This package and its pkg/crypto/aead, pkg/kms and pkg/persistence
// mirror the names of Asherah's packages of the same paths that a program
// using the static or a custom KMS and the in-memory, SQL or a custom
// metastore calls. Everything else Asherah offers (the AWS KMS and
// DynamoDB plugins, securememory secret factories, go-metrics) is replaced
// by hand; docs/ASHERAH-COMPAT.md lists each change.
//
// Records, keys and metastore rows are Asherah's byte for byte, so a
// migrated program keeps reading its data and its metastore. The
// behaviour is package envelope's: see docs/ASHERAH-COMPAT.md for what
// differs (a revoked cached key stops being used, store errors are not
// taken for lost races, a stricter partition check, ...). The types are
// aliases of envelope's, so a program can move to package envelope one
// call at a time.
package appencryption

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// The types of Asherah's appencryption package, as aliases of envelope's.
type (
	// Config names the keys of a SessionFactory (Service, Product and
	// Policy, as in Asherah; envelope adds RegionSuffix).
	Config = envelope.Config
	// CryptoPolicy and PolicyOption are Asherah's, field for field.
	CryptoPolicy = envelope.CryptoPolicy
	PolicyOption = envelope.PolicyOption
	// DataRowRecord, EnvelopeKeyRecord and KeyMeta have Asherah's JSON.
	DataRowRecord     = envelope.DataRowRecord
	EnvelopeKeyRecord = envelope.EnvelopeKeyRecord
	KeyMeta           = envelope.KeyMeta
	// AEAD is Asherah's crypto interface.
	AEAD = envelope.AEAD
	// KeyManagementService is Asherah's name for envelope.KMS (the same
	// two methods).
	KeyManagementService = envelope.KMS
	// Loader and Storer are the interfaces of Session.Load and Store.
	Loader = envelope.Loader
	Storer = envelope.Storer
	// Session and SessionFactory are envelope's; their methods have
	// Asherah's signatures (GetSession, Encrypt, Decrypt, Store, Load,
	// Close). Asherah's exported fields of SessionFactory do not exist.
	Session        = envelope.Session
	SessionFactory = envelope.SessionFactory
	// FactoryOption configures NewSessionFactory.
	FactoryOption = envelope.FactoryOption
)

// Metastore is Asherah's metastore interface: Load and LoadLatest return
// a nil record, not an error, when there is none, and Store reports a
// duplicate (id, created) as false. NewSessionFactory adapts it to
// envelope.Metastore (see EnvelopeMetastore).
type Metastore interface {
	// Load returns the key (id, created), or nil when there is none.
	Load(ctx context.Context, id string, created int64) (*EnvelopeKeyRecord, error)
	// LoadLatest returns the newest key of id, or nil when there is none.
	LoadLatest(ctx context.Context, id string) (*EnvelopeKeyRecord, error)
	// Store inserts the key unless (id, created) exists, and reports
	// whether it did.
	Store(ctx context.Context, id string, created int64, envelope *EnvelopeKeyRecord) (bool, error)
}

// AES256KeySize is the size of every key of the hierarchy.
const AES256KeySize int = envelope.AES256KeySize

// Defaults of NewCryptoPolicy, as in Asherah.
const (
	DefaultExpireAfter                = envelope.DefaultExpireAfter
	DefaultRevokedCheckInterval       = envelope.DefaultRevokedCheckInterval
	DefaultCreateDatePrecision        = envelope.DefaultCreateDatePrecision
	DefaultKeyCacheMaxSize            = envelope.DefaultKeyCacheMaxSize
	DefaultSessionCacheMaxSize        = envelope.DefaultSessionCacheMaxSize
	DefaultSessionCacheDuration       = envelope.DefaultSessionCacheDuration
	DefaultSessionCacheEvictionPolicy = envelope.DefaultSessionCacheEvictionPolicy
)

// NewCryptoPolicy returns Asherah's default policy changed by opts.
func NewCryptoPolicy(opts ...PolicyOption) *CryptoPolicy { return envelope.NewCryptoPolicy(opts...) }

// WithRevokeCheckInterval sets RevokeCheckInterval.
func WithRevokeCheckInterval(d time.Duration) PolicyOption {
	return envelope.WithRevokeCheckInterval(d)
}

// WithExpireAfterDuration sets ExpireKeyAfter.
func WithExpireAfterDuration(d time.Duration) PolicyOption {
	return envelope.WithExpireAfterDuration(d)
}

// WithNoCache switches off the system and intermediate key caches.
func WithNoCache() PolicyOption { return envelope.WithNoCache() }

// WithSharedIntermediateKeyCache makes the sessions of a factory share one
// intermediate key cache of capacity keys.
func WithSharedIntermediateKeyCache(capacity int) PolicyOption {
	return envelope.WithSharedIntermediateKeyCache(capacity)
}

// WithSessionCache switches the session cache on.
func WithSessionCache() PolicyOption { return envelope.WithSessionCache() }

// WithSessionCacheMaxSize sets SessionCacheMaxSize.
func WithSessionCacheMaxSize(size int) PolicyOption { return envelope.WithSessionCacheMaxSize(size) }

// WithSessionCacheDuration sets SessionCacheDuration.
func WithSessionCacheDuration(d time.Duration) PolicyOption {
	return envelope.WithSessionCacheDuration(d)
}

// WithSecretFactory keeps the factory's keys in secrets of f. Asherah's
// takes a securememory.SecretFactory (memguard or protectedmemory); here
// it is a *securebuf.Factory, and a program that passed one changes that
// call.
func WithSecretFactory(f *securebuf.Factory) FactoryOption { return envelope.WithSecretFactory(f) }

// WithMetrics exists for source compatibility and does nothing: there is
// no global metrics registry to enable or clear (Asherah's
// WithMetrics(false) unregisters every metric of go-metrics' default
// registry). Use envelope.WithMetrics to receive timings and counters.
func WithMetrics(enabled bool) FactoryOption { return nil }

// NewSessionFactory returns a factory for the keys of config, with store
// adapted by EnvelopeMetastore. Like Asherah's it returns no error, and
// like Asherah's (which panics on an unknown eviction policy) it panics
// on a configuration envelope.NewSessionFactory refuses, with that
// error, which matches envelope.ErrInvalidConfig: a nil config, store or
// KMS, an empty Service or Product (which Asherah accepts), an unknown
// eviction policy. Call envelope.NewSessionFactory to get the error
// instead.
func NewSessionFactory(config *Config, store Metastore, kms KeyManagementService, crypto AEAD, opts ...FactoryOption) *SessionFactory {
	f, err := envelope.NewSessionFactory(config, EnvelopeMetastore(store), kms, crypto, opts...)
	if err != nil {
		panic(fmt.Errorf("appencryption: NewSessionFactory: %w", err))
	}
	return f
}

// EnvelopeMetastore returns m as an envelope.Metastore. A metastore of
// package persistence (or any with an EnvelopeMetastore method) gives its
// envelope store itself. Any other is adapted:
//
//   - a nil record from Load or LoadLatest becomes envelope.ErrNotFound;
//   - Store's false with a nil error becomes envelope.ErrKeyExists;
//   - Store's false with an error (Asherah's SQL metastore reports
//     duplicates so, like every other failure) becomes
//     envelope.ErrKeyExists, joined with that error, only if the row
//     (id, created) can then be loaded; otherwise the error is returned
//     as it is, never taken for a lost creation race;
//   - a call with a context already done fails with the context's error;
//   - GetRegionSuffix is kept when m has it.
//
// It returns nil for a nil m.
func EnvelopeMetastore(m Metastore) envelope.Metastore {
	if m == nil {
		return nil
	}
	if n, ok := m.(interface{ EnvelopeMetastore() envelope.Metastore }); ok {
		return n.EnvelopeMetastore()
	}
	a := &adapted{m: m}
	if rs, ok := m.(envelope.RegionSuffixer); ok {
		return &adaptedSuffixed{adapted: a, rs: rs}
	}
	return a
}

type adapted struct{ m Metastore }

type adaptedSuffixed struct {
	*adapted
	rs envelope.RegionSuffixer
}

func (a *adaptedSuffixed) GetRegionSuffix() string { return a.rs.GetRegionSuffix() }

var (
	_ envelope.Metastore      = (*adapted)(nil)
	_ envelope.RegionSuffixer = (*adaptedSuffixed)(nil)
)

func (a *adapted) Load(ctx context.Context, id string, created int64) (*EnvelopeKeyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := a.m.Load(ctx, id, created)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("appencryption: %s (created %d): %w", id, created, envelope.ErrNotFound)
	}
	return rec, nil
}

func (a *adapted) LoadLatest(ctx context.Context, id string) (*EnvelopeKeyRecord, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rec, err := a.m.LoadLatest(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("appencryption: %s: %w", id, envelope.ErrNotFound)
	}
	return rec, nil
}

func (a *adapted) Store(ctx context.Context, id string, created int64, rec *EnvelopeKeyRecord) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ok, err := a.m.Store(ctx, id, created, rec)
	switch {
	case ok:
		return nil
	case err == nil:
		return fmt.Errorf("appencryption: %s (created %d): %w", id, created, envelope.ErrKeyExists)
	}
	// Asherah's SQL metastore cannot tell a duplicate from other failures:
	// a duplicate is one whose row is there now.
	if got, lerr := a.m.Load(ctx, id, created); lerr == nil && got != nil {
		return errors.Join(fmt.Errorf("appencryption: %s (created %d): %w", id, created, envelope.ErrKeyExists), err)
	}
	return err
}
