package records_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
	"github.com/enc-pipe/enc-pipe/records"
)

// countingStore counts metastore calls.
type countingStore struct {
	envelope.Metastore
	calls atomic.Int64
}

func (s *countingStore) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	s.calls.Add(1)
	return s.Metastore.Load(ctx, id, created)
}

func (s *countingStore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	s.calls.Add(1)
	return s.Metastore.LoadLatest(ctx, id)
}

func (s *countingStore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	s.calls.Add(1)
	return s.Metastore.Store(ctx, id, created, rec)
}

func newFactory(t testing.TB, store envelope.Metastore, service, product string) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte(asherahvectors.MasterKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: service, Product: product}, store, kms, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func encrypter(t testing.TB, cfg records.EncryptConfig) *records.Encrypter {
	t.Helper()
	e, err := records.NewEncrypter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func decrypter(t testing.TB, cfg records.DecryptConfig) *records.Decrypter {
	t.Helper()
	d, err := records.NewDecrypter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func clone(r *records.Record) *records.Record {
	c := *r
	c.Key = bytes.Clone(r.Key)
	c.Value = bytes.Clone(r.Value)
	c.Headers = append([]records.Header(nil), r.Headers...)
	return &c
}

var ctx = context.Background()

func TestRecordsRoundTripInBothFormatsAndEveryPartitionSource(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	in := &records.Record{
		Key:     []byte("tenant-7"),
		Value:   []byte(`{"org":{"tenant":"tenant-7"},"n":1,"ssn":"123-45-6789"}`),
		Headers: []records.Header{{Key: "tenant", Value: []byte("tenant-7")}, {Key: "trace", Value: []byte("x")}},
	}
	sources := map[string]records.PartitionSource{
		"fixed": records.FixedPartition("tenant-7"), "key": records.KeyPartition(),
		"header": records.HeaderPartition("tenant"), "field": records.FieldPartition("org.tenant"),
	}
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		for name, ps := range sources {
			t.Run(format.String()+"/"+name, func(t *testing.T) {
				enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: ps, Format: format})
				r := clone(in)
				if err := enc.Transform(ctx, r); err != nil {
					t.Fatal(err)
				}
				if r.Partition != "tenant-7" || bytes.Contains(r.Value, []byte("123-45")) {
					t.Fatalf("partition %q, value %q", r.Partition, r.Value)
				}
				if got, ok := records.DetectFormat(r.Value); !ok || got != format {
					t.Fatalf("DetectFormat = %v %v, want %v", got, ok, format)
				}
				// Decrypt with the partition from the key id, and with
				// the same source (a field partition needs Fields).
				for _, dps := range []records.PartitionSource{{}, ps} {
					if name == "field" && dps.IsSet() {
						continue
					}
					out := clone(r)
					if err := decrypter(t, records.DecryptConfig{Factory: f, Partition: dps, JSON: true}).Transform(ctx, out); err != nil {
						t.Fatalf("decrypt with partition from %v: %v", dps, err)
					}
					if !bytes.Equal(out.Value, in.Value) || !bytes.Equal(out.Key, in.Key) || out.Partition != "tenant-7" {
						t.Fatalf("round trip gave %q key %q partition %q", out.Value, out.Key, out.Partition)
					}
				}
			})
		}
	}
}

func TestBinaryRecordEncryptedKeyComesBack(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	// The partition is in clear in the key id: take it from elsewhere
	// when the key is secret.
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), Format: records.FormatBinary, EncryptKey: true})
	dec := decrypter(t, records.DecryptConfig{Factory: f})
	r := &records.Record{Key: []byte("user-1"), Value: []byte("payload")}
	if err := enc.Transform(ctx, r); err != nil {
		t.Fatal(err)
	}
	if r.Key != nil || bytes.Contains(r.Value, []byte("user-1")) {
		t.Fatalf("key %q still visible", r.Key)
	}
	if err := dec.Transform(ctx, r); err != nil {
		t.Fatal(err)
	}
	if string(r.Key) != "user-1" || string(r.Value) != "payload" {
		t.Fatalf("got key %q value %q", r.Key, r.Value)
	}
	// A key put in clear next to the encrypted one is refused.
	r2 := &records.Record{Key: []byte("user-1"), Value: []byte("p")}
	enc.Transform(ctx, r2)
	r2.Key = []byte("user-2")
	if err := dec.Transform(ctx, r2); !errors.Is(err, records.ErrFormat) {
		t.Fatalf("decrypt with a key added in clear = %v, want ErrFormat", err)
	}
}

