// Package asherahvectors reads the conformance vectors that the real
// Asherah Go library produced (testdata/asherah-vectors, see its README)
// and checks a metastore against them. It is test support: every package
// that must prove Asherah compatibility uses it, so the vectors are read
// and judged one way.
package asherahvectors

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
)

// MasterKey is the static master key the vectors were made with.
const MasterKey = "thisIsAStaticMasterKeyForTesting"

// Session is what a vector must be opened with.
type Session struct {
	Service      string `json:"service"`
	Product      string `json:"product"`
	Partition    string `json:"partition"`
	RegionSuffix string `json:"region_suffix"`
}

// Plaintext describes a positive vector's plaintext: Hex, or a Generator
// for large payloads, and always its length and SHA-256.
type Plaintext struct {
	Length    int    `json:"length"`
	SHA256    string `json:"sha256"`
	Hex       string `json:"hex"`
	Generator string `json:"generator"`
}

// Record is a positive vector: DRR must decrypt to Plaintext.
type Record struct {
	Name      string                 `json:"name"`
	Scenario  string                 `json:"scenario"`
	Session   Session                `json:"session"`
	Plaintext Plaintext              `json:"plaintext"`
	DRR       envelope.DataRowRecord `json:"drr"`
	DRRJSON   string                 `json:"drr_json"` // Asherah's exact text; empty for the 1 MiB record
}

// Negative is a record that must not decrypt. DRR is kept raw because some
// negative vectors lack fields.
type Negative struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Session     Session         `json:"session"`
	DRR         json.RawMessage `json:"drr"`
}

// Row is one key row Asherah stored: Record as parsed, KeyRecordText as
// Asherah's SQL metastore writes it to key_record.
type Row struct {
	ID            string                     `json:"id"`
	Created       int64                      `json:"created"`
	Record        envelope.EnvelopeKeyRecord `json:"record"`
	KeyRecordText string                     `json:"key_record_text"`
}

// Set is the whole of the vectors.
type Set struct {
	Records   []Record
	Negatives []Negative
	Rows      []Row
}

var (
	once   sync.Once
	loaded *Set
	errSet error
)

// Load reads the vectors once per process. It finds testdata/asherah-vectors
// by walking up from the working directory to the module root, so that a
// test in any package can call it.
func Load() (*Set, error) {
	once.Do(func() {
		dir, err := Dir()
		if err != nil {
			errSet = err
			return
		}
		s := new(Set)
		for name, v := range map[string]any{"records.json": &s.Records, "negative.json": &s.Negatives, "metastore.json": &s.Rows} {
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				err = json.Unmarshal(b, v)
			}
			if err != nil {
				errSet = fmt.Errorf("asherahvectors: %s: %w", name, err)
				return
			}
		}
		// The README promises these counts; fewer means a broken copy.
		if len(s.Records) < 16 || len(s.Negatives) < 9 || len(s.Rows) == 0 {
			errSet = fmt.Errorf("asherahvectors: %d records, %d negatives, %d rows: the copy in %s is incomplete", len(s.Records), len(s.Negatives), len(s.Rows), dir)
			return
		}
		loaded = s
	})
	return loaded, errSet
}

// MustLoad is Load for tests: it fails t on error.
func MustLoad(t testing.TB) *Set {
	t.Helper()
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Dir is the vectors directory of this module.
func Dir() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "testdata", "asherah-vectors"), nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("asherahvectors: no go.mod above the working directory")
		}
		d = parent
	}
}

var generator = regexp.MustCompile(`^length (\d+); byte\[i\] = \(i\*(\d+) \+ (\d+)\) mod (\d+)$`)

// Bytes rebuilds the plaintext and checks it against Length and SHA256.
func (p Plaintext) Bytes() ([]byte, error) {
	var b []byte
	switch {
	case p.Generator != "":
		m := generator.FindStringSubmatch(p.Generator)
		if m == nil {
			return nil, fmt.Errorf("asherahvectors: unknown plaintext generator %q", p.Generator)
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
			return nil, err
		}
	default:
		b = []byte{}
	}
	return b, p.Check(b)
}

// Check reports whether b is this plaintext: its length and SHA-256.
func (p Plaintext) Check(b []byte) error {
	sum := sha256.Sum256(b)
	if len(b) != p.Length || hex.EncodeToString(sum[:]) != p.SHA256 {
		return fmt.Errorf("asherahvectors: plaintext of %d bytes with SHA-256 %x, want %d bytes with %s", len(b), sum, p.Length, p.SHA256)
	}
	return nil
}

// Decrypt opens drr (a DataRowRecord's JSON) in a fresh session factory on
// store with the static master key, as a new Asherah client would.
func Decrypt(ctx context.Context, store envelope.Metastore, s Session, drr []byte) ([]byte, error) {
	var d envelope.DataRowRecord
	if err := json.Unmarshal(drr, &d); err != nil {
		return nil, err
	}
	kms, err := statickms.New([]byte(MasterKey))
	if err != nil {
		return nil, err
	}
	defer kms.Close()
	// A store that reports a region suffix supplies it, as in Asherah;
	// otherwise the session is configured with the vector's suffix.
	suffix := s.RegionSuffix
	if rs, ok := store.(envelope.RegionSuffixer); ok && rs.GetRegionSuffix() != "" {
		if rs.GetRegionSuffix() != s.RegionSuffix {
			return nil, fmt.Errorf("asherahvectors: the store's region suffix is %q, the vector's %q", rs.GetRegionSuffix(), s.RegionSuffix)
		}
		suffix = ""
	}
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: s.Service, Product: s.Product, RegionSuffix: suffix}, store, kms, nil)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sess, err := f.GetSession(s.Partition)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	return sess.Decrypt(ctx, d)
}

// Check decrypts every positive vector and fails to decrypt every negative
// one, each in a subtest, through the metastore that storeFor returns for
// the vector's session (a store holding the rows of metastore.json).
func Check(t *testing.T, storeFor func(Session) envelope.Metastore) {
	t.Helper()
	set := MustLoad(t)
	ctx := context.Background()
	for _, v := range set.Records {
		t.Run(v.Name, func(t *testing.T) {
			drr, err := json.Marshal(v.DRR)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := Decrypt(ctx, storeFor(v.Session), v.Session, drr)
			if err != nil {
				t.Fatal(err)
			}
			if err := v.Plaintext.Check(pt); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, v := range set.Negatives {
		t.Run("negative/"+v.Name, func(t *testing.T) {
			if pt, err := Decrypt(ctx, storeFor(v.Session), v.Session, v.DRR); err == nil || pt != nil {
				t.Fatalf("decrypted to %d bytes (error %v), want an error and no plaintext", len(pt), err)
			}
		})
	}
}
