package stream

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
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
// before WithBytes returns. What must live on the Go heap is the expanded
// AES key schedule (and GHASH key) inside each payload cipher, one per
// epoch in use: aesgcm.New builds it (wiping the intermediate AES block),
// and close wipes every cipher the schedule still holds (a Writer or
// Reader wipes an epoch's cipher as soon as it is done with it), so that
// none outlives the stream in freed heap memory. The HMAC state used to
// compute the header MAC is dropped as soon as the MAC is computed. The
// schedule never closes the data key: its caller owns it.
//
// A wiped cipher must never seal or open a chunk: it would panic, or, with
// another standard library, encrypt under a zero key. So after close,
// aeadFor fails with ErrClosed, and close waits for what may still use a
// cipher: a ReaderAt's chunk operations hold use shared (see
// ReaderAt.open); Writer and Reader hand ciphers to their pipelines' jobs
// and call close only once the pipeline is stopped, and a job whose
// schedule is closed fails with ErrClosed before it touches its cipher
// (chunker.run).
type keySchedule struct {
	key  securebuf.Secret
	salt [SaltSize]byte

	use    sync.RWMutex // shared: a chunk operation in progress; exclusive: close
	closed atomic.Bool

	// sequential: the chunks are processed in order, fewer than 2^24 at a
	// time (a Writer's or Reader's pipeline queue holds at most
	// max(2 × 1024 workers, 1 MiB / 4 KiB) chunks), so once a chunk of
	// epoch e is dispatched, no chunk before epoch e-1 is in flight, and
	// the ciphers of those epochs can be wiped and dropped. A ReaderAt
	// reads in any order: it keeps every epoch's cipher it has made (at
	// most 256) until close.
	sequential bool

	mu      sync.Mutex
	aeads   map[uint32]cipher.AEAD // by epoch
	aead0   cipher.AEAD            // epoch 0, read without the lock
	closeMu sync.Once
}

// newKeySchedule prepares the schedule and derives epoch 0's AEAD.
// sequential is for a Writer or Reader (see keySchedule).
func newKeySchedule(key securebuf.Secret, salt []byte, sequential bool) (*keySchedule, error) {
	if key == nil {
		return nil, errKeySize
	}
	if key.Len() != KeySize {
		return nil, errKeySize
	}
	ks := &keySchedule{key: key, sequential: sequential, aeads: make(map[uint32]cipher.AEAD)}
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
		aead, err = aesgcm.New(k)
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
// first use, or ErrClosed once close has begun. It is safe for concurrent
// use; the caller must not use the AEAD after close (see keySchedule).
func (ks *keySchedule) aeadFor(idx uint64) (cipher.AEAD, error) {
	if ks.closed.Load() {
		return nil, ErrClosed
	}
	epoch := uint32(idx >> epochShift)
	if epoch == 0 {
		return ks.aead0, nil
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.closed.Load() {
		return nil, ErrClosed
	}
	if a, ok := ks.aeads[epoch]; ok {
		return a, nil
	}
	a, err := ks.derive(epoch)
	if err != nil {
		return nil, err
	}
	// A Writer or Reader keeps at most the previous and the current
	// epoch: no chunk of an earlier one is in flight (see keySchedule).
	if ks.sequential {
		for e, old := range ks.aeads {
			if e != 0 && e+1 < epoch {
				aesgcm.Wipe(old)
				delete(ks.aeads, e)
			}
		}
	}
	ks.aeads[epoch] = a
	return a, nil
}

// close wipes and drops the derived keys (not the data key, which the
// caller owns). It waits for the chunk operations that hold use; later
// calls of aeadFor fail with ErrClosed. It is idempotent.
func (ks *keySchedule) close() {
	ks.closeMu.Do(func() {
		ks.closed.Store(true)
		ks.use.Lock()
		defer ks.use.Unlock()
		ks.mu.Lock()
		defer ks.mu.Unlock()
		for _, a := range ks.aeads { // epoch 0's included
			aesgcm.Wipe(a)
		}
		clear(ks.aeads)
		ks.aead0 = nil
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