func encryptOne(t testing.TB, e *records.Encrypter, r *records.Record) *records.Record {
	t.Helper()
	r = clone(r)
	if err := e.Transform(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// What a writer to the topic could try on binary records: each must fail.
func TestBinaryRecordRefusesSwapsBetweenPartitionsKeysAndFields(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.HeaderPartition("tenant"), Format: records.FormatBinary})
	decHeader := decrypter(t, records.DecryptConfig{Factory: f, Partition: records.HeaderPartition("tenant")})
	decKeyID := decrypter(t, records.DecryptConfig{Factory: f})
	a := encryptOne(t, enc, &records.Record{Key: []byte("k1"), Value: []byte("A's data"), Headers: []records.Header{{Key: "tenant", Value: []byte("a")}}})
	b := encryptOne(t, enc, &records.Record{Key: []byte("k2"), Value: []byte("B's data"), Headers: []records.Header{{Key: "tenant", Value: []byte("b")}}})

	// B's value under A's tenant header: the key id is B's.
	moved := clone(b)
	moved.Headers = a.Headers
	if err := decHeader.Transform(ctx, moved); !errors.Is(err, records.ErrPartition) {
		t.Fatalf("B's value with tenant a = %v, want ErrPartition", err)
	}
	// Another key of the same tenant.
	rekeyed := clone(a)
	rekeyed.Key = []byte("k9")
	if err := decKeyID.Transform(ctx, rekeyed); !errors.Is(err, records.ErrAuth) {
		t.Fatalf("value under another key = %v, want ErrAuth", err)
	}
	// Every single-byte change and every truncation.
	for i := range a.Value {
		c := clone(a)
		c.Value[i] ^= 0x01
		if err := decKeyID.Transform(ctx, c); err == nil {
			t.Fatalf("byte %d flipped: decrypted", i)
		}
	}
	for n := range len(a.Value) {
		c := clone(a)
		c.Value = c.Value[:n]
		if err := decKeyID.Transform(ctx, c); err == nil {
			t.Fatalf("truncated to %d bytes: decrypted", n)
		}
	}
	if err := decKeyID.Transform(ctx, clone(a)); err != nil {
		t.Fatalf("the untouched record: %v", err)
	}
}

func TestBinaryFieldsCannotBeSwappedWithinARecord(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Format: records.FormatBinary, Fields: []string{"ssn", "card"}})
	dec := decrypter(t, records.DecryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Fields: []string{"ssn", "card"}})
	in := &records.Record{Value: []byte(`{"tenant":"t1","ssn":"111","card":{"n":"4111"},"x":[1]}`)}
	r := encryptOne(t, enc, in)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r.Value, &obj); err != nil {
		t.Fatal(err)
	}
	if string(obj["tenant"]) != `"t1"` || string(obj["x"]) != `[1]` || bytes.Contains(r.Value, []byte("4111")) {
		t.Fatalf("encrypted object %s", r.Value)
	}
	out := clone(r)
	if err := dec.Transform(ctx, out); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Value, in.Value) {
		t.Fatalf("round trip %s, want %s", out.Value, in.Value)
	}
	swapped := fmt.Sprintf(`{"tenant":"t1","ssn":%s,"card":%s,"x":[1]}`, obj["card"], obj["ssn"])
	if err := dec.Transform(ctx, &records.Record{Value: []byte(swapped)}); !errors.Is(err, records.ErrAuth) {
		t.Fatalf("swapped fields = %v, want ErrAuth", err)
	}
	// The same ciphertext in another tenant's record.
	other := fmt.Sprintf(`{"tenant":"t2","ssn":%s}`, obj["ssn"])
	if err := dec.Transform(ctx, &records.Record{Value: []byte(other)}); !errors.Is(err, records.ErrPartition) {
		t.Fatalf("field moved to tenant t2 = %v, want ErrPartition", err)
	}
}

