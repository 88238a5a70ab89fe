package records_test

import (
	"bytes"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/records"
)

// FuzzDecryptBinaryRecord feeds altered binary records to the Decrypter: it
// must never panic, never leave plaintext in a record it refuses, and
// decrypt only the record as written.
func FuzzDecryptBinaryRecord(f *testing.F) {
	fac := newFactory(f, memstore.New(), "svc", "prod")
	enc := encrypter(f, records.EncryptConfig{Factory: fac, Partition: records.KeyPartition(), Format: records.FormatBinary})
	good := encryptOne(f, enc, &records.Record{Key: []byte("tenant"), Value: []byte("the plaintext")})
	f.Add(good.Key, good.Value)
	f.Add(good.Key, append([]byte{0xEC, 0x01, 0x01, 0x80, 0x00}, good.Value[4:]...)) // non-minimal uvarint
	f.Add([]byte(nil), good.Value)
	dec := decrypter(f, records.DecryptConfig{Factory: fac})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		r := &records.Record{Key: key, Value: bytes.Clone(value)}
		err := dec.Transform(ctx, r)
		same := bytes.Equal(key, good.Key) && bytes.Equal(value, good.Value)
		switch {
		case err == nil && !same && value != nil:
			t.Fatalf("decrypted an altered record: key %q value %x", key, value)
		case err != nil && !bytes.Equal(r.Value, value):
			t.Fatalf("refused (%v) but changed the value", err)
		case same && (err != nil || string(r.Value) != "the plaintext"):
			t.Fatalf("the record as written: %v %q", err, r.Value)
		}
	})
}
