package envelope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// FuzzParseRecords: parsing arbitrary JSON as a DataRowRecord or an
// EnvelopeKeyRecord never panics, and whatever parses re-encodes to JSON
// that parses back to the same record.
func FuzzParseRecords(f *testing.F) {
	v := loadVectors(f)
	for _, r := range v.records {
		if r.DRRJSON != "" {
			f.Add([]byte(r.DRRJSON))
		}
	}
	for _, r := range v.rows {
		f.Add([]byte(r.KeyRecordText))
	}
	f.Add([]byte(`{"Key":null,"Data":""}`))
	f.Add([]byte(`{"revoked":true,"created":-1,"key":"AA==","parentkeymeta":{"keyid":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var drr envelope.DataRowRecord
		if json.Unmarshal(data, &drr) == nil {
			out, err := json.Marshal(&drr)
			if err != nil {
				t.Fatalf("re-encoding a parsed DataRowRecord: %v", err)
			}
			var again envelope.DataRowRecord
			if err := json.Unmarshal(out, &again); err != nil {
				t.Fatalf("re-encoded DataRowRecord does not parse: %v\n%s", err, out)
			}
			if !sameDRR(&drr, &again) {
				t.Fatalf("DataRowRecord changed in a JSON round trip:\n%s", out)
			}
		}
		var rec envelope.EnvelopeKeyRecord
		if json.Unmarshal(data, &rec) == nil {
			out, err := json.Marshal(&rec)
			if err != nil {
				t.Fatalf("re-encoding a parsed EnvelopeKeyRecord: %v", err)
			}
			var again envelope.EnvelopeKeyRecord
			if err := json.Unmarshal(out, &again); err != nil || !sameKeyRecord(&rec, &again) {
				t.Fatalf("EnvelopeKeyRecord changed in a JSON round trip (%v):\n%s", err, out)
			}
		}
	})
}

func sameKeyRecord(a, b *envelope.EnvelopeKeyRecord) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Revoked != b.Revoked || a.Created != b.Created || !bytes.Equal(a.EncryptedKey, b.EncryptedKey) {
		return false
	}
	if a.ParentKeyMeta == nil || b.ParentKeyMeta == nil {
		return a.ParentKeyMeta == b.ParentKeyMeta
	}
	return *a.ParentKeyMeta == *b.ParentKeyMeta
}

func sameDRR(a, b *envelope.DataRowRecord) bool {
	return sameKeyRecord(a.Key, b.Key) && bytes.Equal(a.Data, b.Data)
}

// FuzzDecryptMutated: a vector record with bytes of its JSON text changed
// must never panic and never decrypt to anything but its own plaintext.
// Decryption may succeed only when the mutation left every authenticated
// or key-selecting field as it was: the wrapped key, the data and the
// parent key id and created time. (The data row key's own Created is not
// authenticated in Asherah's format, so changing it changes nothing.)
func FuzzDecryptMutated(f *testing.F) {
	v := loadVectors(f)
	type target struct {
		drr   envelope.DataRowRecord
		plain []byte
		s     *envelope.Session
	}
	store := backends[0].open(f)
	loadRows(f, store, v.rows)
	var targets []target
	factories := map[string]*envelope.SessionFactory{}
	for _, r := range v.records {
		if r.DRRJSON == "" {
			continue
		}
		fkey := r.Session.Service + "/" + r.Session.Product + "/" + r.Session.RegionSuffix
		fac, ok := factories[fkey]
		if !ok {
			fac = newFactory(f, &envelope.Config{Service: r.Session.Service, Product: r.Session.Product, RegionSuffix: r.Session.RegionSuffix}, store)
			factories[fkey] = fac
		}
		targets = append(targets, target{drr: r.DRR, plain: expectedPlaintext(f, r.Plaintext), s: getSession(f, fac, r.Session.Partition)})
		i := len(targets) - 1
		f.Add(uint8(i), []byte(r.DRRJSON), uint16(10), byte(1))
		f.Add(uint8(i), []byte(r.DRRJSON), uint16(len(r.DRRJSON)-3), byte(0x20))
	}
	f.Fuzz(func(t *testing.T, which uint8, text []byte, pos uint16, xor byte) {
		tg := targets[int(which)%len(targets)]
		if len(text) > 0 {
			text[int(pos)%len(text)] ^= xor
		}
		var drr envelope.DataRowRecord
		if json.Unmarshal(text, &drr) != nil {
			return
		}
		got, err := tg.s.Decrypt(context.Background(), drr)
		if err != nil {
			if got != nil {
				t.Fatalf("Decrypt returned %d bytes together with error %v", len(got), err)
			}
			return
		}
		unchanged := drr.Key != nil && tg.drr.Key != nil &&
			bytes.Equal(drr.Data, tg.drr.Data) &&
			bytes.Equal(drr.Key.EncryptedKey, tg.drr.Key.EncryptedKey) &&
			drr.Key.ParentKeyMeta != nil && *drr.Key.ParentKeyMeta == *tg.drr.Key.ParentKeyMeta
		if !unchanged {
			// The record may be another valid record (the fuzzer can
			// produce another vector's text): it must then decrypt to
			// that vector's plaintext.
			for _, other := range targets {
				if sameDRRFields(&drr, &other.drr) && bytes.Equal(got, other.plain) {
					return
				}
			}
			t.Fatalf("a mutated record decrypted (%d bytes)", len(got))
		}
		if !bytes.Equal(got, tg.plain) {
			t.Fatalf("record decrypted to a different plaintext")
		}
	})
}

func sameDRRFields(a, b *envelope.DataRowRecord) bool {
	return a.Key != nil && b.Key != nil && bytes.Equal(a.Data, b.Data) &&
		bytes.Equal(a.Key.EncryptedKey, b.Key.EncryptedKey) &&
		a.Key.ParentKeyMeta != nil && b.Key.ParentKeyMeta != nil && *a.Key.ParentKeyMeta == *b.Key.ParentKeyMeta
}
