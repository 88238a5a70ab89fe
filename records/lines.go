package records

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// DefaultMaxLineSize is the longest line, without its line ending, that a
// LineSource reads and a LineSink writes: 64 MiB, the one line limit of
// enc-pipe's JSON Lines (the records commands read and write no longer
// line). An Encrypter whose EncryptConfig.MaxValueSize is the sink's
// LineOptions.MaxValueSize refuses a record whose encrypted line a
// LineSource with the same limit could not read.
const DefaultMaxLineSize = 64 << 20

// ErrLineTooLong is matched (errors.Is) by the error of a line over the
// limit: a *RecordError of KindSize, which names the line.
var ErrLineTooLong = errors.New("records: line too long")

// lineTooLong is the cause of a line over the limit of n bytes.
type lineTooLong int

func (n lineTooLong) Error() string {
	return fmt.Sprintf("longer than %d bytes, the line limit", int(n))
}

func (lineTooLong) Unwrap() error { return ErrLineTooLong }

// LineOptions configure a LineSource or a LineSink.
type LineOptions struct {
	// MaxLineSize bounds a line without its "\n" (or "\r\n"). Default:
	// DefaultMaxLineSize.
	MaxLineSize int
	// Base64 makes each line the standard base64 of a record's value
	// (arbitrary bytes) instead of the value itself; an empty line is
	// then an empty value.
	Base64 bool
}

func (o LineOptions) max() int {
	if o.MaxLineSize > 0 {
		return o.MaxLineSize
	}
	return DefaultMaxLineSize
}

// MaxValueSize is the largest value whose line fits in the limit: the
// limit, or with Base64 the most bytes whose base64 fits (3 bytes per 4
// characters).
func (o LineOptions) MaxValueSize() int {
	if o.Base64 {
		return o.max() / 4 * 3
	}
	return o.max()
}

// LineSource reads records from lines (JSON Lines): one record per line,
// its value the line without the line ending; blank lines are skipped
// unless Base64 is set. Position.Offset is the line number. Ack does
// nothing: a stream has no position to commit.
//
// A line over the limit, or (Base64) not standard base64, is a record that
// cannot be read: Next returns it with a *RecordError (KindSize with no
// value, since the line is not kept; KindFormat with the line as value),
// which a Pipeline dead-letters or stops at, and reading goes on at the
// next line. Memory stays bounded by the limit, whatever the input.
type LineSource struct {
	br   *bufio.Reader
	opt  LineOptions
	line int64
}

var _ ReadySource = (*LineSource)(nil)

// NewLineSource reads lines from r. It does not close r.
func NewLineSource(r io.Reader, opt LineOptions) *LineSource {
	return &LineSource{br: bufio.NewReaderSize(r, 256<<10), opt: opt}
}

// Next returns the next line's record, io.EOF at the end, a record with a
// *RecordError for a line it cannot read as a record, or an error naming
// the line for a read error. It does not watch ctx: a blocking reader must
// be made to return by its owner.
func (s *LineSource) Next(ctx context.Context) (*Record, error) {
	for {
		line, tooLong, err := s.readLine()
		if err != nil {
			return nil, err
		}
		s.line++
		pos := Position{Offset: s.line}
		if tooLong {
			return &Record{Source: pos}, &RecordError{Kind: KindSize, Pos: pos, Err: lineTooLong(s.opt.max())}
		}
		if s.opt.Base64 {
			v, err := base64.StdEncoding.AppendDecode(make([]byte, 0, len(line)*3/4), bytes.TrimSpace(line))
			if err != nil {
				return &Record{Value: line, Source: pos}, &RecordError{Kind: KindFormat, Pos: pos, Err: errors.New("not standard base64")}
			}
			return &Record{Value: v, Source: pos}, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return &Record{Value: line, Source: pos}, nil
	}
}

// Ready reports whether the next record's line is buffered whole, so
// that Next returns without reading (blank lines before it, which Next
// skips, are looked past).
func (s *LineSource) Ready() bool {
	b, _ := s.br.Peek(s.br.Buffered())
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		if s.opt.Base64 || len(bytes.TrimSpace(b[:i])) > 0 {
			return true
		}
		b = b[i+1:]
	}
}

