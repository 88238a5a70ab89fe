// Package kafkatest holds the helpers that tests share to set up and read
// Kafka topics on the test broker (kfake on loopback, see internal/testenv):
// fresh topics per test and a reader of every record of a topic.
//
// It is for tests only; nothing outside _test.go files imports it.
package kafkatest

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Topics creates one topic per name, each with parts partitions, named
// after the test, the name and a random suffix so that reruns and
// parallel tests never share a topic. It returns the topic names in the
// order of names.
func Topics(t testing.TB, addr string, parts int, names ...string) []string {
	t.Helper()
	suffix := make([]byte, 4)
	rand.Read(suffix)
	c := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	req := &kafka.CreateTopicsRequest{}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = fmt.Sprintf("%s-%s-%x", strings.ReplaceAll(t.Name(), "/", "-"), n, suffix)
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: out[i], NumPartitions: parts, ReplicationFactor: 1})
	}
	res, err := c.CreateTopics(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for topic, err := range res.Errors {
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	return out
}

// ReadAll reads every partition of topic (parts of them) from the start
// until n records have arrived, and fails t if they have not within
// timeout. The records of one partition are in their order; partitions
// are interleaved as they arrive.
func ReadAll(t testing.TB, addr, topic string, parts, n int, timeout time.Duration) []kafka.Message {
	t.Helper()
	var mu sync.Mutex
	var got []kafka.Message
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var wg sync.WaitGroup
	for p := range parts {
		wg.Go(func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			for {
				mu.Lock()
				done := len(got) >= n
				mu.Unlock()
				if done {
					return
				}
				rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
				m, err := r.ReadMessage(rctx)
				rcancel()
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					continue
				}
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) < n {
		t.Fatalf("topic %s: %d records after %v, want %d", topic, len(got), timeout, n)
	}
	return got
}