func TestDRRFieldsRoundTripAndPartitionMustAgree(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Fields: []string{"ssn", "card"}})
	dec := decrypter(t, records.DecryptConfig{Factory: f, Fields: []string{"ssn", "card"}})
	a := encryptOne(t, enc, &records.Record{Value: []byte(`{"tenant":"a","ssn":"1","card":"2"}`)})
	b := encryptOne(t, enc, &records.Record{Value: []byte(`{"tenant":"b","ssn":"3","card":"4"}`)})
	out := clone(a)
	if err := dec.Transform(ctx, out); err != nil || string(out.Value) != `{"tenant":"a","ssn":"1","card":"2"}` || out.Partition != "a" {
		t.Fatalf("decrypt = %v, %s", err, out.Value)
	}
	var oa, ob map[string]json.RawMessage
	json.Unmarshal(a.Value, &oa)
	json.Unmarshal(b.Value, &ob)
	mixed := fmt.Sprintf(`{"tenant":"a","ssn":%s,"card":%s}`, oa["ssn"], ob["card"])
	if err := dec.Transform(ctx, &records.Record{Value: []byte(mixed)}); !errors.Is(err, records.ErrPartition) {
		t.Fatalf("fields of two partitions = %v, want ErrPartition", err)
	}
}

func TestEncryptRefusesDuplicateAndAmbiguousPartitionMembers(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	for _, tc := range []struct {
		value string
		want  error
	}{
		{`{"tenant":"a","tenant":"b"}`, records.ErrJSON},
		{`{"tenant":"a","\u0074enant":"b"}`, records.ErrJSON},
		{`{"tenant":"a","x":{"y":1,"y":2}}`, records.ErrJSON},
		{`{"tenant":"a","TENANT":"b"}`, records.ErrPartition},
		{`{"tenant":"a"`, records.ErrJSON},
		{`{"other":"a"}`, records.ErrPartition},
		{`{"tenant":""}`, records.ErrPartition},
		{`{"tenant":true}`, records.ErrPartition},
	} {
		for _, fields := range [][]string{nil, {"x"}} {
			enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Fields: fields})
			if err := enc.Transform(ctx, &records.Record{Value: []byte(tc.value)}); !errors.Is(err, tc.want) {
				t.Errorf("%s (fields %v) = %v, want %v", tc.value, fields, err, tc.want)
			}
		}
	}
	// Duplicates are refused with a fixed partition too, when values are JSON.
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), JSON: true})
	if err := enc.Transform(ctx, &records.Record{Value: []byte(`{"a":1,"a":2}`)}); !errors.Is(err, records.ErrJSON) {
		t.Fatalf("duplicate with a fixed partition = %v", err)
	}
	dupHeaders := &records.Record{Value: []byte("v"), Headers: []records.Header{{Key: "t", Value: []byte("a")}, {Key: "t", Value: []byte("b")}}}
	enc = encrypter(t, records.EncryptConfig{Factory: f, Partition: records.HeaderPartition("t")})
	if err := enc.Transform(ctx, dupHeaders); !errors.Is(err, records.ErrPartition) {
		t.Fatalf("two partition headers = %v, want ErrPartition", err)
	}
}

// The line number of a refused record is in the pipeline's error.
func TestJSONLinesDuplicateNameErrorNamesTheLine(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant")})
	in := "{\"tenant\":\"a\"}\n\n{\"tenant\":\"b\"}\n{\"tenant\":\"a\",\"tenant\":\"b\"}\n"
	var out bytes.Buffer
	p := &records.Pipeline{Source: records.NewLineSource(strings.NewReader(in), records.LineOptions{}), Transform: enc, Sink: records.NewLineSink(&out, records.LineOptions{})}
	err := p.Run(ctx)
	if !errors.Is(err, records.ErrJSON) || !strings.HasPrefix(err.Error(), "line 4: ") {
		t.Fatalf("Run = %v, want a JSON error for line 4", err)
	}
}

