package scenarios

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// envKafka is the broker of the test servers (. /tmp/encpipe-ci/env.sh).
const envKafka = "ENCPIPE_TEST_KAFKA"

// kafkaState is what the Kafka scenario's Setup leaves for its rounds.
type kafkaState struct {
	broker     string
	prefix     string // of every topic and group of this run
	in, enc    string // N plaintext records, and the same encrypted
	valueBytes float64
}

func (e *Env) kafkaRecords() int {
	if e.Quick {
		return 50_000
	}
	return 300_000
}

func (k *kafkaState) tool(e *Env, mode string, args ...string) []string {
	return append([]string{e.Tool("kafkabench"), "-brokers", k.broker, "-mode", mode}, args...)
}

// op is one timed command of a round: read from, write to a new topic in
// a new group.
func (k *kafkaState) op(e *Env, name, from, to, group string) []string {
	n := itoa(e.kafkaRecords())
	switch name {
	case "kafka-fwd":
		return k.tool(e, "forward", "-from", from, "-to", to, "-group", group, "-n", n)
	case "kafka-enc":
		return e.cliArgs("kafka", "encrypt", "--brokers", k.broker, "--from", from, "--to", to, "--group", group, "--max-records", n)
	}
	return e.cliArgs("kafka", "decrypt", "--brokers", k.broker, "--from", from, "--to", to, "--group", group, "--max-records", n)
}

// kafkaRank orders the measurements of a round as kafkaOps.
func kafkaRank(name string) int {
	return slices.IndexFunc(kafkaOps, func(o struct{ name, label string }) bool { return o.name == name })
}

var kafkaOps = []struct{ name, label string }{
	{"kafka-fwd", "plain kafka-go forwarder (kafkabench -mode forward)"},
	{"kafka-enc", "enc-pipe kafka encrypt"},
	{"kafka-dec", "enc-pipe kafka decrypt"},
}

