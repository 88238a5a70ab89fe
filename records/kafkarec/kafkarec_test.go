package kafkarec_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
	"github.com/enc-pipe/enc-pipe/internal/kafkatest"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/records/kafkarec"
)

var ctx = context.Background()

// Fast group settings for kfake (its minimum session timeout is lowered).
func fastGroup(cfg kafkarec.Config) kafkarec.Config {
	cfg.HeartbeatInterval = 300 * time.Millisecond
	cfg.SessionTimeout = 3 * time.Second
	cfg.RebalanceTimeout = 3 * time.Second
	return cfg
}

func broker(t testing.TB) string { return testenv.Var(t, testenv.Kafka) }

func newFactory(t testing.TB, store envelope.Metastore) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte(asherahvectors.MasterKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, store, kms, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// msg is what the tests compare: partition, key, value, headers.
type msg struct {
	Partition int
	Key       string
	Value     string
	Headers   string
}

func toMsg(m kafka.Message) msg {
	var h []string
	for _, x := range m.Headers {
		h = append(h, x.Key+"="+string(x.Value))
	}
	return msg{Partition: m.Partition, Key: string(m.Key), Value: string(m.Value), Headers: strings.Join(h, ",")}
}

// produce writes n records spread over tenants; each record's value holds
// its sequence number within its key, so order can be checked.
func produce(t testing.TB, addr, topic string, n, tenants int) []kafka.Message {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := range n {
		tenant := fmt.Sprintf("tenant-%d", i%tenants)
		msgs = append(msgs, kafka.Message{
			Key:     fmt.Appendf(nil, "user-%d", i%(tenants*3)),
			Value:   fmt.Appendf(nil, `{"tenant":%q,"seq":%d,"secret":"s3cr3t-%d"}`, tenant, i, i),
			Headers: []kafka.Header{{Key: "tenant", Value: []byte(tenant)}, {Key: "trace", Value: []byte(strconv.Itoa(i))}},
			Time:    time.UnixMilli(1_700_000_000_000 + int64(i)),
		})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func encrypter(t testing.TB, f *envelope.SessionFactory, cfg records.EncryptConfig) *records.Encrypter {
	t.Helper()
	cfg.Factory = f
	e, err := records.NewEncrypter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func decrypter(t testing.TB, f *envelope.SessionFactory, cfg records.DecryptConfig) *records.Decrypter {
	t.Helper()
	cfg.Factory = f
	d, err := records.NewDecrypter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func sortedMsgs(ms []kafka.Message) []msg {
	out := make([]msg, len(ms))
	for i, m := range ms {
		out[i] = toMsg(m)
	}
	slices.SortFunc(out, func(a, b msg) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return out
}

// checkOrder checks that within each partition of got the records of each
// partition of want come in want's order.
func checkOrder(t testing.TB, want, got []kafka.Message) {
	t.Helper()
	pos := map[string]int64{}
	for _, m := range want {
		pos[string(m.Value)] = m.Offset
	}
	last := map[int]int64{}
	for _, m := range slices.SortedFunc(slices.Values(got), func(a, b kafka.Message) int {
		return int(a.Offset - b.Offset)
	}) {
		o := pos[string(m.Value)]
		if l, ok := last[m.Partition]; ok && o < l {
			t.Fatalf("partition %d: source offset %d after %d", m.Partition, o, l)
		}
		last[m.Partition] = o
	}
}

func TestKafkaEncryptThenDecryptKeepsEveryRecordAndOrder(t *testing.T) {
	for _, format := range []records.Format{records.FormatBinary, records.FormatDRR} {
		t.Run(format.String(), func(t *testing.T) { testKafkaRoundTrip(t, format) })
	}
}

func testKafkaRoundTrip(t *testing.T, format records.Format) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 4, "plain", "enc", "dec")
	plain, enc, dec := names[0], names[1], names[2]
	f := newFactory(t, memstore.New())
	const n = 2000
	sent := produce(t, addr, plain, n, 25)
	src := kafkatest.ReadAll(t, addr, plain, 4, n, 60*time.Second) // with their partitions and offsets

	st, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{
		Brokers: []string{addr}, From: plain, To: enc, Group: enc + "-g", IdleTimeout: 4 * time.Second, Workers: 4,
		Transform: encrypter(t, f, records.EncryptConfig{Partition: records.HeaderPartition("tenant"), Format: format}),
	}))
	if err != nil || st.Written != n {
		t.Fatalf("encrypt: %v, %+v", err, st)
	}
	encrypted := kafkatest.ReadAll(t, addr, enc, 4, n, 60*time.Second)
	for _, m := range encrypted {
		if bytes.Contains(m.Value, []byte("s3cr3t")) {
			t.Fatalf("plaintext in the encrypted topic: %q", m.Value)
		}
	}
	st, err = kafkarec.Run(ctx, fastGroup(kafkarec.Config{
		Brokers: []string{addr}, From: enc, To: dec, Group: dec + "-g", IdleTimeout: 4 * time.Second, Workers: 4,
		Transform: decrypter(t, f, records.DecryptConfig{Partition: records.HeaderPartition("tenant"), JSON: true}),
	}))
	if err != nil || st.Written != n || st.Acked != n {
		t.Fatalf("decrypt: %v, %+v", err, st)
	}
	got := kafkatest.ReadAll(t, addr, dec, 4, n, 60*time.Second)
	if len(got) != n {
		t.Fatalf("%d records decrypted, want %d", len(got), n)
	}
	if w, g := sortedMsgs(src), sortedMsgs(got); !slices.Equal(w, g) {
		t.Fatalf("decrypted records differ from those produced (first: %+v vs %+v)", w[0], g[0])
	}
	times := map[string]time.Time{}
	for _, m := range sent {
		times[string(m.Value)] = m.Time
	}
	for _, m := range got {
		if !m.Time.Equal(times[string(m.Value)]) {
			t.Fatalf("timestamp %v, want %v", m.Time, times[string(m.Value)])
		}
	}
	checkOrder(t, src, got)
}

func TestKafkaPoisonRecordsReachTheDeadLetterTopicWithTheirReason(t *testing.T) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 2, "in", "out", "dlq")
	in, out, dlq := names[0], names[1], names[2]
	f := newFactory(t, memstore.New())
	enc := encrypter(t, f, records.EncryptConfig{Partition: records.KeyPartition(), Format: records.FormatBinary})
	w := &kafkarec.Writer{W: &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}, E: enc}
	defer w.Close()
	good := []kafka.Message{{Key: []byte("a"), Value: []byte("one")}, {Key: []byte("b"), Value: []byte("two")}}
	if err := w.WriteMessages(ctx, good...); err != nil {
		t.Fatal(err)
	}
	// Tampered, foreign and unknown records, written directly.
	raw := &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond}
	defer raw.Close()
	poison := []kafka.Message{
		{Key: []byte("a"), Value: []byte("not encrypted at all")},
		{Key: []byte("c"), Value: []byte(`{"Key":{"Created":1,"Key":"AAAA","ParentKeyMeta":{"KeyId":"_IK_c_svc_prod","Created":1}},"Data":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}`)},
	}
	if err := raw.WriteMessages(ctx, poison...); err != nil {
		t.Fatal(err)
	}
	st, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{
		Brokers: []string{addr}, From: in, To: out, Group: out + "-g", DeadLetterTopic: dlq, IdleTimeout: 3 * time.Second,
		Transform: decrypter(t, f, records.DecryptConfig{}),
	}))
	if err != nil || st.Written != 2 || st.DeadLettered != 2 || st.Acked != 4 {
		t.Fatalf("run: %v %+v", err, st)
	}
	letters := kafkatest.ReadAll(t, addr, dlq, 2, 2, 60*time.Second)
	kinds := map[string]string{}
	for _, m := range letters {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[records.HeaderError] == "" || !strings.HasPrefix(h[records.HeaderSource], in+"/") {
			t.Fatalf("dead letter headers %v", h)
		}
		kinds[string(m.Value)] = h[records.HeaderErrorKind]
	}
	if kinds[string(poison[0].Value)] != "format" || kinds[string(poison[1].Value)] != "key" {
		t.Fatalf("dead letter kinds %v", kinds)
	}
	decrypted := kafkatest.ReadAll(t, addr, out, 2, 2, 60*time.Second)
	if w, g := []string{"one", "two"}, []string{string(decrypted[0].Value), string(decrypted[1].Value)}; !slices.Equal(w, slices.Sorted(slices.Values(g))) {
		t.Fatalf("decrypted %v", g)
	}
}

