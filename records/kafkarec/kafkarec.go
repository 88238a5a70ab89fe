// Package kafkarec runs the records pipeline on Kafka topics with
// github.com/segmentio/kafka-go: a consumer-group Source, a producing Sink,
// a dead-letter topic, Run to tie them together, and Writer and Reader
// wrappers for programs that encrypt before producing and decrypt after
// consuming.
//
// # Delivery
//
// At least once. Offsets are committed only behind records that the
// destination (or dead-letter) topic acknowledged with acks=all, in the
// order they were consumed. A crash, kill or rebalance loses nothing; the
// records produced since the last commit are produced again after it, so
// the destination can hold duplicates (kafka-go has no idempotent or
// transactional producer). After a rebalance a partition's new owner starts
// from the last commit; records of revoked partitions still in flight are
// written and their commit may then move a partition's offset back, which
// again means duplicates, never loss.
//
// # Record mapping
//
// Key, headers and timestamp are kept (the Encrypter may move the key into
// the ciphertext). By default a record goes to the destination partition
// with the number of its source partition (modulo the destination's
// partition count), so the order of each source partition is kept; see
// Partitioner.
package kafkarec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/records"
)

// Source is a records.Source over a consumer-group kafka.Reader (GroupID
// set, CommitInterval 0). Ack commits the highest acknowledged offset of
// each partition, synchronously. Source does not close the Reader.
type Source struct {
	R *kafka.Reader
	// IdleTimeout, when positive, makes Next return io.EOF after no
	// record arrived for that long (counting from the first call to Next,
	// which includes joining the group). Use it to drain a topic and
	// stop.
	IdleTimeout time.Duration
	// Limit, when positive, makes Next return io.EOF after that many
	// records.
	Limit int64
	// Metrics, when set, receives the lag of each partition read
	// (MetricPartitionLag), updated at every fetch. Set it before the
	// first Next.
	Metrics metrics.Provider

	n      int64
	lagMu  sync.Mutex
	lag    map[int]int64
	gauges map[int]metrics.Gauge
	total  atomic.Int64
}

// MetricPartitionLag is the gauge of a Source's lag per partition, with
// label "partition" (the partition number): the records behind the
// partition's high-water mark when its last record was fetched.
const MetricPartitionLag = "kafka.lag"

var (
	_ records.Source      = (*Source)(nil)
	_ records.LagReporter = (*Source)(nil)
)

// NewSource wraps r.
func NewSource(r *kafka.Reader) *Source { return &Source{R: r, lag: map[int]int64{}} }

// Next fetches the next message.
func (s *Source) Next(ctx context.Context) (*records.Record, error) {
	if s.Limit > 0 && s.n >= s.Limit {
		return nil, io.EOF
	}
	fetchCtx := ctx
	if s.IdleTimeout > 0 {
		var cancel context.CancelFunc
		fetchCtx, cancel = context.WithTimeout(ctx, s.IdleTimeout)
		defer cancel()
	}
	m, err := s.R.FetchMessage(fetchCtx)
	if err != nil {
		if ctx.Err() == nil && fetchCtx.Err() != nil {
			return nil, io.EOF // idle
		}
		return nil, err
	}
	s.noteLag(m)
	s.n++
	return fromMessage(m), nil
}

func (s *Source) noteLag(m kafka.Message) {
	if m.HighWaterMark <= 0 {
		return
	}
	s.lagMu.Lock()
	if s.lag == nil {
		s.lag = map[int]int64{}
	}
	old := s.lag[m.Partition]
	l := max(m.HighWaterMark-m.Offset-1, 0)
	s.lag[m.Partition] = l
	if !metrics.IsDiscard(s.Metrics) {
		g := s.gauges[m.Partition]
		if g == nil {
			if s.gauges == nil {
				s.gauges = map[int]metrics.Gauge{}
			}
			g = s.Metrics.Gauge(MetricPartitionLag, metrics.Label{Name: "partition", Value: strconv.Itoa(m.Partition)})
			s.gauges[m.Partition] = g
		}
		g.Set(l)
	}
	s.lagMu.Unlock()
	s.total.Add(l - old)
}

// Lag is the sum over the partitions read so far of the records behind
// their high-water mark when their last record was fetched.
func (s *Source) Lag() int64 { return s.total.Load() }

