package envelope_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
)

const masterKey = asherahvectors.MasterKey

// The Asherah conformance vectors (testdata/asherah-vectors), read by the
// module's one loader.
type (
	vectorSession   = asherahvectors.Session
	vectorRecord    = asherahvectors.Record
	negativeRecord  = asherahvectors.Negative
	metastoreRow    = asherahvectors.Row
	vectorPlaintext = asherahvectors.Plaintext
)

type vectors struct {
	records   []vectorRecord
	negatives []negativeRecord
	rows      []metastoreRow
}

func loadVectors(t testing.TB) vectors {
	t.Helper()
	s := asherahvectors.MustLoad(t)
	return vectors{records: s.Records, negatives: s.Negatives, rows: s.Rows}
}

// expectedPlaintext rebuilds a vector's plaintext (hex or generator) and
// checks it against the vector's length and SHA-256.
func expectedPlaintext(t testing.TB, p vectorPlaintext) []byte {
	t.Helper()
	b, err := p.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newStaticKMS(t testing.TB) *statickms.KMS {
	t.Helper()
	k, err := statickms.New([]byte(masterKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// backend is a metastore under test with a way to load the vector rows.
type backend struct {
	name string
	open func(t testing.TB) envelope.Metastore
}

func openSQLite(t testing.TB, path string) *sqlstore.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "keys.db")
	}
	db, store, err := sqlitedb.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return store
}

var backends = []backend{
	{"memstore", func(testing.TB) envelope.Metastore { return memstore.New() }},
	{"sqlite", func(t testing.TB) envelope.Metastore { return openSQLite(t, "") }},
}

// loadRows inserts every row of metastore.json, parsed from the exact text
// Asherah produced (key_record_text), Revoked flag included.
func loadRows(t testing.TB, store envelope.Metastore, rows []metastoreRow) {
	t.Helper()
	for _, r := range rows {
		var rec envelope.EnvelopeKeyRecord
		if err := json.Unmarshal([]byte(r.KeyRecordText), &rec); err != nil {
			t.Fatalf("row %s/%d: %v", r.ID, r.Created, err)
		}
		if err := store.Store(context.Background(), r.ID, r.Created, &rec); err != nil {
			t.Fatalf("storing row %s/%d: %v", r.ID, r.Created, err)
		}
	}
}

// fakeClock is a settable clock for WithClock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{now: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newFactory(t testing.TB, cfg *envelope.Config, store envelope.Metastore, opts ...envelope.FactoryOption) *envelope.SessionFactory {
	t.Helper()
	f, err := envelope.NewSessionFactory(cfg, store, newStaticKMS(t), envelope.NewAES256GCM(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func getSession(t testing.TB, f *envelope.SessionFactory, partition string) *envelope.Session {
	t.Helper()
	s, err := f.GetSession(partition)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
