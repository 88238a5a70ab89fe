package records

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Record is one record: a line of JSON Lines, a Kafka message.
//
// Transformers replace Key, Value and Headers with new slices rather than
// writing into the ones they were given: a record that fails keeps what the
// source read, which is what a dead-letter sink receives.
type Record struct {
	Key     []byte // nil is no key (Kafka's null key)
	Value   []byte // nil is Kafka's null value, a tombstone
	Headers []Header
	Time    time.Time
	// Partition is the key hierarchy's partition (tenant) the record is
	// encrypted under. The Encrypter and Decrypter set it; it is not the
	// Kafka partition, which is Source.Partition.
	Partition string
	// Source says where the record came from, for errors, dead letters
	// and ordering.
	Source Position
	// Handle belongs to the Source: whatever it needs to acknowledge the
	// record. Others leave it alone.
	Handle any
}

// Header is a record header (Kafka). Names may repeat.
type Header struct {
	Key   string
	Value []byte
}

// Position is where a record came from: a line of a stream, or a Kafka
// topic, partition and offset.
type Position struct {
	Topic     string // Kafka topic; empty for a stream of lines
	Partition int    // Kafka partition
	Offset    int64  // Kafka offset, or the line number (from 1) of a stream
}

// String is "line N" for a stream, "topic/partition@offset" for Kafka
// and "record" for the zero Position.
func (p Position) String() string {
	if p == (Position{}) {
		return "record"
	}
	if p.Topic == "" {
		return "line " + strconv.FormatInt(p.Offset, 10)
	}
	return p.Topic + "/" + strconv.Itoa(p.Partition) + "@" + strconv.FormatInt(p.Offset, 10)
}

// size is what a record counts for against the in-flight byte budget.
func (r *Record) size() int64 {
	n := int64(len(r.Key) + len(r.Value))
	for _, h := range r.Headers {
		n += int64(len(h.Key) + len(h.Value))
	}
	return n
}

// Source produces records for a Pipeline.
//
// The pipeline calls Next from one goroutine and Ack from another; neither
// is called concurrently with itself. Next must return promptly (with the
// context's error) once ctx is done.
type Source interface {
	// Next returns the next record, or io.EOF when there are no more. A
	// source that read a record it cannot hand on (a line too long to
	// keep, undecodable framing) returns the record as read together with
	// a *RecordError: the pipeline treats it as a record whose Transform
	// failed (dead-lettered, or the run stops there) and goes on calling
	// Next. Any other error stops the run.
	Next(ctx context.Context) (*Record, error)
	// Ack reports that recs, in the order Next returned them and with no
	// gap, have been written durably to the sink or the dead-letter sink.
	// A source that commits positions (Kafka offsets) commits only behind
	// acknowledged records. An error stops the pipeline.
	Ack(ctx context.Context, recs []*Record) error
}

// ReadySource is a Source that can tell whether Next would return at once.
// A Pipeline then hands the records that are ready to its workers in runs
// (of up to 64 records or 256 KiB), which costs far less synchronisation
// than one record at a time; without it, or when Ready is false, a record
// is handed on alone as soon as it is read, so that none waits for the
// next.
type ReadySource interface {
	Source
	// Ready reports whether the next call of Next would return without
	// waiting for input. It is called from the goroutine that calls Next.
	Ready() bool
}

// Sink takes the records a Pipeline has transformed, in order.
//
// The pipeline calls Write from one goroutine at a time.
type Sink interface {
	// Write writes recs in order and returns once they are durable in the
	// sink's terms (a Kafka broker acknowledged them; a stream's bytes
	// were handed to its writer). An error stops the pipeline and the
	// records are not acknowledged: some may have been written, and will
	// be again on a retry (at least once).
	Write(ctx context.Context, recs []*Record) error
}

// Transformer rewrites one record: encrypts or decrypts it. Transform is
// called from several goroutines at once. It returns a *RecordError for a
// record that cannot be processed (which a Pipeline with a dead-letter sink
// routes there) and any other error for a failure that must stop the run,
// such as an unreachable metastore.
type Transformer interface {
	Transform(ctx context.Context, r *Record) error
}

// TransformFunc adapts a function to Transformer.
type TransformFunc func(ctx context.Context, r *Record) error

// Transform calls f.
func (f TransformFunc) Transform(ctx context.Context, r *Record) error { return f(ctx, r) }

// ErrorKind names what was wrong with a record that could not be
// processed. It is the value of the dead-letter reason header and the key
// of Stats.Errors.
type ErrorKind string

// Kinds of record errors.
const (
	KindFormat    ErrorKind = "format"    // not a record of a known format, malformed, or decrypted to a value the configuration refuses (not JSON, not one line)
	KindJSON      ErrorKind = "json"      // an input value or DataRowRecord that is invalid JSON, or has duplicate or invalid member names
	KindPartition ErrorKind = "partition" // partition missing, ambiguous or not the record's
	KindKey       ErrorKind = "key"       // the record's key is not in the metastore (shredded, or another metastore)
	KindAuth      ErrorKind = "auth"      // authentication failed: altered, swapped or under another key
	KindSize      ErrorKind = "size"      // larger than the configured limit
)

// Sentinels matched by a *RecordError of the same kind, for errors.Is.
var (
	ErrFormat    = errors.New("records: unknown or malformed record")
	ErrJSON      = errors.New("records: invalid JSON")
	ErrPartition = errors.New("records: bad partition")
	ErrKey       = errors.New("records: key not found")
	ErrAuth      = errors.New("records: authentication failed")
	ErrSize      = errors.New("records: record too large")
)

var kindErrs = map[ErrorKind]error{
	KindFormat: ErrFormat, KindJSON: ErrJSON, KindPartition: ErrPartition,
	KindKey: ErrKey, KindAuth: ErrAuth, KindSize: ErrSize,
}

// RecordError is the failure of one record: it says where the record came
// from, what kind of failure it is, and why. Its message never contains
// the record's content.
type RecordError struct {
	Kind ErrorKind
	Pos  Position
	Err  error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("%v: %v", e.Pos, e.Err)
}

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's kind (ErrAuth for KindAuth, ...).
func (e *RecordError) Is(target error) bool { return kindErrs[e.Kind] == target }

func recordErr(kind ErrorKind, err error) *RecordError {
	return &RecordError{Kind: kind, Err: err}
}

func recordErrf(kind ErrorKind, format string, a ...any) *RecordError {
	return &RecordError{Kind: kind, Err: fmt.Errorf(format, a...)}
}
