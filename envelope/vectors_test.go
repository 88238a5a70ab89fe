package envelope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// The records of the Asherah Go vectors decrypt to their plaintext through
// every backend, with and without caches, parsed from the object and from
// Asherah's exact JSON text.
func TestAsherahVectors(t *testing.T) {
	v := loadVectors(t)
	if len(v.records) < 16 || len(v.negatives) < 9 || len(v.rows) < 10 {
		t.Fatalf("vectors look incomplete: %d records, %d negatives, %d rows", len(v.records), len(v.negatives), len(v.rows))
	}
	type variant struct {
		policy *envelope.CryptoPolicy
		opts   []envelope.FactoryOption
	}
	variants := map[string]variant{
		"cached":        {envelope.NewCryptoPolicy(), nil},
		"cached-strict": {envelope.NewCryptoPolicy(), []envelope.FactoryOption{envelope.WithKeyAccess(envelope.KeyAccessStrict)}},
		"nocache":       {envelope.NewCryptoPolicy(envelope.WithNoCache()), nil},
		"shared":        {envelope.NewCryptoPolicy(envelope.WithSharedIntermediateKeyCache(10), envelope.WithSessionCache()), nil},
	}
	for _, b := range backends {
		for pname, vt := range variants {
			policy := vt.policy
			t.Run(b.name+"/"+pname, func(t *testing.T) {
				store := b.open(t)
				loadRows(t, store, v.rows)
				checkRevokedKept(t, store, v.rows)
				// One factory per (service, product, suffix), shared by
				// the records, so that caches are exercised across them.
				factories := map[vectorSession]*envelope.SessionFactory{}
				for _, rec := range v.records {
					key := rec.Session
					key.Partition = ""
					if _, ok := factories[key]; !ok {
						factories[key] = newFactory(t, &envelope.Config{
							Service: key.Service, Product: key.Product,
							RegionSuffix: key.RegionSuffix, Policy: policy,
						}, store, vt.opts...)
					}
				}
				for _, rec := range v.records {
					t.Run(rec.Name, func(t *testing.T) {
						want := expectedPlaintext(t, rec.Plaintext)
						key := rec.Session
						key.Partition = ""
						s := getSession(t, factories[key], rec.Session.Partition)
						drrs := []envelope.DataRowRecord{rec.DRR}
						if rec.DRRJSON != "" {
							var fromText envelope.DataRowRecord
							if err := json.Unmarshal([]byte(rec.DRRJSON), &fromText); err != nil {
								t.Fatal(err)
							}
							drrs = append(drrs, fromText)
						}
						for _, drr := range drrs {
							got, err := s.Decrypt(context.Background(), drr)
							if err != nil {
								t.Fatalf("Decrypt: %v", err)
							}
							if !bytes.Equal(got, want) {
								t.Fatalf("Decrypt returned %d bytes that differ from the %d-byte plaintext", len(got), len(want))
							}
						}
					})
				}
			})
		}
	}
}

