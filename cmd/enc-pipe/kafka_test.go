package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/internal/kafkatest"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

var kctx = context.Background()

func kafkaProduce(t *testing.T, addr, topic string, n int) map[string]bool {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	values := map[string]bool{}
	var msgs []kafka.Message
	for i := range n {
		v := fmt.Sprintf(`{"seq":%d,"pad":"%s"}`, i, strings.Repeat("x", 200))
		values[v] = true
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "k%d", i%50), Value: []byte(v),
			Headers: []kafka.Header{{Key: "tenant", Value: fmt.Appendf(nil, "t%d", i%20)}}})
	}
	if err := w.WriteMessages(kctx, msgs...); err != nil {
		t.Fatal(err)
	}
	return values
}

// highWater is the number of records in topic (sum of high-water marks).
func highWater(t *testing.T, addr, topic string, parts int) int64 {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(kctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			t.Fatal(po.Error)
		}
		n += po.LastOffset
	}
	return n
}

func committed(t *testing.T, addr, group, topic string, parts int) int64 {
	t.Helper()
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	ps := make([]int, parts)
	for i := range ps {
		ps[i] = i
	}
	res, err := c.OffsetFetch(kctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range res.Topics[topic] {
		n += max(p.CommittedOffset, 0)
	}
	return n
}

// kafkaValues reads every record of topic.
func kafkaValues(t *testing.T, addr, topic string, parts int) []string {
	t.Helper()
	total := highWater(t, addr, topic, parts)
	var out []string
	for _, m := range kafkatest.ReadAll(t, addr, topic, parts, int(total), 60*time.Second) {
		out = append(out, string(m.Value))
	}
	return out
}

func kafkaCmd(t *testing.T, home, addr, verb, from, to, group string, extra ...string) *exec.Cmd {
	args := append([]string{"kafka", verb, "--brokers", addr, "--from", from, "--to", to, "--group", group,
		"--session-timeout", "3s", "--idle-exit", "10s"}, extra...)
	return command(t, home, args...)
}

// A process killed with SIGKILL mid-stream and started again loses no
// record: decrypting the destination gives every record produced (some
// perhaps twice).
func TestKafkaCommandKilledMidStreamLosesNoRecord(t *testing.T) {
	addr := testenv.Var(t, testenv.Kafka)
	names := kafkatest.Topics(t, addr, 4, "in", "enc", "dec")
	in, enc, dec := names[0], names[1], names[2]
	home := t.TempDir()
	const n = 30000
	want := kafkaProduce(t, addr, in, n)
	encArgs := []string{"--partition-from", "header:tenant", "--workers", "1"}

	first := kafkaCmd(t, home, addr, "encrypt", in, enc, "g-enc", encArgs...)
	var stderr bytes.Buffer
	first.Stderr = &stderr
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first records to be encrypted", func() bool { return highWater(t, addr, enc, 4) >= 2000 })
	first.Process.Signal(syscall.SIGKILL)
	first.Wait()
	atKill := highWater(t, addr, enc, 4)
	if atKill >= n {
		t.Fatalf("the first process had encrypted all %d records before it was killed: the test proves nothing", n)
	}
	t.Logf("killed after %d of %d records (%d committed)", atKill, n, committed(t, addr, "g-enc", in, 4))

	mustRun(t, kafkaCmd(t, home, addr, "encrypt", in, enc, "g-enc", encArgs...))
	mustRun(t, kafkaCmd(t, home, addr, "decrypt", enc, dec, "g-dec"))
	got := kafkaValues(t, addr, dec, 4)
	seen := map[string]int{}
	for _, v := range got {
		if !want[v] {
			t.Fatalf("decrypted a record that was never produced: %.40q", v)
		}
		seen[v]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct records after the restart, want %d", len(seen), n)
	}
	t.Logf("%d records written for %d produced (%d duplicates)", len(got), n, len(got)-n)
}

// SIGTERM stops reading, writes and commits what was read, and exits 143:
// the records written are exactly those committed.
func TestKafkaCommandSIGTERMDrainsAndCommits(t *testing.T) {
	addr := testenv.Var(t, testenv.Kafka)
	names := kafkatest.Topics(t, addr, 4, "in", "enc")
	in, enc := names[0], names[1]
	home := t.TempDir()
	const n = 30000
	kafkaProduce(t, addr, in, n)
	cmd := kafkaCmd(t, home, addr, "encrypt", in, enc, "g", "--partition-from", "header:tenant", "--workers", "1", "--stats")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first records", func() bool { return highWater(t, addr, enc, 4) >= 2000 })
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if code := exitCodeOf(t, err); code != 128+int(syscall.SIGTERM) {
		t.Fatalf("exit %d, want %d\n%s", code, 128+int(syscall.SIGTERM), stderr.String())
	}
	written, commit := highWater(t, addr, enc, 4), committed(t, addr, "g", in, 4)
	if written != commit || written == 0 || written >= n {
		t.Fatalf("%d records written, %d committed: want equal, after a drain mid-stream\n%s", written, commit, stderr.String())
	}
	if !strings.Contains(stderr.String(), fmt.Sprintf("%d written", written)) {
		t.Fatalf("--stats line does not say %d written:\n%s", written, stderr.String())
	}
}

// Records that cannot be decrypted go to --dlq; without it the run stops
// with an integrity exit code naming the record.
func TestKafkaCommandDeadLettersOrStops(t *testing.T) {
	addr := testenv.Var(t, testenv.Kafka)
	names := kafkatest.Topics(t, addr, 1, "in", "out", "dlq", "out2")
	in, out, dlq, out2 := names[0], names[1], names[2], names[3]
	home := t.TempDir()
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, BatchTimeout: time.Millisecond}
	defer w.Close()
	if err := w.WriteMessages(kctx, kafka.Message{Value: []byte("plain, not encrypted")}); err != nil {
		t.Fatal(err)
	}
	mustRun(t, command(t, home, "init")) // decrypting needs existing keys
	cmd := kafkaCmd(t, home, addr, "decrypt", in, out, "g1", "--dlq", dlq, "--idle-exit", "3s")
	mustRun(t, cmd)
	if got := kafkaValues(t, addr, dlq, 1); len(got) != 1 || got[0] != "plain, not encrypted" {
		t.Fatalf("dead letters %q", got)
	}
	stop := kafkaCmd(t, home, addr, "decrypt", in, out2, "g2", "--idle-exit", "3s")
	outb, err := stop.CombinedOutput()
	if code := exitCodeOf(t, err); code != exitIntegrity || !strings.Contains(string(outb), in+"/0@0") {
		t.Fatalf("exit %d, want %d naming the record:\n%s", code, exitIntegrity, outb)
	}
}
