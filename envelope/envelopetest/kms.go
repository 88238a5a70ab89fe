package envelopetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// TestKMS runs the KMS conformance suite. newKMS returns the KMS under
// test; it is called once per subtest and may return the same KMS each
// time. The suite checks:
//
//   - DecryptKey(EncryptKey(k)) == k for 32-byte keys, and EncryptKey
//     leaves its input unchanged (callers wipe it afterwards);
//   - the wrapped form does not contain the key, and wrapping the same key
//     twice gives different results (randomised encryption);
//   - an altered wrapped key (every byte position tried in turn for short
//     blobs, a sample for long ones) never unwraps to a different key: it
//     fails (returning no key) or, where the byte is metadata the KMS does
//     not depend on (such as an ARN in a JSON envelope), gives the original
//     key; truncated, empty and foreign input fails;
//   - concurrent use from many goroutines;
//   - calls with a cancelled context fail with an error matching
//     context.Canceled.
func TestKMS(t *testing.T, newKMS func(t *testing.T) envelope.KMS) {
	t.Helper()
	t.Run("RoundTrip", func(t *testing.T) { testKMSRoundTrip(t, newKMS(t)) })
	t.Run("Tampered", func(t *testing.T) { testKMSTampered(t, newKMS(t)) })
	t.Run("Concurrent", func(t *testing.T) { testKMSConcurrent(t, newKMS(t)) })
	t.Run("ContextCanceled", func(t *testing.T) { testKMSCanceled(t, newKMS(t)) })
}

func testKMSRoundTrip(t *testing.T, k envelope.KMS) {
	ctx := context.Background()
	key := randomBytes(32)
	orig := bytes.Clone(key)
	w1, err := k.EncryptKey(ctx, key)
	if err != nil {
		t.Fatalf("EncryptKey: %v", err)
	}
	if !bytes.Equal(key, orig) {
		t.Fatal("EncryptKey changed its input")
	}
	if bytes.Contains(w1, orig) {
		t.Fatal("the wrapped key contains the key in the clear")
	}
	w2, err := k.EncryptKey(ctx, key)
	if err != nil {
		t.Fatalf("EncryptKey: %v", err)
	}
	if bytes.Equal(w1, w2) {
		t.Error("wrapping one key twice gave identical output")
	}
	for i, w := range [][]byte{w1, w2} {
		got, err := k.DecryptKey(ctx, w)
		if err != nil {
			t.Fatalf("DecryptKey %d: %v", i, err)
		}
		if !bytes.Equal(got, orig) {
			t.Fatalf("DecryptKey %d returned a different key", i)
		}
	}
}

func testKMSTampered(t *testing.T, k envelope.KMS) {
	ctx := context.Background()
	key := randomBytes(32)
	w, err := k.EncryptKey(ctx, key)
	if err != nil {
		t.Fatalf("EncryptKey: %v", err)
	}
	positions := make([]int, 0, len(w))
	if len(w) <= 256 {
		for i := range w {
			positions = append(positions, i)
		}
	} else {
		for i := 0; i < len(w); i += len(w)/64 + 1 {
			positions = append(positions, i)
		}
		positions = append(positions, len(w)-1)
	}
	for _, i := range positions {
		bad := bytes.Clone(w)
		bad[i] ^= 0x01
		got, err := k.DecryptKey(ctx, bad)
		switch {
		case err != nil && got != nil:
			t.Errorf("DecryptKey with byte %d flipped returned %d bytes together with error %v", i, len(got), err)
		case err == nil && !bytes.Equal(got, key):
			t.Errorf("DecryptKey with byte %d flipped returned a different key", i)
		}
	}
	for name, bad := range map[string][]byte{
		"truncated": w[:len(w)-1],
		"empty":     {},
		"short":     w[:len(w)/2],
		"foreign":   randomBytes(len(w)),
	} {
		if got, err := k.DecryptKey(ctx, bad); err == nil || got != nil {
			t.Errorf("DecryptKey(%s) = %d bytes, %v; want nil and an error", name, len(got), err)
		}
	}
}

func testKMSConcurrent(t *testing.T, k envelope.KMS) {
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for range 8 {
				key := randomBytes(32)
				orig := bytes.Clone(key)
				w, err := k.EncryptKey(ctx, key)
				if err != nil {
					errs <- err
					return
				}
				got, err := k.DecryptKey(ctx, w)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, orig) {
					errs <- errors.New("concurrent round trip returned a different key")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testKMSCanceled(t *testing.T, k envelope.KMS) {
	w, err := k.EncryptKey(context.Background(), randomBytes(32))
	if err != nil {
		t.Fatalf("EncryptKey: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.EncryptKey(ctx, randomBytes(32)); !errors.Is(err, context.Canceled) {
		t.Errorf("EncryptKey with a cancelled context = %v, want context.Canceled", err)
	}
	if got, err := k.DecryptKey(ctx, w); !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("DecryptKey with a cancelled context = %d bytes, %v; want context.Canceled", len(got), err)
	}
}