func TestKafkaStopsAtAPoisonRecordWithoutDeadLetterTopic(t *testing.T) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 1, "in", "out")
	in, out := names[0], names[1]
	f := newFactory(t, memstore.New())
	raw := &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, BatchTimeout: time.Millisecond}
	defer raw.Close()
	enc := encrypter(t, f, records.EncryptConfig{Partition: records.FixedPartition("p"), Format: records.FormatBinary})
	var msgs []kafka.Message
	for i := range 10 {
		r := &records.Record{Value: fmt.Appendf(nil, "v%d", i)}
		if err := enc.Transform(ctx, r); err != nil {
			t.Fatal(err)
		}
		if i == 6 {
			r.Value[len(r.Value)-1] ^= 1
		}
		msgs = append(msgs, kafka.Message{Value: r.Value})
	}
	if err := raw.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	group := out + "-g"
	_, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{
		Brokers: []string{addr}, From: in, To: out, Group: group, IdleTimeout: 3 * time.Second,
		Transform: decrypter(t, f, records.DecryptConfig{}),
	}))
	if !errors.Is(err, records.ErrAuth) || !strings.Contains(err.Error(), in+"/0@6") {
		t.Fatalf("Run = %v, want an authentication failure at offset 6", err)
	}
	c := &kafka.Client{Addr: kafka.TCP(addr)}
	res, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{in: {0}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Topics[in][0].CommittedOffset; got != 6 {
		t.Fatalf("committed offset %d, want 6 (everything before the poison record, nothing after)", got)
	}
	if got := kafkatest.ReadAll(t, addr, out, 1, 6, 60*time.Second); len(got) != 6 {
		t.Fatalf("%d written", len(got))
	}
}

