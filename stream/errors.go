package stream

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by this package. Every failure to read a stream matches
// exactly one of ErrAuth, ErrTruncated and ErrUnsupported with
// [errors.Is]; a *HeaderError or *ChunkError may carry the details (never
// key material or plaintext). Errors of the underlying io.Reader or
// io.Writer are returned as they are.
var (
	// ErrAuth means the input is not what a writer produced under this
	// data key: the header MAC or a chunk fails to authenticate (a wrong
	// key, modified bytes, chunks reordered, duplicated, dropped or taken
	// from another stream), a header breaks the format's rules (a
	// *HeaderError), data follows the final chunk, the stream ends inside
	// a chunk that then fails as the final one (truncated or modified:
	// the two cannot be told apart), or a chunk that authenticates breaks
	// the format's rules, which only a holder of the key can cause (those
	// three are *ChunkError). Returned bare, its message is fixed and says
	// nothing more.
	ErrAuth = errors.New("stream: message authentication failed")

	// ErrTruncated means the input ends before the stream does, and every
	// byte it holds that can be checked is authentic: inside the header
	// (empty input included), at a chunk boundary before the final chunk,
	// or less than a tag's length into a chunk. It also matches
	// io.ErrUnexpectedEOF.
	ErrTruncated error = &truncatedError{}

	// ErrUnsupported means this package cannot read the input or do what
	// was asked with it: the input is not an enc-pipe stream, or uses a
	// version, suite, flag or compression codec this build does not know
	// (a *HeaderError); a compressed stream was given to NewReaderAt or
	// CiphertextRange, which need fixed-size chunks; or a stream would
	// exceed the format's limit of 2^32 chunks.
	ErrUnsupported = errors.New("stream: unsupported stream")

	// ErrClosed is returned by every method of a Writer, Reader or
	// ReaderAt called after Close (except Close itself, and Reset).
	ErrClosed = errors.New("stream: use of closed stream")

	// ErrInvalidArgument is wrapped by the error a constructor or method
	// returns for an argument out of range: an option (WriterOption,
	// ReaderOption), a data key that is not KeySize bytes, HeaderParams
	// that do not fit the header, a nil source or destination, a negative
	// offset. It is a mistake of the caller, never of the input.
	ErrInvalidArgument = errors.New("stream: invalid argument")
)

// truncatedError is the type of ErrTruncated.
type truncatedError struct{}

func (*truncatedError) Error() string { return "stream: truncated stream" }

// Is makes ErrTruncated match io.ErrUnexpectedEOF.
func (*truncatedError) Is(target error) bool { return target == io.ErrUnexpectedEOF }

// A HeaderError reports a header that ReadHeader or ParseHeader refuses
// before any key is used. Err is ErrUnsupported for a wrong magic (not an
// enc-pipe stream) and for a version, suite, flag or codec this build does
// not know, and ErrAuth for a header that breaks the format's rules
// (lengths, bounds, encoding, ordering), which no writer produces.
type HeaderError struct {
	// Field names the header field at fault: "magic", "version", "suite",
	// "chunk size", "flags", "header length", "key record", "partition",
	// "metadata" or "compression".
	Field string
	// Reason says what is wrong with it, for people.
	Reason string
	// Err is ErrUnsupported or ErrAuth.
	Err error
}

func (e *HeaderError) Error() string { return "stream: " + e.Reason }

// Unwrap returns e.Err.
func (e *HeaderError) Unwrap() error { return e.Err }

// A ChunkError reports what is known about a chunk that makes the stream
// fail, beyond the fixed ErrAuth: that data follows the final chunk, that
// the stream ends inside a chunk that does not authenticate (cut short or
// modified), or that a chunk that authenticates breaks the format's rules.
// Err is ErrAuth.
type ChunkError struct {
	// Index is the chunk's index: 0 is the first chunk after the header.
	Index uint64
	// Reason says what is wrong, for people.
	Reason string
	// Err is ErrAuth.
	Err error
}

func (e *ChunkError) Error() string { return fmt.Sprintf("stream: chunk %d: %s", e.Index, e.Reason) }

// Unwrap returns e.Err.
func (e *ChunkError) Unwrap() error { return e.Err }

// Reasons of the ChunkErrors that the readers return.
const (
	reasonTrailing     = "data follows the final chunk (appended or concatenated)"
	reasonCutOrChanged = "truncated or modified: the stream ends inside this chunk, which does not authenticate as the final one"
)

// chunkErr returns a *ChunkError of class ErrAuth.
func chunkErr(idx uint64, format string, a ...any) error {
	return &ChunkError{Index: idx, Reason: fmt.Sprintf(format, a...), Err: ErrAuth}
}

// headerErr returns a *HeaderError.
func headerErr(class error, field, format string, a ...any) error {
	return &HeaderError{Field: field, Reason: fmt.Sprintf(format, a...), Err: class}
}

// errTooManyChunks is returned when a stream would exceed MaxChunks.
var errTooManyChunks = fmt.Errorf("%w: the stream exceeds the format's limit of 2^32 chunks", ErrUnsupported)

// errNotSeekable is returned by NewReaderAt and CiphertextRange for a
// compressed stream.
var errNotSeekable = fmt.Errorf("%w: a compressed stream is not seekable (its chunks have variable sizes)", ErrUnsupported)
