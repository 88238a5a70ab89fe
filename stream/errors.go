package stream

import (
	"errors"
	"io"
)

// Errors returned by this package. Test for them with [errors.Is]; the
// returned error may wrap them with details (never with key material or
// plaintext).
var (
	// ErrAuth is returned when the header MAC or a chunk fails to
	// authenticate: a wrong data key, a modified header or chunk, chunks
	// that were reordered, duplicated or dropped, or data appended after
	// the final chunk. Its message is fixed and says nothing more.
	ErrAuth error = &sentinel{msg: "stream: message authentication failed"}

	// ErrTruncated is returned when the stream ends before a chunk that
	// authenticates as the final one (or inside the header). It matches
	// io.ErrUnexpectedEOF as well.
	ErrTruncated error = &sentinel{msg: "stream: truncated stream", parents: []error{io.ErrUnexpectedEOF}}

	// ErrTrailingData is returned when bytes follow a chunk that
	// authenticates as the final one. It matches ErrAuth as well: the
	// stream as a whole is not what the writer produced.
	ErrTrailingData error = &sentinel{msg: "stream: trailing data after the final chunk", parents: []error{ErrAuth}}

	// ErrClosed is returned by every method of a Writer, Reader or
	// ReaderAt called after Close (except Close itself).
	ErrClosed = errors.New("stream: use of closed stream")

	// ErrNotStream is returned by ReadHeader when the input does not start
	// with the enc-pipe magic bytes.
	ErrNotStream = errors.New("stream: not an enc-pipe stream (bad magic)")

	// ErrUnsupported is returned by ReadHeader for a version, suite or
	// flag this implementation does not know, and by readers for a
	// compression codec they do not know.
	ErrUnsupported = errors.New("stream: unsupported stream format")

	// ErrInvalidHeader is returned by ReadHeader for a header whose fields
	// break the format's rules (lengths, bounds, ordering, encoding), and
	// by NewWriter for header parameters that would produce one.
	ErrInvalidHeader = errors.New("stream: invalid header")

	// ErrInvalidChunk is returned when a chunk authenticates but breaks a
	// rule of the format that the writer must follow (an empty final
	// chunk after other chunks, a bad compression marker, a chunk that
	// decompresses to the wrong size). Only a holder of the data key can
	// produce such a chunk.
	ErrInvalidChunk = errors.New("stream: invalid chunk")

	// ErrTooLarge is returned when a stream would exceed the format's
	// limit of 2^32 chunks.
	ErrTooLarge = errors.New("stream: stream exceeds the maximum of 2^32 chunks")

	// ErrNotSeekable is returned by NewReaderAt and CiphertextRange for a
	// compressed stream: its chunks have variable sizes, so a plaintext
	// offset cannot be mapped to a ciphertext offset.
	ErrNotSeekable = errors.New("stream: compressed streams are not seekable")

	// ErrInvalidOption is wrapped by the error an Option returns when its
	// argument is out of range.
	ErrInvalidOption = errors.New("stream: invalid option")

	// ErrInvalidKey is returned when the data key is not 32 bytes long.
	ErrInvalidKey = errors.New("stream: data key must be 32 bytes")
)

// errTruncatedOrModified is returned when the stream ends in a short chunk
// that does not authenticate as final: the stream was either cut inside
// that chunk or the chunk was modified, and the two cannot be told apart.
// It matches ErrAuth, ErrTruncated and io.ErrUnexpectedEOF.
var errTruncatedOrModified error = &sentinel{
	msg:     "stream: final chunk failed to authenticate (truncated or modified)",
	parents: []error{ErrAuth, ErrTruncated},
}

// sentinel is an error value that also matches other sentinels with
// errors.Is, so that one fixed value can belong to several classes.
type sentinel struct {
	msg     string
	parents []error
}

func (e *sentinel) Error() string   { return e.msg }
func (e *sentinel) Unwrap() []error { return e.parents }