func TestLineLimitRefusesOnEncryptWhatDecryptCouldNotRead(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	const max = 4096
	opt := records.LineOptions{MaxLineSize: max}
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), JSON: true, MaxValueSize: max})
	// Find, by growing the record, the largest one that encrypts.
	var last string
	var refused error
	for n := 2000; n < max; n += 7 {
		line := `"` + strings.Repeat("a", n) + `"`
		r := &records.Record{Value: []byte(line)}
		if err := enc.Transform(ctx, r); err != nil {
			refused = err
			break
		}
		last = string(r.Value)
	}
	if !errors.Is(refused, records.ErrSize) || last == "" {
		t.Fatalf("no record was refused for size (%v)", refused)
	}
	// The largest encrypted line is read back by a source with the same limit.
	dec := decrypter(t, records.DecryptConfig{Factory: f, JSON: true, SingleLine: true})
	var out bytes.Buffer
	p := &records.Pipeline{Source: records.NewLineSource(strings.NewReader(last+"\n"), opt), Transform: dec, Sink: records.NewLineSink(&out, opt)}
	if err := p.Run(ctx); err != nil {
		t.Fatalf("decrypting the largest accepted line: %v", err)
	}
	// And one byte more is too long to read.
	long := strings.Repeat("x", max+1) + "\n"
	p = &records.Pipeline{Source: records.NewLineSource(strings.NewReader(long), opt), Transform: dec, Sink: records.NewLineSink(&out, opt)}
	if err := p.Run(ctx); !errors.Is(err, records.ErrLineTooLong) {
		t.Fatalf("a line of max+1 bytes = %v, want ErrLineTooLong", err)
	}
}

func TestWarmRecordsMakeNoMetastoreCall(t *testing.T) {
	store := &countingStore{Metastore: memstore.New()}
	f := newFactory(t, store, "svc", "prod")
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.KeyPartition(), Format: format})
		dec := decrypter(t, records.DecryptConfig{Factory: f})
		for round := range 2 {
			before := store.calls.Load()
			for i := range 300 {
				r := encryptOne(t, enc, &records.Record{Key: fmt.Appendf(nil, "tenant-%d", i%30), Value: []byte("v")})
				if err := dec.Transform(ctx, clone(r)); err != nil {
					t.Fatal(err)
				}
			}
			if calls := store.calls.Load() - before; round == 1 && calls != 0 {
				t.Fatalf("%v: %d metastore calls for 300 warm records of 30 partitions", format, calls)
			}
		}
		hits, misses := enc.CacheStats()
		if hits == 0 || misses == 0 {
			t.Fatalf("cache stats %d hits %d misses", hits, misses)
		}
	}
}

func TestBinaryDataKeyIsReplacedAfterMaxUses(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), Format: records.FormatBinary, DataKeyMaxUses: 3})
	dec := decrypter(t, records.DecryptConfig{Factory: f})
	wrapped := map[string]int{}
	for i := range 9 {
		r := encryptOne(t, enc, &records.Record{Value: fmt.Appendf(nil, "r%d", i)})
		// The header up to the nonce holds the wrapped data key.
		wrapped[string(r.Value[:len(r.Value)-len("r0")-16-12])]++
		want := string(fmt.Appendf(nil, "r%d", i))
		if err := dec.Transform(ctx, r); err != nil || string(r.Value) != want {
			t.Fatalf("record %d: %v %q", i, err, r.Value)
		}
	}
	if len(wrapped) != 3 {
		t.Fatalf("9 records with at most 3 uses per key used %d keys", len(wrapped))
	}
	for _, n := range wrapped {
		if n != 3 {
			t.Fatalf("uses per key %v", wrapped)
		}
	}
}

func TestDecryptRefusesUnknownFormatsAndPassesTombstones(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	dec := decrypter(t, records.DecryptConfig{Factory: f})
	for _, v := range []string{"plain text", "", "\xec\x02\x00", `{"Key":1}`, "[1]"} {
		if err := dec.Transform(ctx, &records.Record{Value: []byte(v)}); !errors.Is(err, records.ErrFormat) {
			t.Errorf("%q = %v, want ErrFormat", v, err)
		}
	}
	r := &records.Record{Key: []byte("k")}
	if err := dec.Transform(ctx, r); err != nil || r.Value != nil {
		t.Fatalf("tombstone = %v %q", err, r.Value)
	}
}

