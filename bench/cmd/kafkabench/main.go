// Command kafkabench is the Kafka scenario's helper and baseline, on one
// broker address (-brokers):
//
//	kafkabench -mode create  -topics a,b -partitions 4
//	kafkabench -mode delete  -topics a,b
//	kafkabench -mode delete-prefix -prefix P            every topic named P…
//	kafkabench -mode produce -topic T -n N [-seed S]   N JSON records; prints their value bytes
//	kafkabench -mode forward -from A -to B -group G -n N
//	kafkabench -mode count   -topic T                  records in T
//	kafkabench -mode digest  -topic T                  count and SHA-256 of T
//
// forward is the plain baseline that `enc-pipe kafka encrypt` is compared
// with: a kafka-go consumer group member that produces every record it
// reads, unchanged, to B with the settings kafkarec.Run uses (the same
// ReaderConfig and Writer, acks=all, batches of at most
// records.DefaultMaxBatch records, offsets committed after each batch is
// acknowledged, record i to the partition numbered like its source) and
// exits after N records, as `--max-records N` does.
//
// digest reads every partition from its first to its last offset and
// prints the record count and a SHA-256 over the partitions in order, each
// record's key and value in offset order: two topics with equal digests
// hold the same records in the same partitions and order.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/bench/internal/jsonlgen"
	"github.com/enc-pipe/enc-pipe/records"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkabench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	mode := flag.String("mode", "", "create, delete, produce, forward, count or digest")
	brokers := flag.String("brokers", "", "broker host:port")
	topics := flag.String("topics", "", "topics to create or delete (comma-separated)")
	parts := flag.Int("partitions", 4, "partitions of created topics")
	topic := flag.String("topic", "", "topic to produce to, count or digest")
	from := flag.String("from", "", "forward: topic to read")
	to := flag.String("to", "", "forward: topic to write")
	group := flag.String("group", "", "forward: consumer group")
	n := flag.Int("n", 0, "records to produce or forward")
	prefix := flag.String("prefix", "", "delete-prefix: prefix of the topics to delete")
	seed := flag.Uint64("seed", 1, "produce: seed of the generated records")
	flag.Parse()
	if *brokers == "" {
		return errors.New("-brokers is required")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(*brokers), Timeout: 30 * time.Second}
	switch *mode {
	case "create":
		req := &kafka.CreateTopicsRequest{}
		for _, t := range strings.Split(*topics, ",") {
			req.Topics = append(req.Topics, kafka.TopicConfig{Topic: t, NumPartitions: *parts, ReplicationFactor: 1})
		}
		res, err := c.CreateTopics(ctx, req)
		if err != nil {
			return err
		}
		for t, err := range res.Errors {
			if err != nil {
				return fmt.Errorf("create topic %s: %w", t, err)
			}
		}
		return nil
	case "delete", "delete-prefix":
		names := strings.Split(*topics, ",")
		if *mode == "delete-prefix" {
			if *prefix == "" {
				return errors.New("delete-prefix needs -prefix")
			}
			meta, err := c.Metadata(ctx, &kafka.MetadataRequest{})
			if err != nil {
				return err
			}
			names = nil
			for _, t := range meta.Topics {
				if strings.HasPrefix(t.Name, *prefix) {
					names = append(names, t.Name)
				}
			}
			if len(names) == 0 {
				return nil
			}
		}
		res, err := c.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
		if err != nil {
			return err
		}
		for t, err := range res.Errors {
			if err != nil {
				return fmt.Errorf("delete topic %s: %w", t, err)
			}
		}
		return nil
	case "produce":
		b, err := produce(ctx, *brokers, *topic, *n, *seed)
		if err != nil {
			return err
		}
		fmt.Println(b)
		return nil
	case "forward":
		if *from == "" || *to == "" || *group == "" || *n <= 0 {
			return errors.New("forward needs -from, -to, -group and -n")
		}
		return forward(ctx, *brokers, *from, *to, *group, *n)
	case "count", "digest":
		count, sum, err := digest(ctx, c, *brokers, *topic, *mode == "digest")
		if err != nil {
			return err
		}
		if *mode == "count" {
			fmt.Println(count)
		} else {
			fmt.Println(count, sum)
		}
		return nil
	}
	return fmt.Errorf("unknown -mode %q", *mode)
}

