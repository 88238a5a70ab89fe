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

// DefaultMaxLineSize is the longest line, without its line feed, that a
// LineSource reads and a LineSink writes. Encrypting with
// EncryptConfig.MaxValueSize set to the same limit refuses a record whose
// encrypted line decryption could not read.
const DefaultMaxLineSize = 64 << 20

// ErrLineTooLong is returned (wrapped, with the line number) for a line
// over the limit.
var ErrLineTooLong = errors.New("records: line too long")

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

// LineSource reads records from lines (JSON Lines): one record per line,
// its value the line without the line ending; blank lines are skipped
// unless Base64 is set. Position.Offset is the line number. Ack does
// nothing: a stream has no position to commit.
type LineSource struct {
	br   *bufio.Reader
	opt  LineOptions
	line int64
}

var _ Source = (*LineSource)(nil)

// NewLineSource reads lines from r. It does not close r.
func NewLineSource(r io.Reader, opt LineOptions) *LineSource {
	return &LineSource{br: bufio.NewReaderSize(r, 256<<10), opt: opt}
}

// Next returns the next line's record, io.EOF at the end, or an error
// naming the line (ErrLineTooLong, a base64 error, a read error). It does
// not watch ctx: a blocking reader must be made to return by its owner.
func (s *LineSource) Next(ctx context.Context) (*Record, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, err
		}
		s.line++
		pos := Position{Offset: s.line}
		if s.opt.Base64 {
			v, err := base64.StdEncoding.AppendDecode(make([]byte, 0, len(line)*3/4), bytes.TrimSpace(line))
			if err != nil {
				return nil, &RecordError{Kind: KindFormat, Pos: pos, Err: errors.New("not standard base64")}
			}
			return &Record{Value: v, Source: pos}, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		return &Record{Value: line, Source: pos}, nil
	}
}

func (s *LineSource) readLine() ([]byte, error) {
	max := s.opt.max()
	tooLong := func() error {
		return fmt.Errorf("line %d: %w (the limit is %d bytes)", s.line+1, ErrLineTooLong, max)
	}
	var line []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(line)+len(chunk) > max+2 { // room for "\r\n"
			return nil, tooLong()
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) > 0 {
			err = nil
		}
		if err != nil {
			if err != io.EOF {
				err = fmt.Errorf("line %d: %w", s.line+1, err)
			}
			return nil, err
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) > max {
			return nil, tooLong()
		}
		return line, nil
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