func TestDRRJSONIsWhatEncodingJSONWrites(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	for _, p := range []string{"plain", `quo"te<&>`, "tab\tnl\n", "\u2028x\u2029", "bad\xffutf8", "é😀"} {
		enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition(p)})
		r := encryptOne(t, enc, &records.Record{Value: []byte(`{"v":1}`)})
		var drr envelope.DataRowRecord
		if err := json.Unmarshal(r.Value, &drr); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(&drr)
		if !bytes.Equal(r.Value, want) {
			t.Fatalf("partition %q:\n got %s\nwant %s", p, r.Value, want)
		}
	}
}

// Records written by the real Asherah decrypt through the Decrypter, with
// the partition from the key id and given explicitly.
func TestDecrypterOpensAsherahVectors(t *testing.T) {
	set := asherahvectors.MustLoad(t)
	store := memstore.New()
	for _, row := range set.Rows {
		var rec envelope.EnvelopeKeyRecord
		if err := json.Unmarshal([]byte(row.KeyRecordText), &rec); err != nil {
			t.Fatal(err)
		}
		if err := store.Store(ctx, row.ID, row.Created, &rec); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, v := range set.Records {
		if v.Session.RegionSuffix != "" || v.DRRJSON == "" {
			continue
		}
		f := newFactory(t, store, v.Session.Service, v.Session.Product)
		want, err := v.Plaintext.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		for _, ps := range []records.PartitionSource{{}, records.FixedPartition(v.Session.Partition)} {
			r := &records.Record{Value: []byte(v.DRRJSON)}
			if err := decrypter(t, records.DecryptConfig{Factory: f, Partition: ps}).Transform(ctx, r); err != nil {
				t.Fatalf("%s: %v", v.Name, err)
			}
			if !bytes.Equal(r.Value, want) || r.Partition != v.Session.Partition {
				t.Fatalf("%s: wrong plaintext or partition %q", v.Name, r.Partition)
			}
		}
		n++
	}
	if n < 10 {
		t.Fatalf("only %d vectors checked", n)
	}
}

// Parallel runs over JSON Lines give, line by line, what one worker gives.
func TestParallelJSONLinesMatchSequential(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	var in strings.Builder
	for i := range 2000 {
		b := make([]byte, 40)
		rand.Read(b)
		fmt.Fprintf(&in, `{"tenant":"t%d","i":%d,"d":"%s"}`+"\n", i%37, i, base64.StdEncoding.EncodeToString(b))
	}
	run := func(workers int, format records.Format) []string {
		enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FieldPartition("tenant"), Format: format})
		dec := decrypter(t, records.DecryptConfig{Factory: f, JSON: true, SingleLine: true})
		var mid, out bytes.Buffer
		for _, step := range []struct {
			in  string
			xf  records.Transformer
			out *bytes.Buffer
		}{{in.String(), enc, &mid}, {"", dec, &out}} {
			src := step.in
			if src == "" {
				src = mid.String()
			}
			p := &records.Pipeline{Source: records.NewLineSource(strings.NewReader(src), records.LineOptions{Base64: format == records.FormatBinary && step.xf == records.Transformer(dec)}), Transform: step.xf, Sink: records.NewLineSink(step.out, records.LineOptions{Base64: format == records.FormatBinary && step.xf == records.Transformer(enc)}), Workers: workers}
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return strings.Split(out.String(), "\n")
	}
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		seq, par := run(1, format), run(4, format)
		want := strings.Split(in.String(), "\n")
		if len(par) != len(want) || len(seq) != len(want) {
			t.Fatalf("%v: %d and %d lines, want %d", format, len(seq), len(par), len(want))
		}
		for i := range want {
			if par[i] != seq[i] || seq[i] != want[i] {
				t.Fatalf("%v line %d: parallel %q sequential %q input %q", format, i+1, par[i], seq[i], want[i])
			}
		}
	}
}
