package stream

import (
	"errors"
	"io"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// Metric names. Bytes are plaintext bytes, counted when their chunk has
// been sealed or authenticated and opened.
const (
	MetricEncryptBytes   = "stream.encrypt.bytes"   // counter: plaintext bytes sealed by Writers
	MetricEncryptChunks  = "stream.encrypt.chunks"  // counter: chunks sealed
	MetricEncryptStreams = "stream.encrypt.streams" // counter: streams started (NewWriter, Reset)
	MetricDecryptBytes   = "stream.decrypt.bytes"   // counter: plaintext bytes authenticated by Readers and ReaderAts
	MetricDecryptChunks  = "stream.decrypt.chunks"  // counter: chunks authenticated and opened
	MetricDecryptStreams = "stream.decrypt.streams" // counter: streams whose header authenticated
	// MetricErrors counts streams that failed, once per failure, with
	// labels "op" (encrypt, decrypt) and "kind": auth (ErrAuth),
	// truncated (ErrTruncated), unsupported (ErrUnsupported) or io (an
	// error of the source or destination, or anything else).
	MetricErrors = "stream.errors"
)

// WithWriterMetrics reports the Writer's bytes, chunks, streams and
// failures to p (default: none). The instruments are asked for once, by
// the option.
func WithWriterMetrics(p metrics.Provider) WriterOption {
	return func(o *writerOptions) error {
		o.metrics = newStreamMetrics(p, "encrypt")
		return nil
	}
}

// WithReaderMetrics reports the Reader's or ReaderAt's bytes, chunks,
// streams and failures to p (default: none). The instruments are asked
// for once, by the option.
func WithReaderMetrics(p metrics.Provider) ReaderOption {
	return func(o *readerOptions) error {
		o.metrics = newStreamMetrics(p, "decrypt")
		return nil
	}
}

// streamMetrics are the instruments of one direction; a nil
// *streamMetrics counts nothing.
type streamMetrics struct {
	bytes, chunks, streams metrics.Counter
	errs                   [numErrKinds]metrics.Counter
}

const (
	errAuth = iota
	errTruncated
	errUnsupported
	errIO
	numErrKinds
)

var errKindNames = [numErrKinds]string{"auth", "truncated", "unsupported", "io"}

func newStreamMetrics(p metrics.Provider, op string) *streamMetrics {
	if metrics.IsDiscard(p) {
		return nil
	}
	names := [3]string{MetricEncryptBytes, MetricEncryptChunks, MetricEncryptStreams}
	if op == "decrypt" {
		names = [3]string{MetricDecryptBytes, MetricDecryptChunks, MetricDecryptStreams}
	}
	m := &streamMetrics{bytes: p.Counter(names[0]), chunks: p.Counter(names[1]), streams: p.Counter(names[2])}
	for k, name := range errKindNames {
		m.errs[k] = p.Counter(MetricErrors, metrics.Label{Name: "op", Value: op}, metrics.Label{Name: "kind", Value: name})
	}
	return m
}

func (m *streamMetrics) chunk(plaintext int) {
	if m != nil {
		m.chunks.Add(1)
		m.bytes.Add(int64(plaintext))
	}
}

func (m *streamMetrics) started() {
	if m != nil {
		m.streams.Add(1)
	}
}

// failed counts err, unless it is the end of a stream or the use of a
// closed one.
func (m *streamMetrics) failed(err error) {
	if m == nil || err == nil || err == io.EOF || errors.Is(err, ErrClosed) {
		return
	}
	k := errIO
	switch {
	case errors.Is(err, ErrAuth):
		k = errAuth
	case errors.Is(err, ErrTruncated):
		k = errTruncated
	case errors.Is(err, ErrUnsupported):
		k = errUnsupported
	}
	m.errs[k].Add(1)
}