// Ack commits, per partition, the offset after the last of recs.
func (s *Source) Ack(ctx context.Context, recs []*records.Record) error {
	last := map[records.Position]int{}
	var msgs []kafka.Message
	for _, r := range recs {
		k := records.Position{Topic: r.Source.Topic, Partition: r.Source.Partition}
		m := kafka.Message{Topic: r.Source.Topic, Partition: r.Source.Partition, Offset: r.Source.Offset}
		if i, ok := last[k]; ok {
			msgs[i] = m
			continue
		}
		last[k] = len(msgs)
		msgs = append(msgs, m)
	}
	return s.R.CommitMessages(ctx, msgs...)
}

func fromMessage(m kafka.Message) *records.Record {
	r := &records.Record{
		Key:    m.Key,
		Value:  m.Value,
		Time:   m.Time,
		Source: records.Position{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset},
	}
	if len(m.Headers) > 0 {
		r.Headers = make([]records.Header, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = records.Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

func toMessage(r *records.Record) kafka.Message {
	m := kafka.Message{Key: r.Key, Value: r.Value, Time: r.Time, Partition: r.Source.Partition}
	if len(r.Headers) > 0 {
		m.Headers = make([]kafka.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = kafka.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// Sink is a records.Sink that produces to a kafka.Writer, which must be
// synchronous (Async false) and should require acks from all replicas
// (RequiredAcks kafka.RequireAll). Write returns once the broker
// acknowledged every record. Sink does not close the Writer.
type Sink struct {
	W *kafka.Writer
}

var _ records.Sink = (*Sink)(nil)

// Write produces recs.
func (s *Sink) Write(ctx context.Context, recs []*records.Record) error {
	msgs := make([]kafka.Message, len(recs))
	for i, r := range recs {
		msgs[i] = toMessage(r)
	}
	return s.W.WriteMessages(ctx, msgs...)
}

// SamePartition is a kafka.Balancer that sends a record to the partition
// numbered like its source partition (modulo the destination's count), so
// that each source partition's order is kept. It relies on Sink putting
// the source partition in Message.Partition, which kafka.Writer otherwise
// ignores; use it only with Sink.
type SamePartition struct{}

// Balance implements kafka.Balancer.
func (SamePartition) Balance(msg kafka.Message, partitions ...int) int {
	return partitions[max(msg.Partition, 0)%len(partitions)]
}

// Partitioner names how Run places records in the destination topic.
type Partitioner string

// Partitioners.
const (
	// PartitionSame sends each record to the partition numbered like its
	// source partition (default): order is kept per source partition.
	PartitionSame Partitioner = "same"
	// PartitionKey hashes the record key as the Java client does
	// (murmur2): order is kept per key. Records without a key are spread.
	PartitionKey Partitioner = "key"
)

func (p Partitioner) balancer() (kafka.Balancer, error) {
	switch p {
	case "", PartitionSame:
		return SamePartition{}, nil
	case PartitionKey:
		return &kafka.Murmur2Balancer{}, nil
	}
	return nil, fmt.Errorf("kafkarec: unknown partitioner %q (want same or key)", p)
}

// Config configures Run.
type Config struct {
	// Brokers are host:port addresses of the cluster (required).
	Brokers []string
	// From is the topic to read, To the topic to write (both required).
	From, To string
	// Group is the consumer group (required).
	Group string
	// DeadLetterTopic receives the records that cannot be processed, as
	// read, with the reason in headers (records.HeaderErrorKind, ...).
	// Empty: the first such record stops the run.
	DeadLetterTopic string
	// Transform encrypts or decrypts (required).
	Transform records.Transformer
	// Workers, MaxInFlight, MaxBatch, DrainTimeout: see records.Pipeline.
	Workers      int
	MaxInFlight  int
	MaxBatch     int
	DrainTimeout time.Duration
	// Partitioner places records in To. Default: PartitionSame.
	Partitioner Partitioner
	// StartOffset is where a group with no committed offset starts:
	// kafka.FirstOffset (default) or kafka.LastOffset.
	StartOffset int64
	// IdleTimeout and MaxRecords: see Source.IdleTimeout and Source.Limit.
	IdleTimeout time.Duration
	MaxRecords  int64
	// Dialer connects the consumer (TLS, SASL, timeouts); Transport the
	// producers. Nil means kafka-go's defaults (plain TCP).
	Dialer    *kafka.Dialer
	Transport *kafka.Transport
	// BatchTimeout is how long the producer waits to fill a batch per
	// partition. Default: 2ms.
	BatchTimeout time.Duration
	// Group timing, for tests and fast failover. Defaults: kafka-go's
	// (3s heartbeat, 30s session, 30s rebalance).
	HeartbeatInterval time.Duration
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	// MaxMessageBytes bounds a produced message (kafka.Writer.BatchBytes).
	// Default: 1 MiB, Kafka's default message.max.bytes.
	MaxMessageBytes int64
	// OnStart, when set, is called with the running pipeline, for
	// example to report its Stats periodically.
	OnStart func(*records.Pipeline)
	// Metrics receives the pipeline's figures (records.Pipeline.Metrics)
	// and the lag per partition (Source.Metrics). Nil: none.
	Metrics metrics.Provider
}

// Validate reports the first missing or inconsistent setting.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafkarec: no brokers")
	case c.From == "" || c.To == "":
		return errors.New("kafkarec: both a source and a destination topic are required")
	case c.From == c.To:
		return errors.New("kafkarec: the source and destination topics must differ")
	case c.DeadLetterTopic != "" && (c.DeadLetterTopic == c.From || c.DeadLetterTopic == c.To):
		return errors.New("kafkarec: the dead-letter topic must differ from the source and destination")
	case c.Group == "":
		return errors.New("kafkarec: a consumer group is required")
	case c.Transform == nil:
		return errors.New("kafkarec: a Transform is required")
	}
	_, err := c.Partitioner.balancer()
	return err
}

// Run consumes From in Group, transforms each record and produces it to To
// until ctx is cancelled (then it drains and commits what it has read, for
// at most DrainTimeout, and returns the context's cause) or, with
// IdleTimeout, until the topic is idle (then it returns nil). It returns
// the pipeline's counts with the first error.
func Run(ctx context.Context, cfg Config) (records.Stats, error) {
	if err := cfg.Validate(); err != nil {
		return records.Stats{}, err
	}
	balancer, _ := cfg.Partitioner.balancer()
	start := cfg.StartOffset
	if start == 0 {
		start = kafka.FirstOffset
	}
	maxMsg := cfg.MaxMessageBytes
	if maxMsg <= 0 {
		maxMsg = 1 << 20
	}
	rc := kafka.ReaderConfig{
		Brokers:           cfg.Brokers,
		GroupID:           cfg.Group,
		Topic:             cfg.From,
		Dialer:            cfg.Dialer,
		StartOffset:       start,
		CommitInterval:    0,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           250 * time.Millisecond,
		HeartbeatInterval: cfg.HeartbeatInterval,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		ReadLagInterval:   -1,
	}
	if rc.HeartbeatInterval > 0 && rc.SessionTimeout > 0 {
		rc.JoinGroupBackoff = rc.HeartbeatInterval
	}
	reader := kafka.NewReader(rc)
	defer reader.Close()
	newWriter := func(topic string, bal kafka.Balancer) *kafka.Writer {
		bt := cfg.BatchTimeout
		if bt <= 0 {
			bt = 2 * time.Millisecond
		}
		w := &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        topic,
			Balancer:     bal,
			RequiredAcks: kafka.RequireAll,
			BatchSize:    10000,
			BatchBytes:   maxMsg,
			BatchTimeout: bt,
		}
		if cfg.Transport != nil { // a nil *Transport in the interface would be used
			w.Transport = cfg.Transport
		}
		return w
	}
	w := newWriter(cfg.To, balancer)
	defer w.Close()
	src := NewSource(reader)
	src.IdleTimeout = cfg.IdleTimeout
	src.Limit = cfg.MaxRecords
	src.Metrics = cfg.Metrics
	p := &records.Pipeline{
		Metrics:      cfg.Metrics,
		Source:       src,
		Transform:    cfg.Transform,
		Sink:         &Sink{W: w},
		Workers:      cfg.Workers,
		MaxInFlight:  cfg.MaxInFlight,
		MaxBatch:     cfg.MaxBatch,
		DrainTimeout: cfg.DrainTimeout,
	}
	if cfg.DeadLetterTopic != "" {
		dlq := newWriter(cfg.DeadLetterTopic, SamePartition{})
		defer dlq.Close()
		p.DeadLetter = &Sink{W: dlq}
	}
	if cfg.OnStart != nil {
		cfg.OnStart(p)
	}
	err := p.Run(ctx)
	return p.Stats(), err
}
