package envelope

import (
	"crypto/cipher"
	"crypto/rand"
	"fmt"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
)

// AEAD encrypts and decrypts with a raw key; it is Asherah's
// crypto interface, used at every level of the hierarchy. Implementations
// must be safe for concurrent use and must not retain key.
type AEAD interface {
	// Encrypt returns a new blob with data encrypted and authenticated
	// under key.
	Encrypt(data, key []byte) ([]byte, error)
	// Decrypt returns the plaintext of blob, or an error wrapping
	// ErrDecrypt when authentication fails.
	Decrypt(blob, key []byte) ([]byte, error)
}

// AES-256-GCM parameters of the Asherah blob layout.
const (
	// AES256KeySize is the size of every key of the hierarchy.
	AES256KeySize = 32
	// GCMNonceSize is the size of the random nonce appended to each blob.
	GCMNonceSize = 12
	// GCMTagSize is the size of the GCM authentication tag.
	GCMTagSize = 16
	// Overhead is how much longer a blob is than its plaintext: tag and
	// nonce, 28 bytes.
	Overhead = GCMTagSize + GCMNonceSize
	// MaxPlaintextSize is the largest payload one AES-GCM message holds.
	MaxPlaintextSize = ((1 << 32) - 2) * 16
)

// NewAES256GCM returns Asherah's AEAD: AES-256-GCM with a random 12-byte
// nonce, no associated data, and the blob laid out as
//
//	ciphertext || tag (16 bytes) || nonce (12 bytes)
//
// so a blob is always 28 bytes longer than its plaintext. Keys must be 32
// bytes. The expanded AES key schedule is built per call on the Go heap and
// wiped before the call returns.
func NewAES256GCM() AEAD { return aes256GCM{} }

type aes256GCM struct{}

var _ AEAD = aes256GCM{}

func (aes256GCM) Encrypt(data, key []byte) ([]byte, error) { return sealAppend(nil, data, key) }

func (aes256GCM) Decrypt(blob, key []byte) ([]byte, error) { return openAppend(nil, blob, key) }

// newGCM returns AES-256-GCM for key; the caller wipes it with
// aesgcm.Wipe when done.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != AES256KeySize {
		return nil, fmt.Errorf("%w (got %d)", ErrInvalidKey, len(key))
	}
	return aesgcm.New(key)
}

// sealAppend appends the blob of data under key, with a random nonce, to
// dst.
func sealAppend(dst, data, key []byte) ([]byte, error) {
	return sealAppendNonce(dst, data, key, nil)
}

// sealAppendNonce is sealAppend with the nonce given by the caller (12
// bytes from crypto/rand), or a random one when nonce is nil. The cipher
// built for key is wiped before it returns.
func sealAppendNonce(dst, data, key, nonce []byte) ([]byte, error) {
	if uint64(len(data)) > MaxPlaintextSize {
		return nil, ErrDataTooLarge
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	defer aesgcm.Wipe(gcm)
	return sealWith(gcm, dst, data, nonce), nil
}

// sealWith appends the blob of data under gcm to dst, with nonce (nil for
// a random one). len(data) must be at most MaxPlaintextSize.
func sealWith(gcm cipher.AEAD, dst, data, nonce []byte) []byte {
	n := len(dst)
	total := n + len(data) + Overhead
	if cap(dst) < total {
		grown := make([]byte, n, total)
		copy(grown, dst)
		dst = grown
	}
	out := dst[:total]
	tail := out[total-GCMNonceSize:]
	if nonce == nil {
		rand.Read(tail)
	} else {
		copy(tail, nonce)
	}
	gcm.Seal(out[n:n], tail, data, nil)
	return out
}

// openAppend appends the plaintext of blob under key to dst. When dst has
// the capacity, the plaintext is written in place (used to unwrap keys into
// locked scratch memory). The cipher built for key is wiped before it
// returns.
func openAppend(dst, blob, key []byte) ([]byte, error) {
	if len(blob) < Overhead {
		return nil, fmt.Errorf("%w: blob of %d bytes is shorter than tag and nonce", ErrDecrypt, len(blob))
	}
	gcm, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	defer aesgcm.Wipe(gcm)
	return openWith(gcm, dst, blob)
}

// openWith appends the plaintext of blob under gcm to dst.
func openWith(gcm cipher.AEAD, dst, blob []byte) ([]byte, error) {
	if len(blob) < Overhead {
		return nil, fmt.Errorf("%w: blob of %d bytes is shorter than tag and nonce", ErrDecrypt, len(blob))
	}
	split := len(blob) - GCMNonceSize
	out, err := gcm.Open(dst, blob[split:], blob[:split], nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