func TestKafkaTwoInstancesShareTheGroupAndProcessEverything(t *testing.T) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 4, "in", "out")
	in, out := names[0], names[1]
	f := newFactory(t, memstore.New())
	enc := encrypter(t, f, records.EncryptConfig{Partition: records.HeaderPartition("tenant"), Format: records.FormatBinary})
	group := out + "-g"
	var wg sync.WaitGroup
	stats := make([]records.Stats, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stats[i], errs[i] = kafkarec.Run(ctx, fastGroup(kafkarec.Config{
				Brokers: []string{addr}, From: in, To: out, Group: group, IdleTimeout: 8 * time.Second, Transform: enc,
			}))
		}()
	}
	// Let both members join before producing, so that neither reads
	// everything alone (test-servers.md §4).
	waitForMembers(t, addr, group, 2)
	const n = 1000
	produce(t, addr, in, n, 10)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
	}
	if stats[0].Read == 0 || stats[1].Read == 0 || stats[0].Written+stats[1].Written < n {
		t.Fatalf("instances read %d and %d, wrote %d and %d; want both to work and %d in all", stats[0].Read, stats[1].Read, stats[0].Written, stats[1].Written, n)
	}
	got := kafkatest.ReadAll(t, addr, out, 4, n, 60*time.Second)
	seen := map[string]bool{}
	dec := decrypter(t, f, records.DecryptConfig{})
	for _, m := range got {
		r := &records.Record{Key: m.Key, Value: m.Value}
		if err := dec.Transform(ctx, r); err != nil {
			t.Fatal(err)
		}
		seen[string(r.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records, want %d", len(seen), n)
	}
}

func waitForMembers(t testing.TB, addr, group string, n int) {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr)}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err == nil && len(res.Groups) == 1 && len(res.Groups[0].Members) == n && res.Groups[0].GroupState == "Stable" {
			ok := true
			for _, m := range res.Groups[0].Members {
				if len(m.MemberAssignments.Topics) == 0 {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s did not settle with %d members", group, n)
}

func TestKafkaAsherahRecordsDecryptWithTheVectorsKeys(t *testing.T) {
	addr := broker(t)
	names := kafkatest.Topics(t, addr, 1, "in", "out")
	in, out := names[0], names[1]
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
	f := newFactory(t, store)
	raw := &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, BatchTimeout: time.Millisecond}
	defer raw.Close()
	want := map[string]int{} // plaintexts repeat across vectors: a multiset
	total := 0
	for _, v := range set.Records {
		if v.Session.Service != "svc" || v.Session.Product != "prod" || v.Session.RegionSuffix != "" || v.DRRJSON == "" {
			continue
		}
		pt, err := v.Plaintext.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want[hex.EncodeToString(pt)]++
		total++
		if err := raw.WriteMessages(ctx, kafka.Message{Value: []byte(v.DRRJSON)}); err != nil {
			t.Fatal(err)
		}
	}
	if total < 5 {
		t.Fatalf("only %d vectors", total)
	}
	st, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{Brokers: []string{addr}, From: in, To: out, Group: out + "-g", IdleTimeout: 3 * time.Second, Transform: decrypter(t, f, records.DecryptConfig{})}))
	if err != nil || st.Written != int64(total) {
		t.Fatalf("%v %+v, want %d written", err, st, total)
	}
	for _, m := range kafkatest.ReadAll(t, addr, out, 1, total, 60*time.Second) {
		h := hex.EncodeToString(m.Value)
		if want[h] == 0 {
			t.Fatalf("decrypted %q is no vector's plaintext (or one too many)", m.Value)
		}
		want[h]--
	}
}

