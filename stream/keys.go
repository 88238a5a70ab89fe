package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// HKDF info strings of the key schedule (docs/FORMAT.md, "Key schedule").
const (
	infoHeader  = "enc-pipe v1 header"
	infoPayload = "enc-pipe v1 payload"
)

// keySchedule derives and caches the keys of one stream.
//
// The data key stays in protected memory: every derivation runs inside
// key.WithBytes, and the intermediate PRK and subkey bytes are wiped
// before WithBytes returns. What cannot be wiped is the expanded AES key
// schedule inside each cipher.AEAD: crypto/aes copies the key into a Go
// heap object with no way to clear it, so one per epoch in use lives on
// the heap until the stream is closed and the garbage collector reclaims
// it. The HMAC state used to compute the header MAC is dropped as soon as
// the MAC is computed. The schedule never closes the data key: its caller
// owns it.
type keySchedule struct {
	key  securebuf.Secret
	salt [SaltSize]byte

	mu      sync.Mutex
	aeads   map[uint32]cipher.AEAD // by epoch
	aead0   cipher.AEAD            // epoch 0, read without the lock
	closed  bool
	closeMu sync.Once
}

// newKeySchedule prepares the schedule and derives epoch 0's AEAD.
func newKeySchedule(key securebuf.Secret, salt []byte) (*keySchedule, error) {
	if key == nil {
		return nil, errKeySize
	}
	if key.Len() != KeySize {
		return nil, errKeySize
	}
	ks := &keySchedule{key: key, aeads: make(map[uint32]cipher.AEAD)}
	copy(ks.salt[:], salt)
	a, err := ks.derive(0)
	if err != nil {
		return nil, err
	}
	ks.aead0 = a
	ks.aeads[0] = a
	return ks, nil
}

// withPRK runs f with PRK = HKDF-Extract(salt, DEK) and wipes the PRK.
func (ks *keySchedule) withPRK(f func(prk []byte) error) error {
	return ks.key.WithBytes(func(dek []byte) error {
		if len(dek) != KeySize {
			return errKeySize
		}
		prk, err := hkdf.Extract(sha256.New, dek, ks.salt[:])
		if err != nil {
			return err
		}
		defer clear(prk)
		return f(prk)
	})
}

func payloadInfo(epoch uint32) string {
	var b [len(infoPayload) + 5]byte
	copy(b[:], infoPayload)
	b[len(infoPayload)] = SuiteAES256GCMHKDFSHA256
	binary.BigEndian.PutUint32(b[len(infoPayload)+1:], epoch)
	return string(b[:])
}

// derive returns the AEAD of K_payload[epoch].
func (ks *keySchedule) derive(epoch uint32) (cipher.AEAD, error) {
	var aead cipher.AEAD
	err := ks.withPRK(func(prk []byte) error {
		k, err := hkdf.Expand(sha256.New, prk, payloadInfo(epoch), 32)
		if err != nil {
			return err
		}
		defer clear(k)
		block, err := aes.NewCipher(k)
		if err != nil {
			return err
		}
		aead, err = cipher.NewGCM(block)
		return err
	})
	return aead, err
}

// headerMAC computes HMAC-SHA-256(K_hdr, b).
func (ks *keySchedule) headerMAC(b []byte) ([]byte, error) {
	var sum []byte
	err := ks.withPRK(func(prk []byte) error {
		k, err := hkdf.Expand(sha256.New, prk, infoHeader, 32)
		if err != nil {
			return err
		}
		defer clear(k)
		m := hmac.New(sha256.New, k)
		m.Write(b)
		sum = m.Sum(nil)
		return nil
	})
	return sum, err
}

// verifyHeader checks h's MAC in constant time.
func (ks *keySchedule) verifyHeader(h *Header) error {
	sum, err := ks.headerMAC(h.raw[:len(h.raw)-MACSize])
	if err != nil {
		return err
	}
	if !hmac.Equal(sum, h.mac()) {
		return ErrAuth
	}
	return nil
}

// aeadFor returns the AEAD for chunk idx, deriving its epoch's key on
// first use. It is safe for concurrent use.
func (ks *keySchedule) aeadFor(idx uint64) (cipher.AEAD, error) {
	epoch := uint32(idx >> epochShift)
	if epoch == 0 {
		return ks.aead0, nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.closed {
		return nil, ErrClosed
	}
	if a, ok := ks.aeads[epoch]; ok {
		return a, nil
	}
	a, err := ks.derive(epoch)
	if err != nil {
		return nil, err
	}
	// Keep at most the previous and the current epoch: streams move
	// forward, and a ReaderAt re-derives on demand.
	for e := range ks.aeads {
		if e != 0 && e+1 < epoch {
			delete(ks.aeads, e)
		}
	}
	ks.aeads[epoch] = a
	return a, nil
}

// close drops the derived keys (not the data key, which the caller owns).
func (ks *keySchedule) close() {
	ks.closeMu.Do(func() {
		ks.mu.Lock()
		ks.closed = true
		clear(ks.aeads)
		ks.mu.Unlock()
	})
}

// errKeySize is returned for a data key that is not KeySize bytes.
var errKeySize = fmt.Errorf("%w: the data key must be %d bytes", ErrInvalidArgument, KeySize)

// nonce writes the STREAM nonce of chunk idx: the 11-byte big-endian index
// followed by the last-chunk flag.
func nonce(n *[12]byte, idx uint64, last bool) {
	n[0], n[1], n[2] = 0, 0, 0
	binary.BigEndian.PutUint64(n[3:11], idx)
	if last {
		n[11] = 1
	} else {
		n[11] = 0
	}
}
