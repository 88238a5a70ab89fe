package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/internal/kafkatest"
	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/stream"
)

// leakRun is one command's standard output and standard error (where the
// logs and the summary go).
type leakRun struct {
	args           []string
	stdout, stderr []byte
}

// needles are byte strings that must appear in no output, with a name
// saying what each is (never the value).
type needles map[string][]byte

// addSecret adds b and its usual encodings.
func (n needles) addSecret(what string, b []byte) {
	n[what+" (raw)"] = b
	n[what+" (hex)"] = []byte(hex.EncodeToString(b))
	n[what+" (HEX)"] = []byte(strings.ToUpper(hex.EncodeToString(b)))
	n[what+" (base64)"] = []byte(base64.StdEncoding.EncodeToString(b))
	n[what+" (base64 raw)"] = []byte(base64.RawStdEncoding.EncodeToString(b))
	n[what+" (base64url)"] = []byte(base64.RawURLEncoding.EncodeToString(b))
}

// Every command, run with debug logs in both formats and --stats, prints
// no master key, system, intermediate or data key, plaintext or chunk of
// ciphertext, in any encoding, on standard output or standard error.
func TestNoKeyMaterialOrPlaintextInLogsOrStats(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	marker := "s3cr3t-" + hex.EncodeToString(randomBytes(t, 8))
	var plain bytes.Buffer
	for i := range 3000 {
		fmt.Fprintf(&plain, "line %d of the report: %s is the account of tenant t%d\n", i, marker, i%7)
	}
	var recs bytes.Buffer
	for i := range 200 {
		fmt.Fprintf(&recs, "{\"tenant\":\"t%d\",\"ssn\":\"%s-%04d\",\"n\":%d}\n", i%7, marker, i, i)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plainFile, recsFile := write("plain.txt", plain.Bytes()), write("recs.jsonl", recs.Bytes())
	out := func(name string) string { return filepath.Join(dir, name) }

	var runs []leakRun
	extraEnv := []string{}
	formats := []string{"text", "json"}
	run := func(args ...string) {
		t.Helper()
		i := len(runs)
		full := append(append([]string{}, args...), "--log-level", "debug", "--log-format", formats[i%2], "--stats="+formats[(i/2)%2])
		cmd := command(t, home, full...)
		cmd.Env = append(cmd.Env, extraEnv...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", full, err, se.String())
		}
		if !bytes.Contains(se.Bytes(), []byte(`"level":"DEBUG"`)) && !bytes.Contains(se.Bytes(), []byte("level=DEBUG")) {
			t.Fatalf("%v: no debug log line on standard error:\n%s", full, se.String())
		}
		if !bytes.Contains(se.Bytes(), []byte("enc-pipe: stats:")) && !bytes.Contains(se.Bytes(), []byte(`{"command":`)) {
			t.Fatalf("%v: no --stats summary:\n%s", full, se.String())
		}
		runs = append(runs, leakRun{full, so.Bytes(), se.Bytes()})
	}

	run("encrypt", "--partition", "p", "-i", plainFile, "-o", out("plain.ep"))
	run("decrypt", "-i", out("plain.ep"), "-o", out("plain.dec"))
	run("decrypt", "--range", "1000:5000", "-i", out("plain.ep"), "-o", out("plain.range"))
	run("inspect", out("plain.ep"))
	run("records", "encrypt", "--partition-field", "tenant", "-i", recsFile, "-o", out("recs.drr"))
	run("records", "decrypt", "-i", out("recs.drr"), "-o", out("recs.dec"))
	run("records", "encrypt", "--partition-field", "tenant", "--fields", "ssn", "-i", recsFile, "-o", out("recs.fields"))
	run("records", "decrypt", "--partition-field", "tenant", "--fields", "ssn", "-i", out("recs.fields"), "-o", out("recs.fields.dec"))
	run("keys", "list")
	run("keys", "rotate", "--partition", "p")
	run("keys", "list")
	for _, f := range []string{"plain.dec", "plain.range", "recs.dec", "recs.fields.dec"} {
		if b, err := os.ReadFile(out(f)); err != nil || !bytes.Contains(b, []byte(marker)) {
			t.Fatalf("%s does not hold the plaintext (%v): the commands did not do their work", f, err)
		}
	}

	t.Run("kafka", func(t *testing.T) {
		addr := testenv.Var(t, testenv.Kafka)
		names := kafkatest.Topics(t, addr, 1, "in", "enc", "dec")
		w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: names[0], RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
		var msgs []kafka.Message
		for _, line := range strings.Split(strings.TrimSpace(recs.String()), "\n") {
			msgs = append(msgs, kafka.Message{Value: []byte(line)})
		}
		if err := w.WriteMessages(kctx, msgs...); err != nil {
			t.Fatal(err)
		}
		w.Close()
		n := strconv.Itoa(len(msgs))
		common := []string{"--brokers", addr, "--session-timeout", "3s", "--idle-exit", "5s", "--max-records", n}
		run(append([]string{"kafka", "encrypt", "--from", names[0], "--to", names[1], "--group", names[1] + "-g", "--partition", "p", "--format", "drr"}, common...)...)
		run(append([]string{"kafka", "decrypt", "--from", names[1], "--to", names[2], "--group", names[2] + "-g"}, common...)...)
		if got := kafkaValues(t, addr, names[2], 1); len(got) != len(msgs) || !strings.Contains(got[0], marker) {
			t.Fatalf("kafka round trip gave %d records", len(got))
		}
	})
	t.Run("s3", func(t *testing.T) {
		ep := s3test.Endpoint(t)
		bucket := s3test.Bucket(t, s3test.Client(t, ep))
		extraEnv = []string{"ENC_PIPE_S3_ENDPOINT=" + ep, "ENC_PIPE_S3_REGION=us-east-1"}
		defer func() { extraEnv = nil }()
		run("encrypt", "--partition", "p", "-i", plainFile, "-o", "s3://"+bucket+"/plain.ep")
		run("decrypt", "-i", "s3://"+bucket+"/plain.ep", "-o", out("plain.s3.dec"))
		if b, err := os.ReadFile(out("plain.s3.dec")); err != nil || !bytes.Equal(b, plain.Bytes()) {
			t.Fatalf("S3 round trip: %v", err)
		}
	})

	// What must not appear: the master key, the system and intermediate
	// keys of partition p, the stream's data key and a record's data row
	// key, the plaintext and a window of ciphertext.
	n := needles{}
	master, err := os.ReadFile(filepath.Join(home, "master.key"))
	if err != nil || len(master) != 32 {
		t.Fatalf("master.key: %v (%d bytes)", err, len(master))
	}
	n.addSecret("master key", master)
	ep, err := os.ReadFile(out("plain.ep"))
	if err != nil {
		t.Fatal(err)
	}
	keys := unwrapKeys(t, home, master, ep, firstLine(t, out("recs.drr")))
	for what, k := range keys {
		n.addSecret(what, k)
	}
	n["marker"] = []byte(marker)
	n["plaintext line"] = plain.Bytes()[:60]
	n.addSecret("plaintext head", plain.Bytes()[:30])
	n.addSecret("ciphertext window", ep[len(ep)/2:len(ep)/2+48])
	for _, r := range runs {
		for what, needle := range n {
			for _, o := range []struct {
				name string
				b    []byte
			}{{"stdout", r.stdout}, {"stderr", r.stderr}} {
				if bytes.Contains(o.b, needle) {
					t.Errorf("%v: %s found on %s", r.args, what, o.name)
				}
			}
		}
	}
	if len(keys) < 4 {
		t.Fatalf("only %d keys unwrapped: the check is weaker than it claims", len(keys))
	}
	t.Logf("%d commands checked against %d needles", len(runs), len(n))
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func firstLine(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(nil, 1<<20)
	if !s.Scan() {
		t.Fatalf("%s is empty", path)
	}
	return bytes.Clone(s.Bytes())
}

// unwrapKeys opens, with the library and the home's master key, the keys
// behind a stream and a DataRowRecord: the system key, the stream's
// intermediate key, the stream's data key and the record's data row key.
func unwrapKeys(t *testing.T, home string, master, streamBytes, drrLine []byte) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	db, store, err := sqlitedb.Open(ctx, filepath.Join(home, "metastore.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kms, err := statickms.New(bytes.Clone(master))
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: defaultService, Product: defaultProduct}, store, kms, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]byte{}
	copyOut := func(what string, s interface {
		WithBytes(func([]byte) error) error
		Close() error
	}) {
		defer s.Close()
		s.WithBytes(func(b []byte) error { out[what] = bytes.Clone(b); return nil })
	}

	hdr, err := stream.ReadHeader(bytes.NewReader(streamBytes))
	if err != nil {
		t.Fatal(err)
	}
	var rec envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(hdr.KeyRecord(), &rec); err != nil {
		t.Fatal(err)
	}
	sess, err := f.GetSession(hdr.Partition())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	dk, err := sess.OpenDataKey(ctx, &rec)
	if err != nil {
		t.Fatal(err)
	}
	copyOut("stream data key", dk)

	var drr struct{ Key *envelope.EnvelopeKeyRecord }
	if err := json.Unmarshal(drrLine, &drr); err != nil || drr.Key == nil || drr.Key.ParentKeyMeta == nil {
		t.Fatalf("first DataRowRecord: %v", err)
	}
	partition := regexp.MustCompile(`^_IK_(.*)_` + defaultService + `_` + defaultProduct + `$`).FindStringSubmatch(drr.Key.ParentKeyMeta.ID)
	if partition == nil {
		t.Fatalf("intermediate key id %q", drr.Key.ParentKeyMeta.ID)
	}
	rs, err := f.GetSession(partition[1])
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	drk, err := rs.OpenDataKey(ctx, drr.Key)
	if err != nil {
		t.Fatal(err)
	}
	copyOut("record data row key", drk)

	// The system key through the KMS, the intermediate key through it.
	ikRec, err := store.Load(ctx, rec.ParentKeyMeta.ID, rec.ParentKeyMeta.Created)
	if err != nil {
		t.Fatal(err)
	}
	skRec, err := store.Load(ctx, ikRec.ParentKeyMeta.ID, ikRec.ParentKeyMeta.Created)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := kms.DecryptKey(ctx, skRec.EncryptedKey)
	if err != nil {
		t.Fatal(err)
	}
	out["system key"] = sk
	out["intermediate key"] = openBlob(t, sk, ikRec.EncryptedKey)
	return out
}

// openBlob opens an Asherah blob: ciphertext || tag || nonce.
func openBlob(t *testing.T, key, blob []byte) []byte {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	ns := gcm.NonceSize()
	pt, err := gcm.Open(nil, blob[len(blob)-ns:], blob[:len(blob)-ns], nil)
	if err != nil {
		t.Fatalf("opening a stored key: %v", err)
	}
	return pt
}

// obsProcess is a running enc-pipe whose structured logs (JSON) are read
// as they come, to learn the metrics server's address.
type obsProcess struct {
	cmd    *exec.Cmd
	addr   chan string
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func (l *lockedBuffer) write(p []byte) { l.mu <- struct{}{}; l.b.Write(p); <-l.mu }
func (l *lockedBuffer) String() string {
	l.mu <- struct{}{}
	defer func() { <-l.mu }()
	return l.b.String()
}

// startObserved starts cmd with --metrics-addr 127.0.0.1:0 and JSON logs.
func startObserved(t *testing.T, cmd *exec.Cmd) *obsProcess {
	t.Helper()
	cmd.Args = append(cmd.Args, "--metrics-addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "info")
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &obsProcess{cmd: cmd, addr: make(chan string, 1), stderr: &lockedBuffer{mu: make(chan struct{}, 1)}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(pipe)
		for s.Scan() {
			line := s.Bytes()
			p.stderr.write(append(bytes.Clone(line), '\n'))
			var rec struct{ Msg, Addr string }
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "serving metrics" {
				p.addr <- rec.Addr
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() }) // an error once it has exited
	return p
}

func (p *obsProcess) address(t *testing.T) string {
	t.Helper()
	select {
	case a := <-p.addr:
		return a
	case err := <-p.done:
		t.Fatalf("enc-pipe ended before serving metrics: %v\n%s", err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("no \"serving metrics\" log line:\n%s", p.stderr.String())
	}
	return ""
}

func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, b
}

// scrape reads /metrics and parses it with Prometheus' own parser.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// value is the sum of a family's counters or gauges, or of its histograms'
// sample counts, over the series whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	var v float64
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		ok := true
		for i := 0; i+1 < len(want); i += 2 {
			ok = ok && labels[want[i]] == want[i+1]
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v
}

// A Prometheus scrape of a running kafka encrypt shows what the run did:
// records and their bytes as produced, one intermediate key created per
// tenant and one system key, each stored once, no lag left per partition;
// /healthz answers 200 while the backends do; SIGTERM ends it as before.
func TestPrometheusScrapeOfAKafkaRunCountsWhatItDid(t *testing.T) {
	addr := testenv.Var(t, testenv.Kafka)
	const parts, n, tenants = 2, 600, 12
	names := kafkatest.Topics(t, addr, parts, "in", "enc")
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: names[0], Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	var recordBytes int
	for i := range n {
		m := kafka.Message{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"seq":%d}`, i),
			Headers: []kafka.Header{{Key: "tenant", Value: fmt.Appendf(nil, "t%d", i%tenants)}}}
		recordBytes += len(m.Key) + len(m.Value) + len("tenant") + len(m.Headers[0].Value)
		msgs = append(msgs, m)
	}
	if err := w.WriteMessages(kctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cmd := kafkaCmd(t, t.TempDir(), addr, "encrypt", names[0], names[1], "g", "--partition-from", "header:tenant", "--idle-exit", "120s")
	p := startObserved(t, cmd)
	base := "http://" + p.address(t)

	var fams map[string]*dto.MetricFamily
	waitFor(t, "every record committed", func() bool {
		fams = scrape(t, base)
		return value(fams, "records_acked_total") == n
	})
	for _, c := range []struct {
		name string
		want float64
		lbl  []string
	}{
		{"records_read_total", n, nil},
		{"records_written_total", n, nil},
		{"records_deadlettered_total", 0, nil},
		{"records_read_bytes_total", float64(recordBytes), nil},
		{"records_inflight", 0, nil},
		{"envelope_sk_created_total", 1, nil},
		{"envelope_ik_created_total", tenants, nil},
		{"ael_metastore_store_seconds", 1 + tenants, nil}, // histogram: one sample per Store
		{"ael_kms_encryptkey_seconds", 1, nil},            // the new system key
		{"kafka_lag", 0, nil},
		{"records_errors_total", 0, nil},
		{"envelope_metastore_errors_total", 0, nil},
	} {
		if got := value(fams, c.name, c.lbl...); got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if got := len(fams["kafka_lag"].GetMetric()); got != parts {
		t.Errorf("kafka_lag has %d series, want one per partition (%d)", got, parts)
	}
	if value(fams, "secret_allocated_total") <= 0 || fams["go_goroutines"] == nil {
		t.Error("securebuf or Go runtime metrics missing from the scrape")
	}
	code, body := httpGet(t, base+"/healthz")
	var rep healthReport
	if err := json.Unmarshal(body, &rep); err != nil || code != http.StatusOK || rep.Status != "ok" || rep.Metastore != "ok" || rep.KMS != "ok" {
		t.Fatalf("/healthz: %d %s (%v)", code, body, err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-p.done; exitCodeOf(t, err) != 128+int(syscall.SIGTERM) {
		t.Fatalf("after SIGTERM: %v\n%s", err, p.stderr.String())
	}
}

// /healthz reports whether the metastore answers: 200 with a private
// PostgreSQL up, 503 naming the metastore once it is stopped, 200 again
// once it is back.
func TestHealthzTurns503WhenTheMetastoreStops(t *testing.T) {
	priv := testenv.StartPrivate(t, testenv.ServicePostgres)
	dsn := priv.PostgresDSN()
	home := t.TempDir()
	mustRun(t, command(t, home, "init", "--metastore", dsn))
	// encrypt opens the keys, then waits for its input: a long-running
	// process with a backend, as long as the test keeps stdin open.
	cmd := command(t, home, "encrypt", "--metastore", dsn, "--partition", "p", "-o", filepath.Join(t.TempDir(), "out.ep"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startObserved(t, cmd)
	base := "http://" + p.address(t)
	health := func() (int, healthReport) {
		code, body := httpGet(t, base+"/healthz")
		var rep healthReport
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("/healthz body %q: %v", body, err)
		}
		return code, rep
	}
	waitFor(t, "/healthz 200", func() bool { c, _ := health(); return c == http.StatusOK })
	priv.Stop(t, testenv.ServicePostgres)
	var rep healthReport
	waitFor(t, "/healthz 503", func() bool { c, r := health(); rep = r; return c == http.StatusServiceUnavailable })
	if rep.Status != "fail" || rep.Metastore != "fail" || rep.Error == "" || strings.Contains(rep.Error, "encpipe:encpipe") {
		t.Errorf("report with the metastore down: %+v", rep)
	}
	priv.Start(t, testenv.ServicePostgres)
	waitFor(t, "/healthz 200 again", func() bool { c, _ := health(); return c == http.StatusOK })
	stdin.Write([]byte("some plaintext"))
	stdin.Close()
	if err := <-p.done; err != nil {
		t.Fatalf("encrypt: %v\n%s", err, p.stderr.String())
	}
}

// statsOf runs enc-pipe with --stats=json and returns its exit code and
// the summary line.
func statsOf(t *testing.T, home string, args ...string) (int, runStats) {
	t.Helper()
	cmd := command(t, home, append(args, "--stats=json")...)
	var se bytes.Buffer
	cmd.Stderr = &se
	err := cmd.Run()
	code := 0
	if err != nil {
		code = exitCodeOf(t, err)
	}
	for _, line := range strings.Split(se.String(), "\n") {
		if strings.HasPrefix(line, `{"command":`) {
			var s runStats
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatal(err)
			}
			return code, s
		}
	}
	t.Fatalf("%v: no JSON summary:\n%s", args, se.String())
	return 0, runStats{}
}

// The --stats summary counts what the run did, derived from its input and
// output: bytes, chunks, keys created then loaded, KMS calls, and a
// tampered stream's failure by kind.
func TestStatsSummaryCountsTheRun(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	plain := pseudoRandom(5*65536 + 123)
	in, enc, dec := filepath.Join(dir, "in"), filepath.Join(dir, "in.ep"), filepath.Join(dir, "out")
	if err := os.WriteFile(in, plain, 0o600); err != nil {
		t.Fatal(err)
	}
	code, s := statsOf(t, home, "encrypt", "-i", in, "-o", enc)
	ct, err := os.ReadFile(enc)
	if code != 0 || err != nil {
		t.Fatalf("encrypt: exit %d, %v", code, err)
	}
	hdr, err := stream.ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	per := int64(hdr.ChunkSize() + stream.TagSize)
	chunks := (int64(len(ct)) - hdr.Len() + per - 1) / per
	want := runStats{Command: "encrypt", InputBytes: int64(len(plain)), OutputBytes: int64(len(ct)), EncryptedBytes: int64(len(plain)),
		Chunks: chunks, Streams: 1, KeysCreated: 2, DataKeysCreated: 1, KMSCalls: 1}
	got := runStats{Command: s.Command, InputBytes: s.InputBytes, OutputBytes: s.OutputBytes, EncryptedBytes: s.EncryptedBytes,
		Chunks: s.Chunks, Streams: s.Streams, KeysCreated: s.KeysCreated, DataKeysCreated: s.DataKeysCreated, KMSCalls: s.KMSCalls}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("encrypt summary\n got %+v\nwant %+v", got, want)
	}
	if s.MetastoreCalls == 0 || s.ElapsedSeconds <= 0 || s.ThroughputBytes <= 0 {
		t.Errorf("encrypt summary without metastore calls or time: %+v", s)
	}

	code, s = statsOf(t, home, "decrypt", "-i", enc, "-o", dec)
	if code != 0 || s.DecryptedBytes != int64(len(plain)) || s.Chunks != chunks || s.SystemKeysLoaded != 1 ||
		s.IntermediateKeysLoaded != 1 || s.DataKeysOpened != 1 || s.KeysCreated != 0 || s.KMSCalls != 1 || len(s.Errors) != 0 {
		t.Errorf("decrypt: exit %d, summary %+v", code, s)
	}

	// records: every line read, written and counted once
	lines := []byte("{\"tenant\":\"a\",\"n\":1}\n{\"tenant\":\"b\",\"n\":2}\n{\"tenant\":\"a\",\"n\":3}\n")
	recs, drr := filepath.Join(dir, "recs.jsonl"), filepath.Join(dir, "recs.drr")
	if err := os.WriteFile(recs, lines, 0o600); err != nil {
		t.Fatal(err)
	}
	n := int64(bytes.Count(lines, []byte("\n")))
	code, s = statsOf(t, home, "records", "encrypt", "--partition-field", "tenant", "-i", recs, "-o", drr)
	if code != 0 || s.RecordsRead != n || s.RecordsWritten != n || s.RecordsDead != 0 {
		t.Errorf("records encrypt: exit %d, summary %+v", code, s)
	}

	ct[len(ct)-3] ^= 1
	if err := os.WriteFile(enc, ct, 0o600); err != nil {
		t.Fatal(err)
	}
	code, s = statsOf(t, home, "decrypt", "-i", enc, "-o", dec)
	if code != exitIntegrity || s.ExitCode != exitIntegrity || s.Errors["stream.decrypt.auth"] != 1 || len(s.Errors) != 1 {
		t.Errorf("tampered decrypt: exit %d, summary %+v", code, s)
	}
}

// Bad observability settings are usage errors, before anything is done.
func TestObservabilityFlagsAreChecked(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	for _, args := range [][]string{
		{"--log-level", "verbose"},
		{"--log-format", "xml"},
		{"--stats=yaml"},
		{"--metrics-addr", "256.0.0.1:bad"},
	} {
		cmd := command(t, home, append([]string{"encrypt", "-o", "/dev/null"}, args...)...)
		cmd.Stdin = strings.NewReader("x")
		out, err := cmd.CombinedOutput()
		if code := exitCodeOf(t, err); code != exitUsage || !bytes.HasPrefix(out, []byte("enc-pipe: error: --")) {
			t.Errorf("%v: exit %d, want %d with one error line:\n%s", args, code, exitUsage, out)
		}
		if _, err := os.Stat(home); err == nil {
			t.Fatalf("%v: the home was created before the flag was checked", args)
		}
	}
	cmd := command(t, home, "version")
	cmd.Env = append(cmd.Env, envLogLevel+"=loud")
	if out, err := cmd.CombinedOutput(); exitCodeOf(t, err) != exitUsage {
		t.Errorf("%s=loud: %v\n%s", envLogLevel, err, out)
	}
}
