package envelope

import (
	"errors"
	"fmt"
)

// Errors returned by sessions and session factories. Test for them with
// errors.Is; the metastore sentinels ErrNotFound and ErrKeyExists, which
// sessions return too (inside a *KeyError), are in types.go.
var (
	// ErrInvalidRecord is returned by Decrypt and OpenDataKey for a record
	// that lacks its Key, the key's ParentKeyMeta, or its data.
	ErrInvalidRecord = errors.New("envelope: invalid data row record")
	// ErrPartitionMismatch is returned by Decrypt and OpenDataKey when the
	// record was not written under this session's partition (its
	// intermediate key id is not the session's; see Session.Decrypt).
	ErrPartitionMismatch = errors.New("envelope: record does not belong to this session's partition")
	// ErrDecrypt is returned when AES-GCM authentication fails: the
	// payload, the wrapped data key or a stored key was altered, or was
	// encrypted under another key.
	ErrDecrypt = errors.New("envelope: message authentication failed")
	// ErrClosed is returned by the methods of a closed Session or
	// SessionFactory.
	ErrClosed = errors.New("envelope: session or session factory is closed")
	// ErrInvalidConfig is returned by NewSessionFactory for a bad Config,
	// CryptoPolicy or option, such as an unknown eviction policy.
	ErrInvalidConfig = errors.New("envelope: invalid configuration")
	// ErrEmptyPartition is returned by GetSession for an empty partition id.
	ErrEmptyPartition = errors.New("envelope: partition id cannot be empty")
	// ErrDataTooLarge is returned by Encrypt for a payload larger than one
	// AES-GCM message can hold ((2^32-2)*16 bytes).
	ErrDataTooLarge = errors.New("envelope: data too large for AES-GCM")
	// ErrInvalidKey is returned by the AEAD for a key that is not 32 bytes.
	ErrInvalidKey = errors.New("envelope: invalid key size, must be 32 bytes")
	// ErrNotSupported is returned by the key administration methods of
	// SessionFactory when the metastore lacks the optional interface they
	// need (Revoker, Lister or Deleter).
	ErrNotSupported = errors.New("envelope: operation not supported by the metastore")
)

// KeyKind tells which level of the hierarchy a key belongs to.
type KeyKind string

// Key kinds used in KeyError.
const (
	SystemKey       KeyKind = "system key"
	IntermediateKey KeyKind = "intermediate key"
)

// KeyError reports a failure to load, create, unwrap or store a system or
// intermediate key. It names the key (never its bytes) and wraps the cause:
// errors.Is(err, ErrNotFound) holds when the key is absent from the
// metastore, errors.Is(err, ErrDecrypt) when it did not unwrap, and the
// metastore's or KMS's own error otherwise.
type KeyError struct {
	Op      string  // what failed: "load", "load latest", "store", "unwrap", "create", ...
	Kind    KeyKind // SystemKey or IntermediateKey
	ID      string  // the key id
	Created int64   // the key's created time, 0 when not known
	Err     error   // the cause
}

// Error names the operation, the key and the cause; never key material.
func (e *KeyError) Error() string {
	if e.Created != 0 {
		return fmt.Sprintf("envelope: failed to %s %s %q (created %d): %v", e.Op, e.Kind, e.ID, e.Created, e.Err)
	}
	return fmt.Sprintf("envelope: failed to %s %s %q: %v", e.Op, e.Kind, e.ID, e.Err)
}

// Unwrap returns the cause.
func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(op string, kind KeyKind, id string, created int64, err error) error {
	return &KeyError{Op: op, Kind: kind, ID: id, Created: created, Err: err}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
