package kafkarec_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/internal/kafkatest"
	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/records/kafkarec"
)

// firstCall wraps a Transformer and notes when it first ran, so that the
// timed span starts with the first record, after the group was joined.
type firstCall struct {
	records.Transformer
	at atomic.Int64
}

func (f *firstCall) Transform(ctx context.Context, r *records.Record) error {
	f.at.CompareAndSwap(0, time.Now().UnixNano())
	return f.Transformer.Transform(ctx, r)
}

// BenchmarkKafkaForward compares, in alternating rounds through the same
// kfake broker, kafka-go client and pipeline, forwarding 1 KiB records
// unchanged with encrypting them (binary, 100 tenants by header) on the
// way. One op is one round of both, 20000 records each; records/s counts
// from the first record to the last commit.
func BenchmarkKafkaForward(b *testing.B) {
	addr := broker(b)
	const n = 20000
	f := newFactory(b, memstore.New())
	enc := encrypter(b, f, records.EncryptConfig{Partition: records.HeaderPartition("tenant"), Format: records.FormatBinary})
	identity := records.TransformFunc(func(context.Context, *records.Record) error { return nil })
	names := kafkatest.Topics(b, addr, 4, "in")
	in := names[0]
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: in, Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, BatchSize: 1000}
	defer w.Close()
	var msgs []kafka.Message
	for i := range n {
		head := fmt.Sprintf(`{"tenant":"tenant-%d","seq":%d,"data":"`, i%100, i)
		msgs = append(msgs, kafka.Message{
			Key:     fmt.Appendf(nil, "k%d", i),
			Value:   []byte(head + strings.Repeat("d", 1024-len(head)-2) + `"}`),
			Headers: []kafka.Header{{Key: "tenant", Value: fmt.Appendf(nil, "tenant-%d", i%100)}},
		})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		xf   records.Transformer
	}{{"plain", identity}, {"encrypt", enc}}
	var rounds int
	total := make([]time.Duration, len(variants))
	run := func(j int) {
		rounds++
		out := kafkatest.Topics(b, addr, 4, fmt.Sprintf("out%d", rounds))[0]
		fc := &firstCall{Transformer: variants[j].xf}
		st, err := kafkarec.Run(ctx, fastGroup(kafkarec.Config{
			Brokers: []string{addr}, From: in, To: out, Group: out + "-g", MaxRecords: n, Transform: fc,
		}))
		if err != nil || st.Written != n {
			b.Fatalf("%s: %v %+v", variants[j].name, err, st)
		}
		total[j] += time.Since(time.Unix(0, fc.at.Load()))
	}
	run(1) // warm the tenants' keys
	b.ResetTimer()
	for i := range b.N {
		for k := range variants {
			run((i + k) % len(variants))
		}
	}
	rate := func(j int) float64 { return float64(b.N*n) / total[j].Seconds() }
	b.ReportMetric(rate(0), "records/s-plain")
	b.ReportMetric(rate(1), "records/s-encrypt")
	b.ReportMetric(rate(1)/rate(0), "encrypt/plain")
}