// Every negative vector fails, with the documented error class, and
// returns no plaintext.
func TestAsherahNegativeVectors(t *testing.T) {
	v := loadVectors(t)
	wantErr := map[string]error{
		"data-ciphertext-bitflip": envelope.ErrDecrypt,
		"data-tag-bitflip":        envelope.ErrDecrypt,
		"data-nonce-bitflip":      envelope.ErrDecrypt,
		"drk-bitflip":             envelope.ErrDecrypt,
		"wrong-partition":         envelope.ErrPartitionMismatch,
		"unknown-ik-created":      envelope.ErrNotFound,
		"missing-parent-key-meta": envelope.ErrInvalidRecord,
		"missing-key":             envelope.ErrInvalidRecord,
		"wrong-service":           envelope.ErrPartitionMismatch,
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			loadRows(t, store, v.rows)
			for _, neg := range v.negatives {
				t.Run(neg.Name, func(t *testing.T) {
					var drr envelope.DataRowRecord
					if err := json.Unmarshal(neg.DRR, &drr); err != nil {
						t.Fatal(err)
					}
					f := newFactory(t, &envelope.Config{Service: neg.Session.Service, Product: neg.Session.Product, RegionSuffix: neg.Session.RegionSuffix}, store)
					s := getSession(t, f, neg.Session.Partition)
					got, err := s.Decrypt(context.Background(), drr)
					if err == nil || got != nil {
						t.Fatalf("Decrypt = %d bytes, %v; want no plaintext and an error", len(got), err)
					}
					want, ok := wantErr[neg.Name]
					if !ok {
						t.Fatalf("no expected error class for new negative vector %q (error: %v)", neg.Name, err)
					}
					if !errors.Is(err, want) {
						t.Errorf("Decrypt error %q does not match %v", err, want)
					}
					if errors.Is(err, envelope.ErrNotFound) {
						var ke *envelope.KeyError
						if !errors.As(err, &ke) || ke.Kind != envelope.IntermediateKey || ke.ID != drr.Key.ParentKeyMeta.ID {
							t.Errorf("missing key error %v is not a *KeyError naming the record's intermediate key", err)
						}
					}
				})
			}
		})
	}
}

// Region-suffixed records decrypt only in a session with a suffix; an
// unsuffixed session must refuse their id (as in Asherah).
func TestAsherahVectorsSuffixRequired(t *testing.T) {
	v := loadVectors(t)
	store := backends[0].open(t)
	loadRows(t, store, v.rows)
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store)
	n := 0
	for _, rec := range v.records {
		if rec.Session.RegionSuffix == "" {
			continue
		}
		n++
		s := getSession(t, f, rec.Session.Partition)
		if got, err := s.Decrypt(context.Background(), rec.DRR); !errors.Is(err, envelope.ErrPartitionMismatch) || got != nil {
			t.Errorf("%s in an unsuffixed session: %d bytes, %v; want ErrPartitionMismatch", rec.Name, len(got), err)
		}
	}
	if n == 0 {
		t.Fatal("no region-suffix vectors")
	}
}

// The key records we write are byte for byte what Asherah writes: the
// vectors' rows, parsed and re-encoded, give Asherah's exact text.
func TestAsherahRowsReencodeExactly(t *testing.T) {
	for _, r := range loadVectors(t).rows {
		var rec envelope.EnvelopeKeyRecord
		if err := json.Unmarshal([]byte(r.KeyRecordText), &rec); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(&rec)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != r.KeyRecordText {
			t.Errorf("%s/%d re-encoded as\n%s\nwant\n%s", r.ID, r.Created, out, r.KeyRecordText)
		}
	}
	for _, rec := range loadVectors(t).records {
		if rec.DRRJSON == "" {
			continue
		}
		var drr envelope.DataRowRecord
		if err := json.Unmarshal([]byte(rec.DRRJSON), &drr); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(&drr)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != rec.DRRJSON {
			t.Errorf("%s re-encoded differently:\n%s\nwant\n%s", rec.Name, out, rec.DRRJSON)
		}
	}
}

// checkRevokedKept verifies that the rows marked Revoked in metastore.json
// are revoked in store, and the others are not.
func checkRevokedKept(t *testing.T, store envelope.Metastore, rows []metastoreRow) {
	t.Helper()
	revoked := 0
	for _, r := range rows {
		got, err := store.Load(context.Background(), r.ID, r.Created)
		if err != nil {
			t.Fatal(err)
		}
		if got.Revoked != r.Record.Revoked {
			t.Errorf("%s/%d: Revoked = %v after loading, want %v", r.ID, r.Created, got.Revoked, r.Record.Revoked)
		}
		if got.Revoked {
			revoked++
		}
	}
	if revoked == 0 {
		t.Error("no revoked row in the vectors")
	}
}
