package envelope_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
)

const (
	vectorsDir = "../testdata/asherah-vectors"
	masterKey  = "thisIsAStaticMasterKeyForTesting"
)

type vectorSession struct {
	Service      string `json:"service"`
	Product      string `json:"product"`
	Partition    string `json:"partition"`
	RegionSuffix string `json:"region_suffix"`
}

type vectorPlaintext struct {
	Length    int    `json:"length"`
	SHA256    string `json:"sha256"`
	Hex       string `json:"hex"`
	Generator string `json:"generator"`
}

type vectorRecord struct {
	Name      string                 `json:"name"`
	Scenario  string                 `json:"scenario"`
	Session   vectorSession          `json:"session"`
	Plaintext vectorPlaintext        `json:"plaintext"`
	DRR       envelope.DataRowRecord `json:"drr"`
	DRRJSON   string                 `json:"drr_json"`
}

type negativeRecord struct {
	Name    string          `json:"name"`
	Session vectorSession   `json:"session"`
	DRR     json.RawMessage `json:"drr"`
}

type metastoreRow struct {
	ID            string                     `json:"id"`
	Created       int64                      `json:"created"`
	Record        envelope.EnvelopeKeyRecord `json:"record"`
	KeyRecordText string                     `json:"key_record_text"`
}

type vectors struct {
	records   []vectorRecord
	negatives []negativeRecord
	rows      []metastoreRow
}

var (
	vectorsOnce sync.Once
	vectorsData vectors
	vectorsErr  error
)

func loadVectors(t testing.TB) vectors {
	t.Helper()
	vectorsOnce.Do(func() {
		read := func(name string, v any) {
			if vectorsErr != nil {
				return
			}
			b, err := os.ReadFile(filepath.Join(vectorsDir, name))
			if err != nil {
				vectorsErr = err
				return
			}
			vectorsErr = json.Unmarshal(b, v)
		}
		read("records.json", &vectorsData.records)
		read("negative.json", &vectorsData.negatives)
		read("metastore.json", &vectorsData.rows)
	})
	if vectorsErr != nil {
		t.Fatalf("loading the Asherah vectors: %v", vectorsErr)
	}
	return vectorsData
}

// expectedPlaintext rebuilds a vector's plaintext (hex or generator) and
// checks it against the vector's length and SHA-256.
func expectedPlaintext(t testing.TB, p vectorPlaintext) []byte {
	t.Helper()
	var b []byte
	switch {
	case p.Generator != "":
		m := regexp.MustCompile(`^length (\d+); byte\[i\] = \(i\*(\d+) \+ (\d+)\) mod (\d+)$`).FindStringSubmatch(p.Generator)
		if m == nil {
			t.Fatalf("unknown plaintext generator %q", p.Generator)
		}
		n, _ := strconv.Atoi(m[1])
		mul, _ := strconv.Atoi(m[2])
		add, _ := strconv.Atoi(m[3])
		mod, _ := strconv.Atoi(m[4])
		b = make([]byte, n)
		for i := range b {
			b[i] = byte((i*mul + add) % mod)
		}
	case p.Hex != "":
		var err error
		if b, err = hex.DecodeString(p.Hex); err != nil {
			t.Fatal(err)
		}
	default:
		b = []byte{}
	}
	if len(b) != p.Length {
		t.Fatalf("rebuilt plaintext has %d bytes, vector says %d", len(b), p.Length)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.SHA256 {
		t.Fatalf("rebuilt plaintext has SHA-256 %x, vector says %s", sum, p.SHA256)
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
