package envelope

import (
	"context"
	"errors"
)

// KeyMeta names a key: its id and its creation time in Unix seconds.
type KeyMeta struct {
	ID      string `json:"KeyId"`
	Created int64  `json:"Created"`
}

// EnvelopeKeyRecord is a wrapped key as Asherah stores it in a metastore and
// in the Key field of a DataRowRecord. Its JSON form is Asherah's, field for
// field: Revoked is omitted when false, Key is standard padded base64 and
// ParentKeyMeta is omitted for system keys.
type EnvelopeKeyRecord struct {
	Revoked       bool     `json:"Revoked,omitempty"`
	ID            string   `json:"-"`
	Created       int64    `json:"Created"`
	EncryptedKey  []byte   `json:"Key"`
	ParentKeyMeta *KeyMeta `json:"ParentKeyMeta,omitempty"`
}

// DataRowRecord is one encrypted payload: the data row key wrapped by an
// intermediate key, and the payload encrypted by the data row key.
type DataRowRecord struct {
	Key  *EnvelopeKeyRecord
	Data []byte
}

// Metastore stores wrapped system and intermediate keys. Implementations
// must be safe for concurrent use.
type Metastore interface {
	// Load returns the record stored under (id, created), or ErrNotFound.
	Load(ctx context.Context, id string, created int64) (*EnvelopeKeyRecord, error)
	// LoadLatest returns the record with the greatest created time for id,
	// or ErrNotFound.
	LoadLatest(ctx context.Context, id string) (*EnvelopeKeyRecord, error)
	// Store inserts rec under (id, created) if no record is stored there
	// yet, and returns ErrKeyExists otherwise. Any other error means the
	// record may or may not have been stored.
	Store(ctx context.Context, id string, created int64, rec *EnvelopeKeyRecord) error
}

// KMS wraps and unwraps system keys under a master key. Implementations
// must be safe for concurrent use.
type KMS interface {
	EncryptKey(ctx context.Context, key []byte) ([]byte, error)
	DecryptKey(ctx context.Context, encrypted []byte) ([]byte, error)
}

// Sentinel errors of the Metastore contract.
var (
	// ErrNotFound is returned by Metastore.Load and LoadLatest when no
	// record exists. Sessions return it inside a *KeyError naming the key
	// when a key a record needs is not in the metastore; it is the one
	// "not found" of this package.
	ErrNotFound = errors.New("envelope: key not found in metastore")
	// ErrKeyExists is returned by Metastore.Store when a record with the
	// same id and created time already exists.
	ErrKeyExists = errors.New("envelope: key already exists in metastore")
)
