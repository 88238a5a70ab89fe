package records_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
	"github.com/enc-pipe/enc-pipe/internal/jsonscan"
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

// In both formats, the largest record that encrypts to a line within the
// limit is the one the size error names, and its line reads back; the
// limit is found by search, not computed by the test.
func TestLineLimitRefusesOnEncryptWhatDecryptCouldNotRead(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	const max = 4096
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		t.Run(format.String(), func(t *testing.T) {
			opt := records.LineOptions{MaxLineSize: max, Base64: format == records.FormatBinary}
			enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), Format: format, JSON: true, MaxValueSize: opt.MaxValueSize()})
			value := func(n int) []byte { return []byte(`"` + strings.Repeat("a", n-2) + `"`) }
			encrypts := func(n int) error { return enc.Transform(ctx, &records.Record{Value: value(n)}) }
			lo, hi := 2, max // encrypts(lo) == nil, encrypts(hi) != nil
			if encrypts(lo) != nil || encrypts(hi) == nil {
				t.Fatalf("no size between %d and %d is refused", lo, hi)
			}
			for hi-lo > 1 {
				if mid := (lo + hi) / 2; encrypts(mid) == nil {
					lo = mid
				} else {
					hi = mid
				}
			}
			err := encrypts(lo + 1)
			if !errors.Is(err, records.ErrSize) || !strings.Contains(err.Error(), fmt.Sprintf("at most %d bytes", lo)) {
				t.Fatalf("a record of %d bytes (the largest is %d) = %v", lo+1, lo, err)
			}
			// The largest record's line is within the limit and reads back.
			var line, out bytes.Buffer
			p := &records.Pipeline{Source: records.NewLineSource(bytes.NewReader(append(value(lo), '\n')), records.LineOptions{MaxLineSize: max}), Transform: enc, Sink: records.NewLineSink(&line, opt)}
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if n := line.Len() - 1; n > max || n < max-4 {
				t.Fatalf("the largest record's line is %d bytes, the limit %d", n, max)
			}
			dec := decrypter(t, records.DecryptConfig{Factory: f, JSON: true, SingleLine: true})
			p = &records.Pipeline{Source: records.NewLineSource(&line, opt), Transform: dec, Sink: records.NewLineSink(&out, records.LineOptions{MaxLineSize: max})}
			if err := p.Run(ctx); err != nil || !bytes.Equal(out.Bytes(), append(value(lo), '\n')) {
				t.Fatalf("decrypting the largest accepted line: %v", err)
			}
		})
	}
}

// A line over the limit, or not base64 when lines are base64, is set
// aside with its line number (the long one without its bytes) and the
// lines after it are read; without a dead-letter sink the run stops there.
func TestLineSourceSetsAsideBadLinesAndReadsOn(t *testing.T) {
	const max = 64
	long := strings.Repeat("x", max+1)
	for _, c := range []struct {
		name string
		opt  records.LineOptions
		in   []string
		bad  map[int]records.ErrorKind // line number → kind
	}{
		{"plain", records.LineOptions{MaxLineSize: max}, []string{"a", long, strings.Repeat("y", max), long + "\r", "b", long + long + long}, map[int]records.ErrorKind{2: records.KindSize, 4: records.KindSize, 6: records.KindSize}},
		{"base64", records.LineOptions{MaxLineSize: max, Base64: true}, []string{"YQ==", "not base64!", long, "", "Yg=="}, map[int]records.ErrorKind{2: records.KindFormat, 3: records.KindSize}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := strings.Join(c.in, "\n") // the last line has no line feed
			var out, dead bytes.Buffer
			p := &records.Pipeline{Source: records.NewLineSource(strings.NewReader(in), c.opt), Transform: records.TransformFunc(func(context.Context, *records.Record) error { return nil }),
				Sink: records.NewLineSink(&out, c.opt), DeadLetter: records.NewLineDeadLetterSink(&dead), Workers: 3}
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
			var wantOut []string
			for i, l := range c.in {
				if _, bad := c.bad[i+1]; !bad {
					wantOut = append(wantOut, strings.TrimSuffix(l, "\r"))
				}
			}
			if got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); strings.Join(got, "|") != strings.Join(wantOut, "|") {
				t.Errorf("written %q, want %q", got, wantOut)
			}
			lines := strings.Split(strings.TrimSuffix(dead.String(), "\n"), "\n")
			if len(lines) != len(c.bad) {
				t.Fatalf("dead letters %q, want %d", lines, len(c.bad))
			}
			for _, l := range lines {
				var d struct{ Source, Kind, Error, Value string }
				if err := json.Unmarshal([]byte(l), &d); err != nil {
					t.Fatal(err)
				}
				var n int
				fmt.Sscanf(d.Source, "line %d", &n)
				kind, ok := c.bad[n]
				switch {
				case !ok || d.Kind != string(kind):
					t.Errorf("dead letter %s, want line %d to be %v", l, n, kind)
				case kind == records.KindSize && (d.Value != "" || !strings.Contains(d.Error, fmt.Sprint(max))):
					t.Errorf("dead letter of a long line %s: holds its value, or not the limit", l)
				case kind == records.KindFormat && d.Value != c.in[n-1]:
					t.Errorf("dead letter %s, want the line as read", l)
				}
			}
			p = &records.Pipeline{Source: records.NewLineSource(strings.NewReader(in), c.opt), Transform: records.TransformFunc(func(context.Context, *records.Record) error { return nil }), Sink: records.NewLineSink(io.Discard, c.opt)}
			err := p.Run(ctx)
			first := 1 << 30
			for n := range c.bad {
				first = min(first, n)
			}
			if err == nil || !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", first)) || (c.bad[first] == records.KindSize) != errors.Is(err, records.ErrLineTooLong) {
				t.Fatalf("without a dead-letter sink: %v, want the error of line %d", err, first)
			}
		})
	}
}

