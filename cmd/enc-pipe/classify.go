package main

import (
	"errors"
	"fmt"
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
// recognised". The outermost error in err's chain that names a class
// decides: each class is one sentinel (compared by identity) or one error
// type, so at most one rule matches any error in the chain and the order
// of the rules does not matter. The libraries keep their classes apart
// (package stream: every failure matches exactly one of ErrAuth,
// ErrTruncated and ErrUnsupported), and a wrapper names the cause it adds
// outside the one it wraps (encpipe.ErrKeyUnavailable before the
// *envelope.KeyError, which comes before its own cause).
func classify(err error) int {
	code, _ := classOf(err)
	return code
}

// classOf returns the exit code of err and the error in its chain that
// decided it (nil for none).
func classOf(err error) (int, error) {
	for err != nil {
		if code := classCode(err); code != 0 {
			return code, err
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if code, by := classOf(e); code != 0 {
					return code, by
				}
			}
			return 0, nil
		default:
			return 0, nil
		}
	}
	return 0, nil
}

// classCode is the exit code of err itself (not of what it wraps), 0 if it
// names no class. The cases are disjoint: each compares err with distinct
// sentinels (all pointers, so == never panics) or tests a distinct type.
func classCode(err error) int {
	switch e := err.(type) {
	case *outputError:
		if isEPIPE(e.err) {
			return exitSIGPIPE
		}
		return exitIO
	case *inputError:
		return exitIO
	case *envelope.KeyError:
		return exitKey
	}
	switch err {
	case errCancelled:
		return exitFailure // replaced by the signal's code in run
	case stream.ErrAuth, stream.ErrTruncated, stream.ErrUnsupported, io.ErrUnexpectedEOF, envelope.ErrInvalidRecord:
		return exitIntegrity
	case stream.ErrInvalidArgument:
		return exitUsage
	case encpipe.ErrKeyUnavailable, encpipe.ErrPartitionNotAllowed, envelope.ErrPartitionMismatch, envelope.ErrNotFound:
		return exitKey
	}
	return 0
}

// classifyStreamErr gives a library error its exit code and a message that
// names the problem. The messages of the stream package are fixed and hold
// no key material or plaintext; its *HeaderError and *ChunkError add what
// is known about the failure, from the (public) structure of the input.
func classifyStreamErr(err error, what string) error {
	code, class := classOf(err)
	if code == exitSIGPIPE {
		return errQuietEnd
	}
	if code == 0 {
		code = exitKey // everything else comes from keys and backends
	}
	msg := what
	var he *stream.HeaderError
	var ce *stream.ChunkError
	switch class {
	case encpipe.ErrKeyUnavailable:
		if errors.Is(err, envelope.ErrNotFound) {
			msg = "key not found in the metastore (deleted, shredded, or another metastore)"
			break
		}
		// The keys are the problem, not the stream: name the key and the
		// cause (never key material).
		msg = "cannot load the stream's key"
		if errors.Is(err, envelope.ErrDecrypt) {
			msg += ", a stored key does not unwrap (wrong master key or KMS key, or a damaged metastore)"
		}
		var ke *envelope.KeyError
		if errors.As(err, &ke) {
			err = ke
		}
		return &cliError{code: exitKey, msg: msg, err: err}
	case envelope.ErrNotFound:
		msg = "key not found in the metastore (deleted, shredded, or another metastore)"
	case encpipe.ErrPartitionNotAllowed:
		msg = "stream belongs to another partition"
	case stream.ErrUnsupported:
		switch {
		case errors.As(err, &he) && he.Field == "magic":
			msg = "input is not an enc-pipe stream"
		case errors.As(err, &he):
			msg = "input is an enc-pipe stream this build cannot read: " + he.Reason
		}
	case stream.ErrTruncated:
		msg = "input is truncated"
	case stream.ErrAuth:
		switch {
		case errors.As(err, &he):
			msg = "input is not a valid enc-pipe stream: " + he.Reason
		case errors.As(err, &ce):
			msg = fmt.Sprintf("input failed authentication at chunk %d: %s", ce.Index, ce.Reason)
		default:
			msg = "input failed authentication: it was modified, or was not written with these keys"
		}
	}
	return &cliError{code: code, msg: msg, err: err, terse: msg != what}
}
