package envelope_test

import (
	"context"
	"errors"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/metrics"
)

// Check on a new metastore round-trips a probe through the KMS and stores
// nothing; once a system key exists it reads it and has the KMS unwrap it.
func TestCheckTalksToTheMetastoreAndTheKMSAndStoresNothing(t *testing.T) {
	ctx := context.Background()
	m := metrics.NewMemory()
	store := memstore.New()
	cfg := &envelope.Config{Service: "svc", Product: "prod"}
	f := newFactory(t, cfg, store, envelope.WithMetrics(m))
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check on an empty metastore: %v", err)
	}
	if _, err := store.LoadLatest(ctx, "_SK_svc_prod"); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Check stored a system key (LoadLatest: %v)", err)
	}
	if m.Value(envelope.MetricKMSEncrypt) != 1 || m.Value(envelope.MetricKMSDecrypt) != 1 || m.Value(envelope.MetricMetastoreLoadLatest) != 1 {
		t.Fatalf("an empty-metastore Check made other calls than loadlatest, encryptkey, decryptkey: %v", m.Points())
	}
	encrypt(t, getSession(t, f, "p"), "x") // creates the system key
	dec := m.Value(envelope.MetricKMSDecrypt)
	enc := m.Value(envelope.MetricKMSEncrypt)
	if err := f.Check(ctx); err != nil {
		t.Fatalf("Check with a system key: %v", err)
	}
	if got := m.Value(envelope.MetricKMSDecrypt) - dec; got != 1 {
		t.Errorf("Check made %d KMS decryptions, want 1 (the stored system key)", got)
	}
	if got := m.Value(envelope.MetricKMSEncrypt) - enc; got != 0 {
		t.Errorf("Check made %d KMS encryptions with a system key stored, want 0", got)
	}
}

// Check fails, naming the call, when the metastore fails or when the KMS
// holds another master key than the one that wrapped the stored keys.
func TestCheckFailsOnAFailingMetastoreOrAForeignMasterKey(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	cfg := &envelope.Config{Service: "svc", Product: "prod"}
	f := newFactory(t, cfg, store)
	encrypt(t, getSession(t, f, "p"), "x")

	other, err := statickms.New([]byte("anotherStaticMasterKeyOf32Bytes!"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	g, err := envelope.NewSessionFactory(cfg, store, other, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var ke *envelope.KeyError
	if err := g.Check(ctx); !errors.As(err, &ke) || ke.Op != "decrypt (KMS)" {
		t.Fatalf("Check with a foreign master key = %v, want a KMS decrypt *KeyError", err)
	}

	boom := errors.New("connection refused")
	h, err := envelope.NewSessionFactory(cfg, brokenStore{boom}, newStaticKMS(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Check(ctx); !errors.Is(err, boom) || !errors.As(err, &ke) || ke.Op != "load latest" {
		t.Fatalf("Check with a failing metastore = %v", err)
	}
	h.Close()
	if err := h.Check(ctx); !errors.Is(err, envelope.ErrClosed) {
		t.Fatalf("Check after Close = %v, want ErrClosed", err)
	}
}

// brokenStore fails every call.
type brokenStore struct{ err error }

func (s brokenStore) Load(context.Context, string, int64) (*envelope.EnvelopeKeyRecord, error) {
	return nil, s.err
}
func (s brokenStore) LoadLatest(context.Context, string) (*envelope.EnvelopeKeyRecord, error) {
	return nil, s.err
}
func (s brokenStore) Store(context.Context, string, int64, *envelope.EnvelopeKeyRecord) error {
	return s.err
}