func TestKafkaReaderWrapperDecryptsWhatWriterWrapperEncrypted(t *testing.T) {
	addr := broker(t)
	topic := kafkatest.Topics(t, addr, 2, "t")[0]
	f := newFactory(t, memstore.New())
	w := &kafkarec.Writer{
		W: &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond},
		E: encrypter(t, f, records.EncryptConfig{Partition: records.KeyPartition(), Format: records.FormatBinary}),
	}
	defer w.Close()
	in := []kafka.Message{{Key: []byte("k1"), Value: []byte("v1"), Headers: []kafka.Header{{Key: "h", Value: []byte("x")}}}, {Key: []byte("k2"), Value: []byte("v2")}}
	if err := w.WriteMessages(ctx, in...); err != nil {
		t.Fatal(err)
	}
	if string(in[0].Value) != "v1" {
		t.Fatal("WriteMessages modified the caller's message")
	}
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("no key")}); !errors.Is(err, records.ErrPartition) {
		t.Fatalf("a message without the key the partition comes from = %v", err)
	}
	r := &kafkarec.Reader{
		R: kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, GroupID: topic + "-g", HeartbeatInterval: 300 * time.Millisecond, SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second, MaxWait: 100 * time.Millisecond}),
		D: decrypter(t, f, records.DecryptConfig{}),
	}
	defer r.Close()
	got := map[string]string{}
	for range 2 {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got[string(m.Key)] = string(m.Value) + fmt.Sprint(len(m.Headers))
	}
	if got["k1"] != "v11" || got["k2"] != "v20" {
		t.Fatalf("read %v", got)
	}
}