// produce writes n generated JSON records, keyed by their user, spread
// over the partitions by key hash, and returns the bytes of their values.
func produce(ctx context.Context, brokers, topic string, n int, seed uint64) (int64, error) {
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 10000, BatchTimeout: 2 * time.Millisecond}
	defer w.Close()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const batch = 5000
	msgs := make([]kafka.Message, 0, batch)
	var total int64
	for i := range n {
		v := jsonlgen.Line(nil, rng, i)
		total += int64(len(v))
		msgs = append(msgs, kafka.Message{Key: fmt.Appendf(nil, "user-%d", i%1000), Value: v})
		if len(msgs) == batch || i == n-1 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return total, err
			}
			msgs = msgs[:0]
		}
	}
	return total, nil
}

// samePartition is kafkarec.SamePartition: the destination partition
// numbered like the source's.
type samePartition struct{}

func (samePartition) Balance(msg kafka.Message, partitions ...int) int {
	return partitions[max(msg.Partition, 0)%len(partitions)]
}

// forward consumes from in group and produces each record unchanged to
// to, n records in all, with kafkarec.Run's settings.
func forward(ctx context.Context, brokers, from, to, group string, n int) error {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{brokers}, GroupID: group, Topic: from, StartOffset: kafka.FirstOffset,
		CommitInterval: 0, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 250 * time.Millisecond, ReadLagInterval: -1,
	})
	defer r.Close()
	w := &kafka.Writer{Addr: kafka.TCP(brokers), Topic: to, Balancer: samePartition{}, RequiredAcks: kafka.RequireAll,
		BatchSize: 10000, BatchBytes: 1 << 20, BatchTimeout: 2 * time.Millisecond}
	defer w.Close()

	in := make(chan kafka.Message, records.DefaultMaxInFlight)
	fetchErr := make(chan error, 1)
	go func() {
		defer close(in)
		for range n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				fetchErr <- err
				return
			}
			in <- m
		}
	}()
	batch := make([]kafka.Message, 0, records.DefaultMaxBatch)
	out := make([]kafka.Message, 0, records.DefaultMaxBatch)
	done := 0
	for m := range in {
		batch = append(batch[:0], m)
	fill:
		for len(batch) < records.DefaultMaxBatch {
			select {
			case m, ok := <-in:
				if !ok {
					break fill
				}
				batch = append(batch, m)
			default:
				break fill
			}
		}
		out = out[:0]
		for _, m := range batch {
			out = append(out, kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers, Time: m.Time, Partition: m.Partition})
		}
		if err := w.WriteMessages(ctx, out...); err != nil {
			return err
		}
		if err := r.CommitMessages(ctx, batch...); err != nil {
			return err
		}
		done += len(batch)
	}
	select {
	case err := <-fetchErr:
		return err
	default:
	}
	if done != n {
		return fmt.Errorf("forwarded %d records, want %d", done, n)
	}
	return nil
}

// digest counts the records of topic and, if sum, hashes them.
func digest(ctx context.Context, c *kafka.Client, brokers, topic string, sum bool) (int64, string, error) {
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return 0, "", err
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return 0, "", fmt.Errorf("topic %s: %v", topic, meta.Topics)
	}
	var req []kafka.OffsetRequest
	var ids []int
	for _, p := range meta.Topics[0].Partitions {
		ids = append(ids, p.ID)
		req = append(req, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	slices.Sort(ids)
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: req}})
	if err != nil {
		return 0, "", err
	}
	span := map[int][2]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return 0, "", po.Error
		}
		span[po.Partition] = [2]int64{po.FirstOffset, po.LastOffset}
	}
	var total int64
	h := sha256.New()
	for _, p := range ids {
		first, last := span[p][0], span[p][1]
		total += last - first
		if !sum {
			continue
		}
		fmt.Fprintf(h, "partition %d: %d records\n", p, last-first)
		if last == first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{brokers}, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(first); err != nil {
			r.Close()
			return 0, "", err
		}
		var lb [8]byte
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				return 0, "", err
			}
			for _, b := range [][]byte{m.Key, m.Value} {
				binary.BigEndian.PutUint64(lb[:], uint64(len(b)))
				h.Write(lb[:])
				h.Write(b)
			}
			if m.Offset >= last-1 {
				break
			}
		}
		r.Close()
	}
	return total, hex.EncodeToString(h.Sum(nil)), nil
}
