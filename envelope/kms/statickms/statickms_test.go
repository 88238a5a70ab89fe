package statickms_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

func newKMS(t *testing.T) *statickms.KMS {
	t.Helper()
	k, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func TestConformance(t *testing.T) {
	envelopetest.TestKMS(t, func(t *testing.T) envelope.KMS { return newKMS(t) })
}

func TestKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		key := bytes.Repeat([]byte{7}, n)
		if _, err := statickms.New(key); !errors.Is(err, statickms.ErrKeySize) {
			t.Errorf("New(%d bytes) = %v, want ErrKeySize", n, err)
		}
	}
}

func TestMasterKeyWiped(t *testing.T) {
	key := []byte("thisIsAStaticMasterKeyForTesting")
	k, err := statickms.New(key)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !bytes.Equal(key, make([]byte, 32)) {
		t.Errorf("New left the caller's master key in place: %q", key)
	}
}

// Asherah's static KMS with the same master key wraps the system keys of
// the conformance vectors; this one must unwrap them.
func TestAsherahWrappedKey(t *testing.T) {
	k := newKMS(t)
	// The SK record of _SK_svc_prod created 1795749120 in
	// testdata/asherah-vectors/metastore.json.
	const wrapped = "I3x7jDXWVIX5OErnIVJaXHUYDCAjZS8hqDtAQN6vDhesd7nCUE0nMMnHBXRy3N5HDdb44tskASj1/hbk"
	blob := mustB64(t, wrapped)
	sk, err := k.DecryptKey(context.Background(), blob)
	if err != nil {
		t.Fatalf("DecryptKey of an Asherah-wrapped system key: %v", err)
	}
	if len(sk) != 32 {
		t.Fatalf("system key has %d bytes, want 32", len(sk))
	}
}

// Every single-bit change of the blob must fail: the static KMS has no
// metadata outside the authenticated blob.
func TestEveryFlipFails(t *testing.T) {
	k := newKMS(t)
	w, err := k.EncryptKey(context.Background(), bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 60 {
		t.Fatalf("wrapped key has %d bytes, want 60", len(w))
	}
	for i := range w {
		for bit := range 8 {
			bad := bytes.Clone(w)
			bad[i] ^= 1 << bit
			if got, err := k.DecryptKey(context.Background(), bad); err == nil || got != nil {
				t.Fatalf("byte %d bit %d flipped: DecryptKey = %d bytes, %v", i, bit, len(got), err)
			} else if !errors.Is(err, envelope.ErrDecrypt) {
				t.Fatalf("byte %d bit %d flipped: error %v does not match ErrDecrypt", i, bit, err)
			}
		}
	}
}

func TestClosed(t *testing.T) {
	k, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Fatal(err)
	}
	if err := k.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := k.EncryptKey(context.Background(), make([]byte, 32)); !errors.Is(err, securebuf.ErrClosed) {
		t.Errorf("EncryptKey after Close = %v, want securebuf.ErrClosed", err)
	}
}