// readLine returns the next line without its ending, or reports that it
// was too long (and skips it, keeping none of it).
func (s *LineSource) readLine() (line []byte, tooLong bool, err error) {
	max := s.opt.max()
	for {
		chunk, err := s.br.ReadSlice('\n')
		if !tooLong && len(line)+len(chunk) > max+2 { // room for "\r\n"
			tooLong, line = true, nil
		}
		if !tooLong {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && (len(line) > 0 || tooLong) {
			err = nil
		}
		if err != nil {
			if err != io.EOF {
				err = fmt.Errorf("line %d: %w", s.line+1, err)
			}
			return nil, false, err
		}
		if tooLong {
			return nil, true, nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > max {
			return nil, true, nil
		}
		return line, false, nil
	}
}

// Ack does nothing.
func (s *LineSource) Ack(context.Context, []*Record) error { return nil }

// LineSink writes each record's value as one line. Write returns once the
// lines are handed to the underlying writer. A value that holds a line
// feed, or a line over MaxLineSize, is an error.
type LineSink struct {
	w   io.Writer
	bw  *bufio.Writer
	opt LineOptions
}

var _ Sink = (*LineSink)(nil)

// NewLineSink writes lines to w. It does not close w.
func NewLineSink(w io.Writer, opt LineOptions) *LineSink {
	return &LineSink{w: w, bw: bufio.NewWriterSize(w, 256<<10), opt: opt}
}

// Write writes recs, one line each, and flushes.
func (s *LineSink) Write(ctx context.Context, recs []*Record) error {
	for _, r := range recs {
		v := r.Value
		if s.opt.Base64 {
			v = base64.StdEncoding.AppendEncode(nil, v)
		}
		if len(v) > s.opt.max() {
			return fmt.Errorf("%v: %w: the output line would be %d bytes, the limit is %d", r.Source, ErrLineTooLong, len(v), s.opt.max())
		}
		if bytes.IndexByte(v, '\n') >= 0 {
			return fmt.Errorf("%v: the output value holds a line feed", r.Source)
		}
		s.bw.Write(v)
		if err := s.bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return s.bw.Flush()
}

// LineDeadLetterSink writes dead-lettered records as JSON Lines, one
// object per record: {"source":"line 3","kind":"json","error":"…",
// "value":"…"}, with "value_base64" instead of "value" when the value is
// not UTF-8.
type LineDeadLetterSink struct {
	bw *bufio.Writer
}

var _ Sink = (*LineDeadLetterSink)(nil)

// NewLineDeadLetterSink writes to w. It does not close w.
func NewLineDeadLetterSink(w io.Writer) *LineDeadLetterSink {
	return &LineDeadLetterSink{bw: bufio.NewWriter(w)}
}

type deadLine struct {
	Source      string `json:"source"`
	Kind        string `json:"kind"`
	Error       string `json:"error"`
	Value       string `json:"value,omitempty"`
	ValueBase64 []byte `json:"value_base64,omitempty"`
}

// Write writes recs and flushes.
func (s *LineDeadLetterSink) Write(ctx context.Context, recs []*Record) error {
	for _, r := range recs {
		d := deadLine{Source: r.Source.String()}
		for _, h := range r.Headers {
			switch h.Key {
			case HeaderErrorKind:
				d.Kind = string(h.Value)
			case HeaderError:
				d.Error = string(h.Value)
			}
		}
		if utf8.Valid(r.Value) {
			d.Value = string(r.Value)
		} else {
			d.ValueBase64 = r.Value
		}
		b, err := json.Marshal(d)
		if err != nil {
			return err
		}
		s.bw.Write(b)
		if err := s.bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return s.bw.Flush()
}
