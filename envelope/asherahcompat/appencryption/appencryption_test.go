package appencryption_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/crypto/aead"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/kms"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/persistence"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
)

func staticKMS(t *testing.T) *kms.StaticKMS {
	t.Helper()
	k, err := kms.NewStatic(asherahvectors.MasterKey, aead.NewAES256GCM())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

func newFactory(t *testing.T, cfg *appencryption.Config, store appencryption.Metastore) *appencryption.SessionFactory {
	t.Helper()
	f := appencryption.NewSessionFactory(cfg, store, staticKMS(t), aead.NewAES256GCM())
	t.Cleanup(func() { f.Close() })
	return f
}

func session(t *testing.T, f *appencryption.SessionFactory, partition string) *appencryption.Session {
	t.Helper()
	s, err := f.GetSession(partition)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The records Asherah Go wrote decrypt through the migrated API, with the
// rows stored through the Asherah-shaped Store of the in-memory and SQL
// metastores.
func TestMigratedProgramReadsAsherahVectors(t *testing.T) {
	set := asherahvectors.MustLoad(t)
	stores := map[string]func(t *testing.T) appencryption.Metastore{
		"memory": func(*testing.T) appencryption.Metastore { return persistence.NewMemoryMetastore() },
		"sqlite": func(t *testing.T) appencryption.Metastore {
			db, _, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			return persistence.NewSQLMetastore(db, persistence.WithSQLMetastoreDBType(persistence.SQLite))
		},
	}
	ctx := context.Background()
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			for _, r := range set.Rows {
				var rec appencryption.EnvelopeKeyRecord
				if err := json.Unmarshal([]byte(r.KeyRecordText), &rec); err != nil {
					t.Fatal(err)
				}
				if ok, err := store.Store(ctx, r.ID, r.Created, &rec); !ok || err != nil {
					t.Fatalf("Store(%s, %d) = %v, %v", r.ID, r.Created, ok, err)
				}
			}
			for _, v := range set.Records {
				t.Run(v.Name, func(t *testing.T) {
					f := newFactory(t, &appencryption.Config{Service: v.Session.Service, Product: v.Session.Product, RegionSuffix: v.Session.RegionSuffix}, store)
					got, err := session(t, f, v.Session.Partition).Decrypt(ctx, v.DRR)
					if err != nil {
						t.Fatal(err)
					}
					if err := v.Plaintext.Check(got); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}

// Records and keys made through the adapter are envelope's: a program
// half-way through its move to package envelope reads both ways.
func TestRecordsCrossTheAdapter(t *testing.T) {
	ctx := context.Background()
	store := persistence.NewMemoryMetastore()
	cfg := &appencryption.Config{Service: "svc", Product: "prod"}
	old := session(t, newFactory(t, cfg, store), "p")
	k := staticKMS(t)
	nf, err := envelope.NewSessionFactory(cfg, store.EnvelopeMetastore(), k, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer nf.Close()
	native, err := nf.GetSession("p")
	if err != nil {
		t.Fatal(err)
	}
	defer native.Close()

	a, err := old.Encrypt(ctx, []byte("from the adapter"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := native.Encrypt(ctx, []byte("from envelope"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Key.ParentKeyMeta.Created != b.Key.ParentKeyMeta.Created {
		t.Fatal("the two factories made two intermediate keys: the adapter's writes were not seen")
	}
	for _, c := range []struct {
		s    *appencryption.Session
		drr  *appencryption.DataRowRecord
		want string
	}{{native, a, "from the adapter"}, {old, b, "from envelope"}} {
		got, err := c.s.Decrypt(ctx, *c.drr)
		if err != nil || string(got) != c.want {
			t.Fatalf("Decrypt = %q, %v; want %q", got, err, c.want)
		}
	}

	// Session.Store and Session.Load with persistence's adapters.
	saved := map[string]appencryption.DataRowRecord{}
	key, err := old.Store(ctx, []byte("stored"), persistence.StorerFunc(func(_ context.Context, d appencryption.DataRowRecord) (any, error) {
		saved["row"] = d
		return "row", nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	got, err := old.Load(ctx, key, persistence.LoaderFunc(func(_ context.Context, k any) (*appencryption.DataRowRecord, error) {
		d := saved[k.(string)]
		return &d, nil
	}))
	if err != nil || string(got) != "stored" {
		t.Fatalf("Load = %q, %v", got, err)
	}
}

// mapStore is a metastore written for Asherah: nil records when absent,
// and duplicates reported as false (with dupErr, as Asherah's SQL
// metastore reports them, or without an error as its memory metastore).
type mapStore struct {
	mu       sync.Mutex
	rows     map[string]map[int64]appencryption.EnvelopeKeyRecord
	dupErr   error
	storeErr error // every Store fails with it, storing nothing
}

func newMapStore() *mapStore {
	return &mapStore{rows: map[string]map[int64]appencryption.EnvelopeKeyRecord{}}
}

func (m *mapStore) Load(_ context.Context, id string, created int64) (*appencryption.EnvelopeKeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.rows[id][created]
	if !ok {
		return nil, nil
	}
	return copyRecord(rec), nil
}

func (m *mapStore) LoadLatest(_ context.Context, id string) (*appencryption.EnvelopeKeyRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var created []int64
	for c := range m.rows[id] {
		created = append(created, c)
	}
	if len(created) == 0 {
		return nil, nil
	}
	sort.Slice(created, func(i, j int) bool { return created[i] > created[j] })
	return copyRecord(m.rows[id][created[0]]), nil
}

func (m *mapStore) Store(_ context.Context, id string, created int64, rec *appencryption.EnvelopeKeyRecord) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.storeErr != nil {
		return false, m.storeErr
	}
	if _, ok := m.rows[id][created]; ok {
		return false, m.dupErr
	}
	if m.rows[id] == nil {
		m.rows[id] = map[int64]appencryption.EnvelopeKeyRecord{}
	}
	m.rows[id][created] = *copyRecord(*rec)
	return true, nil
}

func copyRecord(r appencryption.EnvelopeKeyRecord) *appencryption.EnvelopeKeyRecord {
	r.EncryptedKey = bytes.Clone(r.EncryptedKey)
	if r.ParentKeyMeta != nil {
		m := *r.ParentKeyMeta
		r.ParentKeyMeta = &m
	}
	return &r
}

// An Asherah-shaped metastore, adapted, passes envelope's metastore
// conformance suite, whether it reports duplicates with an error or not.
func TestAdaptedMetastoreConformance(t *testing.T) {
	for name, dupErr := range map[string]error{"duplicate-without-error": nil, "duplicate-with-error": errors.New("Error 1062: Duplicate entry")} {
		t.Run(name, func(t *testing.T) {
			envelopetest.TestMetastore(t, func(*testing.T) envelope.Metastore {
				m := newMapStore()
				m.dupErr = dupErr
				return appencryption.EnvelopeMetastore(m)
			})
		})
	}
}

// A failing Store is not taken for a lost creation race (Asherah treats
// every false as one): the error reaches the caller.
func TestAdaptedStoreErrorIsReturned(t *testing.T) {
	m := newMapStore()
	boom := errors.New("connection reset by peer")
	m.storeErr = boom
	s := session(t, newFactory(t, &appencryption.Config{Service: "svc", Product: "prod"}, m), "p")
	_, err := s.Encrypt(context.Background(), []byte("x"))
	if !errors.Is(err, boom) || errors.Is(err, envelope.ErrKeyExists) {
		t.Fatalf("Encrypt with a failing metastore = %v, want the metastore's error, not ErrKeyExists", err)
	}
}

// A metastore's region suffix is kept through the adapter, as Asherah
// reads it from its DynamoDB metastore.
func TestAdaptedMetastoreKeepsRegionSuffix(t *testing.T) {
	s := session(t, newFactory(t, &appencryption.Config{Service: "svc", Product: "prod"}, suffixedStore{newMapStore()}), "p")
	drr, err := s.Encrypt(context.Background(), []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := drr.Key.ParentKeyMeta.ID, "_IK_p_svc_prod_"+(suffixedStore{}).GetRegionSuffix(); got != want {
		t.Fatalf("intermediate key id %q, want %q", got, want)
	}
}

type suffixedStore struct{ *mapStore }

func (suffixedStore) GetRegionSuffix() string { return "us-west-2" }

func TestNewSessionFactoryPanicsOnBadConfig(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || !errors.Is(err, envelope.ErrInvalidConfig) {
			t.Fatalf("NewSessionFactory with an unknown eviction policy: recovered %v, want an error matching ErrInvalidConfig", r)
		}
	}()
	policy := appencryption.NewCryptoPolicy()
	policy.SessionCacheEvictionPolicy = "mru"
	policy.CacheSessions = true
	appencryption.NewSessionFactory(&appencryption.Config{Service: "svc", Product: "prod", Policy: policy},
		persistence.NewMemoryMetastore(), staticKMS(t), aead.NewAES256GCM())
	t.Fatal("no panic")
}

// The persistence metastores answer in Asherah's shape.
func TestPersistenceMetastoresHaveAsherahShape(t *testing.T) {
	ctx := context.Background()
	db, _, err := sqlitedb.Open(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, m := range map[string]appencryption.Metastore{
		"memory": persistence.NewMemoryMetastore(),
		"sql":    persistence.NewSQLMetastore(db, persistence.WithSQLMetastoreDBType(persistence.SQLite)),
	} {
		t.Run(name, func(t *testing.T) {
			if rec, err := m.Load(ctx, "_SK_svc_prod", 60); rec != nil || err != nil {
				t.Errorf("Load of an absent key = %v, %v; want nil, nil", rec, err)
			}
			if rec, err := m.LoadLatest(ctx, "_SK_svc_prod"); rec != nil || err != nil {
				t.Errorf("LoadLatest of an absent key = %v, %v; want nil, nil", rec, err)
			}
			rec := &appencryption.EnvelopeKeyRecord{Created: 60, EncryptedKey: []byte("wrapped")}
			if ok, err := m.Store(ctx, "_SK_svc_prod", 60, rec); !ok || err != nil {
				t.Fatalf("first Store = %v, %v", ok, err)
			}
			if ok, err := m.Store(ctx, "_SK_svc_prod", 60, rec); ok || err != nil {
				t.Errorf("duplicate Store = %v, %v; want false, nil", ok, err)
			}
			got, err := m.LoadLatest(ctx, "_SK_svc_prod")
			if err != nil || got == nil || !bytes.Equal(got.EncryptedKey, rec.EncryptedKey) {
				t.Errorf("LoadLatest = %v, %v", got, err)
			}
		})
	}
}

func TestStaticKMS(t *testing.T) {
	if _, err := kms.NewStatic("too short", aead.NewAES256GCM()); err == nil {
		t.Error("NewStatic accepted a 9-byte key")
	}
	if _, err := kms.NewStatic(asherahvectors.MasterKey, customAEAD{}); err == nil {
		t.Error("NewStatic accepted an AEAD it would not use")
	}
	k := staticKMS(t)
	ctx := context.Background()
	sk := bytes.Repeat([]byte{7}, 32)
	blob, err := k.EncryptKey(ctx, sk)
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.DecryptKey(ctx, blob)
	if err != nil || !bytes.Equal(got, sk) {
		t.Fatalf("DecryptKey = %v", err)
	}
}

type customAEAD struct{ appencryption.AEAD }