// Kafka is records/s topic → topic through `enc-pipe kafka encrypt` and
// `decrypt` against a plain kafka-go consume → produce forwarder, on the
// kfake broker of the test servers.
func Kafka() Def {
	k := &kafkaState{}
	return Def{
		ID:    "kafka",
		Group: "Kafka",
		Title: "Kafka: records/s topic → topic, enc-pipe encrypt/decrypt vs plain forwarding",
		About: "The kfake broker of the test servers on loopback (in memory, one process, sharing the 2 CPUs with the clients). " +
			"The input topic (4 partitions) holds 300 k generated JSON records of about 210 bytes (50 k with -quick), produced once before the rounds; " +
			"every run is a new process in a new consumer group that reads them from the start and writes to a new 4-partition topic, " +
			"and stops by itself after N records: `enc-pipe kafka … --max-records N` exits once all N are produced with acks=all and their offsets committed. " +
			"`kafka-fwd` is bench/cmd/kafkabench -mode forward: the same kafka-go reader and writer settings as kafkarec.Run (acks=all, batches of at most 512 records, " +
			"a commit after each acknowledged batch), copying each record unchanged, stopping after N. Times include process start, joining the group and the last commit; " +
			"`kafka-dec` reads the records `kafka-enc` wrote in the setup. Before the rounds, encrypt → decrypt and the forwarder are checked to give back the input " +
			"(same records, partitions and order, by digest); after every run the output topic must hold N records. MB/s counts plaintext value bytes.",
		Available: func(e *Env) string {
			if os.Getenv(envKafka) == "" {
				return envKafka + " is not set (no Kafka broker: . /tmp/encpipe-ci/env.sh)"
			}
			return ""
		},
		Setup: func(ctx context.Context, e *Env, x Exec) error {
			k.broker = os.Getenv(envKafka)
			var rnd [4]byte
			rand.Read(rnd[:])
			k.prefix = "encpipe-bench-" + hex.EncodeToString(rnd[:])
			k.in, k.enc = k.prefix+"-in", k.prefix+"-enc"
			chkDec, chkFwd := k.prefix+"-check-dec", k.prefix+"-check-fwd"
			n := itoa(e.kafkaRecords())
			if _, err := x.Run(ctx, k.tool(e, "create", "-topics", strings.Join([]string{k.in, k.enc, chkDec, chkFwd}, ","))...); err != nil {
				return err
			}
			out, err := x.Run(ctx, k.tool(e, "produce", "-topic", k.in, "-n", n, "-seed", itoa(jsonlSeed))...)
			if err != nil {
				return err
			}
			if k.valueBytes, err = strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err != nil {
				return fmt.Errorf("kafkabench produce: %q: %w", out, err)
			}
			for _, step := range [][]string{
				k.op(e, "kafka-enc", k.in, k.enc, k.prefix+"-setup-enc"),
				k.op(e, "kafka-dec", k.enc, chkDec, k.prefix+"-setup-dec"),
				k.op(e, "kafka-fwd", k.in, chkFwd, k.prefix+"-setup-fwd"),
			} {
				if _, err := x.Run(ctx, step...); err != nil {
					return err
				}
			}
			want, err := x.Run(ctx, k.tool(e, "digest", "-topic", k.in)...)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(string(want), n+" ") {
				return fmt.Errorf("input topic %s: %q, want %s records", k.in, want, n)
			}
			for _, t := range []string{chkDec, chkFwd} {
				got, err := x.Run(ctx, k.tool(e, "digest", "-topic", t)...)
				if err != nil {
					return err
				}
				if string(got) != string(want) {
					return fmt.Errorf("topic %s (count digest) %q differs from the input's %q", t, got, want)
				}
			}
			_, err = x.Run(ctx, k.tool(e, "delete", "-topics", chkDec+","+chkFwd)...)
			return err
		},
		PerRound: func(ctx context.Context, e *Env, x Exec, round int) ([]results.Measurement, error) {
			n := e.kafkaRecords()
			var ms []results.Measurement
			for i := range kafkaOps {
				o := kafkaOps[(i+round)%len(kafkaOps)]
				from := k.in
				if o.name == "kafka-dec" {
					from = k.enc
				}
				to := fmt.Sprintf("%s-r%d-%s", k.prefix, round, o.name)
				if _, err := x.Run(ctx, k.tool(e, "create", "-topics", to)...); err != nil {
					return nil, err
				}
				smp, rss, err := x.Time(ctx, k.op(e, o.name, from, to, to)...)
				if err != nil {
					return nil, err
				}
				got, err := x.Run(ctx, k.tool(e, "count", "-topic", to)...)
				if err != nil {
					return nil, err
				}
				if c, err := strconv.Atoi(strings.TrimSpace(string(got))); err != nil || c < n {
					return nil, fmt.Errorf("%s: output topic %s holds %q records, want %d", o.name, to, got, n)
				}
				if _, err := x.Run(ctx, k.tool(e, "delete", "-topics", to)...); err != nil {
					return nil, err
				}
				smp.Round = round
				ms = append(ms, results.Measurement{Name: o.name, Label: o.label, Bytes: k.valueBytes, Records: float64(n),
					Samples: []results.Sample{smp}, RSSKiB: rss})
			}
			slices.SortFunc(ms, func(a, b results.Measurement) int { return cmp.Compare(kafkaRank(a.Name), kafkaRank(b.Name)) })
			return ms, nil
		},
		Teardown: func(ctx context.Context, e *Env, x Exec) error {
			if k.prefix == "" {
				return nil
			}
			_, err := x.Run(ctx, k.tool(e, "delete-prefix", "-prefix", k.prefix)...)
			return err
		},
		Ratios: func(e *Env) []results.Ratio {
			return []results.Ratio{
				{Num: "kafka-enc", Den: []string{"kafka-fwd"}, Label: "records/s, encrypt vs plain forwarding"},
				{Num: "kafka-dec", Den: []string{"kafka-fwd"}, Label: "records/s, decrypt vs plain forwarding"},
			}
		},
	}
}
