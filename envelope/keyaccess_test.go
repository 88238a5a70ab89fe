package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

var keyAccessModes = []envelope.KeyAccess{envelope.KeyAccessCached, envelope.KeyAccessStrict}

func TestKeyAccessOption(t *testing.T) {
	cfg := &envelope.Config{Service: "svc", Product: "prod"}
	if got := newFactory(t, cfg, memstore.New()).KeyAccess(); got != envelope.KeyAccessCached {
		t.Errorf("default KeyAccess = %v, want cached", got)
	}
	for _, m := range keyAccessModes {
		if got := newFactory(t, cfg, memstore.New(), envelope.WithKeyAccess(m)).KeyAccess(); got != m {
			t.Errorf("WithKeyAccess(%v): KeyAccess = %v", m, got)
		}
		parsed, err := envelope.ParseKeyAccess(m.String())
		if err != nil || parsed != m {
			t.Errorf("ParseKeyAccess(%q) = %v, %v", m.String(), parsed, err)
		}
	}
	if a, err := envelope.ParseKeyAccess("STRICT"); err != nil || a != envelope.KeyAccessStrict {
		t.Errorf("ParseKeyAccess is case-sensitive: %v, %v", a, err)
	}
	if _, err := envelope.ParseKeyAccess("lazy"); !errors.Is(err, envelope.ErrInvalidConfig) {
		t.Errorf("ParseKeyAccess(\"lazy\") = %v, want ErrInvalidConfig", err)
	}
	if _, err := envelope.NewSessionFactory(cfg, memstore.New(), newStaticKMS(t), nil, envelope.WithKeyAccess(envelope.KeyAccess(7))); !errors.Is(err, envelope.ErrInvalidConfig) {
		t.Errorf("WithKeyAccess(7) = %v, want ErrInvalidConfig", err)
	}
	// A custom AEAD takes raw keys: the factory uses them strictly.
	f, err := envelope.NewSessionFactory(cfg, memstore.New(), newStaticKMS(t), customAEAD{envelope.NewAES256GCM()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.KeyAccess() != envelope.KeyAccessStrict {
		t.Errorf("with a custom AEAD KeyAccess = %v, want strict", f.KeyAccess())
	}
}

// customAEAD hides the built-in AEAD's type.
type customAEAD struct{ envelope.AEAD }

// opensPerRecord runs n of each record operation on a warm session and
// returns how often a key's secret was opened meanwhile.
func opensPerRecord(t *testing.T, mode envelope.KeyAccess, n int) int64 {
	t.Helper()
	m := metrics.NewMemory()
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New(),
		envelope.WithMetrics(m), envelope.WithKeyAccess(mode))
	s := getSession(t, f, "p")
	ctx := context.Background()
	drr, p := encrypt(t, s, "warm up")
	mustDecrypt(t, s, drr, p)
	opens := func() int64 { return m.Value(envelope.MetricKeyOpened) }
	before := opens()
	for i := range n {
		drr, p := encrypt(t, s, fmt.Sprint("record ", i))
		mustDecrypt(t, s, drr, p)
		k, rec, err := s.NewDataKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := s.OpenDataKey(ctx, rec)
		if err != nil {
			t.Fatal(err)
		}
		k.Close()
		k2.Close()
	}
	return opens() - before
}

// With the cached cipher, warm records never open a key's secret (no
// mprotect per record); strictly, every record operation opens the
// intermediate key once.
func TestKeyAccessOpensPerRecord(t *testing.T) {
	const n = 25
	const opsPerRound = 4 // Encrypt, Decrypt, NewDataKey, OpenDataKey
	if got := opensPerRecord(t, envelope.KeyAccessCached, n); got != 0 {
		t.Errorf("cached: %d key secrets opened by %d warm record operations, want 0", got, n*opsPerRound)
	}
	if got := opensPerRecord(t, envelope.KeyAccessStrict, n); got != n*opsPerRound {
		t.Errorf("strict: %d key secrets opened by %d warm record operations, want one each", got, n*opsPerRound)
	}
}

// Records and data keys written in one mode open in the other: the modes
// differ only in how the key is held.
func TestKeyAccessModesInteroperate(t *testing.T) {
	store := memstore.New()
	cfg := &envelope.Config{Service: "svc", Product: "prod"}
	ctx := context.Background()
	for _, from := range keyAccessModes {
		for _, to := range keyAccessModes {
			t.Run(from.String()+"->"+to.String(), func(t *testing.T) {
				w := getSession(t, newFactory(t, cfg, store, envelope.WithKeyAccess(from)), "p")
				r := getSession(t, newFactory(t, cfg, store, envelope.WithKeyAccess(to)), "p")
				drr, p := encrypt(t, w, "payload "+from.String())
				mustDecrypt(t, r, drr, p)
				k, rec, err := w.NewDataKey(ctx)
				if err != nil {
					t.Fatal(err)
				}
				defer k.Close()
				k2, err := r.OpenDataKey(ctx, rec)
				if err != nil {
					t.Fatal(err)
				}
				defer k2.Close()
				if eq, err := secretsEqual(k, k2); err != nil || !eq {
					t.Fatalf("the data key opened in %v mode differs from the one made in %v mode (%v)", to, from, err)
				}
				// Tampering is refused the same way in both.
				bad := *drr
				bad.Data = bytes.Clone(drr.Data)
				bad.Data[0] ^= 1
				if _, err := r.Decrypt(ctx, bad); !errors.Is(err, envelope.ErrDecrypt) {
					t.Fatalf("a modified record: %v, want ErrDecrypt", err)
				}
			})
		}
	}
}

// A revoked intermediate key keeps decrypting in the cached mode, but
// without a cached cipher: its secret is opened per record from then on,
// while records under the replacement key need none.
func TestRevokedKeyDecryptsWithoutCachedCipher(t *testing.T) {
	m := metrics.NewMemory()
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), envelope.WithMetrics(m))
	s := getSession(t, f, "p")
	ctx := context.Background()
	old, p := encrypt(t, s, "under the old key")
	if err := f.RevokeKey(ctx, old.Key.ParentKeyMeta.ID, old.Key.ParentKeyMeta.Created); err != nil {
		t.Fatal(err)
	}
	opens := func() int64 { return m.Value(envelope.MetricKeyOpened) }
	mustDecrypt(t, s, old, p) // reloads the revoked key
	before := opens()
	const n = 5
	for range n {
		mustDecrypt(t, s, old, p)
	}
	if got := opens() - before; got != n {
		t.Errorf("%d decryptions under a revoked key opened its secret %d times, want %d", n, got, n)
	}
	cur, q := encrypt(t, s, "under the new key")
	if cur.Key.ParentKeyMeta.Created == old.Key.ParentKeyMeta.Created {
		t.Fatal("the revoked key was used for a new record")
	}
	before = opens()
	for range n {
		mustDecrypt(t, s, cur, q)
	}
	if got := opens() - before; got != 0 {
		t.Errorf("the replacement key opened its secret %d times for %d decryptions, want 0 (cached cipher)", got, n)
	}
}

// secretsEqual compares two secrets in constant time.
func secretsEqual(a, b securebuf.Secret) (bool, error) { return securebuf.Equal(a, b) }
