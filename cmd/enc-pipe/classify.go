package main

import (
	"errors"
	"io"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/stream"
)

// inputError marks a failure to read the input, so that it is told apart
// from a failure to decrypt what was read.
type inputError struct{ err error }

func (e *inputError) Error() string { return "cannot read input: " + e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

// outputError marks a failure to write the output.
type outputError struct{ err error }

func (e *outputError) Error() string { return "cannot write output: " + e.err.Error() }
func (e *outputError) Unwrap() error { return e.err }

// readTagger wraps the input's errors (but not io.EOF) in inputError.
type readTagger struct{ r io.Reader }

func (t readTagger) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = &inputError{err}
	}
	return n, err
}

// readerAtTagger is readTagger for an io.ReaderAt.
type readerAtTagger struct{ r io.ReaderAt }

func (t readerAtTagger) ReadAt(p []byte, off int64) (int, error) {
	n, err := t.r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		err = &inputError{err}
	}
	return n, err
}

// writeTagger wraps the output's errors in outputError.
type writeTagger struct{ w io.Writer }

func (t writeTagger) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		err = &outputError{err}
	}
	return n, err
}

// classify maps the errors of the libraries to exit codes; 0 means "not
// recognised".
func classify(err error) int {
	var ie *inputError
	var oe *outputError
	switch {
	case errors.Is(err, errCancelled):
		return exitFailure // replaced by the signal's code in run
	case errors.As(err, &oe):
		if isEPIPE(oe.err) {
			return exitSIGPIPE
		}
		return exitIO
	case errors.As(err, &ie):
		return exitIO
	case errors.Is(err, stream.ErrInvalidOption), errors.Is(err, stream.ErrNotSeekable):
		return exitUsage
	case errors.Is(err, encpipe.ErrPartitionNotAllowed), errors.Is(err, envelope.ErrPartitionMismatch):
		return exitKey
	case errors.As(err, new(*envelope.KeyError)):
		return exitKey
	case errors.Is(err, stream.ErrAuth), errors.Is(err, stream.ErrTruncated),
		errors.Is(err, stream.ErrTrailingData), errors.Is(err, stream.ErrNotStream),
		errors.Is(err, stream.ErrInvalidHeader), errors.Is(err, stream.ErrInvalidChunk),
		errors.Is(err, stream.ErrUnsupported), errors.Is(err, io.ErrUnexpectedEOF):
		return exitIntegrity
	case errors.Is(err, envelope.ErrNotFound):
		return exitKey
	case errors.Is(err, envelope.ErrInvalidRecord):
		return exitIntegrity
	}
	return 0
}

// classifyStreamErr gives a library error its exit code and a message that
// names the problem. The messages of the stream package are fixed and hold
// no key material or plaintext.
func classifyStreamErr(err error, what string) error {
	var oe *outputError
	if errors.As(err, &oe) && isEPIPE(oe.err) {
		return errQuietEnd
	}
	if errors.Is(err, encpipe.ErrKeyUnavailable) && !errors.Is(err, envelope.ErrNotFound) {
		// The keys are the problem, not the stream: name the key and the
		// cause (never key material).
		msg := "cannot load the stream's key"
		if errors.Is(err, envelope.ErrDecrypt) {
			msg += ", a stored key does not unwrap (wrong master key or KMS key, or a damaged metastore)"
		}
		var ke *envelope.KeyError
		if errors.As(err, &ke) {
			err = ke
		}
		return &cliError{code: exitKey, msg: msg, err: err}
	}
	code := classify(err)
	if code == 0 {
		code = exitKey // everything else comes from keys and backends
	}
	msg := what
	switch {
	case errors.Is(err, stream.ErrNotStream):
		msg = "input is not an enc-pipe stream"
	case errors.Is(err, stream.ErrTrailingData):
		msg = "input has data after the end of the stream (appended or concatenated)"
	case errors.Is(err, stream.ErrTruncated) && !errors.Is(err, stream.ErrAuth):
		msg = "input is truncated"
	case errors.Is(err, stream.ErrTruncated):
		msg = "input is truncated or was modified"
	case errors.Is(err, stream.ErrAuth):
		msg = "input failed authentication: it was modified, or was not written with these keys"
	case errors.Is(err, stream.ErrNotSeekable):
		msg = "--range needs an uncompressed stream: this one is compressed, so its chunks cannot be located"
	case errors.Is(err, encpipe.ErrPartitionNotAllowed):
		msg = "stream belongs to another partition"
	case errors.Is(err, envelope.ErrNotFound):
		msg = "key not found in the metastore (deleted, shredded, or another metastore)"
	}
	return &cliError{code: code, msg: msg, err: err, terse: msg != what}
}