// A DataRowRecord is checked before it is decoded: a name twice is bad
// JSON, names equal up to case make it no DataRowRecord (Go would read
// both into one field), whole or as a field. Decrypted values the
// configuration refuses are format errors whose detail does not carry the
// plaintext's names.
func TestDecryptChecksDataRowRecordTextAndPlaintext(t *testing.T) {
	f := newFactory(t, memstore.New(), "svc", "prod")
	enc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p")})
	whole := string(encryptOne(t, enc, &records.Record{Value: []byte(`{"secret":1,"secret2":2}`)}).Value)
	notJSON := string(encryptOne(t, enc, &records.Record{Value: []byte("not json")}).Value)
	dupInside := string(encryptOne(t, enc, &records.Record{Value: []byte(`{"secret":1,"secret":2}`)}).Value)
	fenc := encrypter(t, records.EncryptConfig{Factory: f, Partition: records.FixedPartition("p"), Fields: []string{"f"}})
	field := string(encryptOne(t, fenc, &records.Record{Value: []byte(`{"f":"v","g":1}`)}).Value)
	dec := decrypter(t, records.DecryptConfig{Factory: f, JSON: true})
	fdec := decrypter(t, records.DecryptConfig{Factory: f, Fields: []string{"f"}})
	for _, c := range []struct {
		name  string
		dec   *records.Decrypter
		value string
		want  error
		named bool // the chain holds the input's *jsonscan.Error
	}{
		{"whole", dec, whole, nil, false},
		{"Data twice", dec, strings.Replace(whole, `"Data":`, `"Data":"AAAA","Data":`, 1), records.ErrJSON, true},
		{"data and Data", dec, strings.Replace(whole, `"Data":`, `"data":"AAAA","Data":`, 1), records.ErrFormat, true},
		{"KEY and Key inside Key", dec, strings.Replace(whole, `{"Key":{`, `{"Key":{"KEY":1,`, 1), records.ErrFormat, true},
		{"decrypts to no JSON", dec, notJSON, records.ErrFormat, false},
		{"decrypts to a duplicate", dec, dupInside, records.ErrFormat, false},
		{"field", fdec, field, nil, false},
		{"field with Key and KEY", fdec, strings.Replace(field, `"f":{"Key":{`, `"f":{"KEY":1,"Key":{`, 1), records.ErrFormat, true},
		{"field with Key twice", fdec, strings.Replace(field, `"f":{"Key":{`, `"f":{"Key":1,"Key":{`, 1), records.ErrJSON, true},
	} {
		r := &records.Record{Value: []byte(c.value)}
		if c.value == whole || c.value == field {
			if c.value == whole && c.name != "whole" || c.value == field && c.name != "field" {
				t.Fatalf("%s: the replacement changed nothing", c.name)
			}
		}
		err := c.dec.Transform(ctx, r)
		var je *jsonscan.Error
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) || errors.As(err, &je) != c.named {
			t.Errorf("%s: %v, want %v (input JSON error in the chain: %v)", c.name, err, c.want, c.named)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the message %q shows the plaintext", c.name, err)
		}
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

// A line is written as soon as it is read, even when the lines after it
// (blank ones included) are not there yet: the reader never holds a record
// back waiting for the next.
func TestLineSourceDoesNotHoldARecordBackForTheNext(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	out := &syncBuffer{}
	p := &records.Pipeline{Source: records.NewLineSource(pr, records.LineOptions{}), Transform: records.TransformFunc(func(context.Context, *records.Record) error { return nil }), Sink: records.NewLineSink(out, records.LineOptions{}), Workers: 2}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	want := ""
	for i, chunk := range []string{"{\"a\":1}\n", "{\"b\":2}\n\n  \n", "{\"c\":3}\n{\"d\":4}\n\n"} {
		if _, err := pw.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(chunk, "\n") {
			if strings.TrimSpace(l) != "" {
				want += l + "\n"
			}
		}
		deadline := time.Now().Add(10 * time.Second)
		for out.String() != want {
			if time.Now().After(deadline) {
				t.Fatalf("after chunk %d the sink has %q, want %q: a record waits for the next line", i, out.String(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
