package envelope_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// referenceOpen decrypts an Asherah blob (ct || tag || nonce, no AAD) with
// the standard library only, independently of the package under test.
func referenceOpen(t *testing.T, blob, key []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob) < 28 {
		t.Fatalf("blob of %d bytes", len(blob))
	}
	n := len(blob) - 12
	pt, err := gcm.Open(nil, blob[n:], blob[:n], nil)
	if err != nil {
		t.Fatalf("reference AES-GCM open: %v", err)
	}
	return pt
}

var (
	drrShape = regexp.MustCompile(`^\{"Key":\{"Created":(\d+),"Key":"([A-Za-z0-9+/=]+)","ParentKeyMeta":\{"KeyId":"([^"]+)","Created":(\d+)\}\},"Data":"([A-Za-z0-9+/=]*)"\}$`)
	skShape  = regexp.MustCompile(`^\{"Created":(\d+),"Key":"([A-Za-z0-9+/=]+)"\}$`)
	ikShape  = regexp.MustCompile(`^\{"Created":(\d+),"Key":"([A-Za-z0-9+/=]+)","ParentKeyMeta":\{"KeyId":"([^"]+)","Created":(\d+)\}\}$`)
)

// stdB64 decodes s as padded standard base64 and checks that it is the
// canonical encoding.
func stdB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		t.Fatalf("%q is not strict padded standard base64: %v", s, err)
	}
	if base64.StdEncoding.EncodeToString(b) != s {
		t.Fatalf("%q is not canonical standard base64", s)
	}
	return b
}

// Records written by enc-pipe have Asherah's exact shape, and a decryptor
// written from the specification alone (stdlib AES-GCM, static master key)
// opens them: SK with the master key, IK with the SK, DRK with the IK,
// data with the DRK.
func TestRoundTripAsherahShape(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			// 12:34:56 past the minute, so truncation is visible.
			clock := newFakeClock(time.Date(2026, 11, 27, 12, 34, 56, 789, time.UTC))
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithClock(clock.Now))
			s := getSession(t, f, "partition-1")
			nonces := map[string]bool{}
			for _, size := range []int{0, 1, 100, 4096} {
				payload := bytes.Repeat([]byte{0xA5}, size)
				drr, err := s.Encrypt(context.Background(), payload)
				if err != nil {
					t.Fatal(err)
				}
				text, err := json.Marshal(drr)
				if err != nil {
					t.Fatal(err)
				}
				m := drrShape.FindStringSubmatch(string(text))
				if m == nil {
					t.Fatalf("DataRowRecord JSON does not have Asherah's shape:\n%s", text)
				}
				if m[1] != "1795782896" {
					t.Errorf("DRK Created = %s, want the untruncated clock second 1795782896", m[1])
				}
				if m[3] != "_IK_partition-1_svc_prod" {
					t.Errorf("ParentKeyMeta.KeyId = %s", m[3])
				}
				if m[4] != "1795782840" {
					t.Errorf("IK Created = %s, want the minute 1795782840", m[4])
				}
				wrappedDRK := stdB64(t, m[2])
				data := stdB64(t, m[5])
				if len(wrappedDRK) != 60 {
					t.Errorf("wrapped DRK is %d bytes, want 60", len(wrappedDRK))
				}
				if len(data) != size+28 {
					t.Errorf("Data is %d bytes for a %d-byte payload, want +28", len(data), size)
				}
				// Every GCM message has its own nonce (the trailing 12 bytes).
				for _, blob := range [][]byte{data, wrappedDRK} {
					n := string(blob[len(blob)-12:])
					if nonces[n] {
						t.Fatalf("nonce %x used twice", n)
					}
					nonces[n] = true
				}

				// Independent decryption from the metastore rows.
				ikRec, err := store.Load(context.Background(), "_IK_partition-1_svc_prod", 1795782840)
				if err != nil {
					t.Fatal(err)
				}
				skRec, err := store.Load(context.Background(), ikRec.ParentKeyMeta.ID, ikRec.ParentKeyMeta.Created)
				if err != nil {
					t.Fatal(err)
				}
				sk := referenceOpen(t, skRec.EncryptedKey, []byte(masterKey))
				ik := referenceOpen(t, ikRec.EncryptedKey, sk)
				drk := referenceOpen(t, wrappedDRK, ik)
				if got := referenceOpen(t, data, drk); !bytes.Equal(got, payload) {
					t.Fatalf("reference decryption gave %d bytes that differ from the payload", len(got))
				}
			}

			// The key rows: SK without ParentKeyMeta and Revoked, IK with
			// it, both minute-aligned, both standard base64 of 60 bytes.
			for _, c := range []struct {
				id    string
				shape *regexp.Regexp
			}{{"_SK_svc_prod", skShape}, {"_IK_partition-1_svc_prod", ikShape}} {
				rec, err := store.LoadLatest(context.Background(), c.id)
				if err != nil {
					t.Fatal(err)
				}
				text, err := json.Marshal(rec)
				if err != nil {
					t.Fatal(err)
				}
				m := c.shape.FindStringSubmatch(string(text))
				if m == nil {
					t.Fatalf("%s record does not have Asherah's shape:\n%s", c.id, text)
				}
				if rec.Created%60 != 0 || rec.Created != 1795782840 {
					t.Errorf("%s Created = %d, want the minute 1795782840", c.id, rec.Created)
				}
				if k := stdB64(t, m[2]); len(k) != 60 {
					t.Errorf("%s wrapped key is %d bytes, want 60", c.id, len(k))
				}
			}
		})
	}
}

// A record written by enc-pipe decrypts in a fresh factory (other caches,
// other process state) over the same metastore, including with caching off.
func TestRoundTripFreshFactory(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			s1 := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store), "p")
			payload := []byte("hello, Asherah")
			drr, err := s1.Encrypt(context.Background(), payload)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := json.Marshal(drr)
			var parsed envelope.DataRowRecord
			if err := json.Unmarshal(text, &parsed); err != nil {
				t.Fatal(err)
			}
			f2 := newFactory(t, &envelope.Config{Service: "svc", Product: "prod",
				Policy: envelope.NewCryptoPolicy(envelope.WithNoCache())}, store)
			got, err := getSession(t, f2, "p").Decrypt(context.Background(), parsed)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("fresh factory: %q, %v", got, err)
			}
		})
	}
}
