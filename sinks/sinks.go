// Package sinks holds the destinations enc-pipe writes to: files that appear
// atomically, and writers such as standard output or a device.
//
// A Sink either commits or aborts. Close commits what was written (a file
// is fsynced and moved into place). CloseWithError aborts (a file's
// temporary is discarded). Whichever of the two is called first decides;
// later calls return the first result, as with
// [io.PipeWriter.CloseWithError].
//
// The package imports nothing but the standard library and
// golang.org/x/sys, and knows nothing about encryption: it moves bytes.
package sinks

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// Sink is a destination that commits on Close and aborts on CloseWithError.
//
// Write, Close and CloseWithError are safe to call from different
// goroutines: CloseWithError may be called while a Write is in progress (a
// signal handler aborting a run, for example) and waits for it to return.
// Write after Close or CloseWithError returns an error e with
// errors.Is(e, ErrClosed).
type Sink interface {
	io.Writer
	// Close commits what was written. It never closes an underlying
	// writer that the caller passed in (such as os.Stdout).
	Close() error
	// CloseWithError aborts: what can still be discarded is discarded.
	// cause says why; it is returned by a later Write.
	CloseWithError(cause error) error
	// Name is a human-readable name of the destination for messages.
	Name() string
}

// Errors returned by sinks.
var (
	// ErrClosed is returned (wrapped) by Write after Close or CloseWithError.
	ErrClosed = errors.New("sinks: write to closed sink")
	// ErrAborted is the cause recorded by CloseWithError(nil).
	ErrAborted = errors.New("sinks: output aborted")
)

// Writer is a [Sink] over an io.Writer the caller owns, such as os.Stdout.
// Close commits nothing and does not close the underlying writer; bytes that
// were written have been delivered and cannot be recalled by
// CloseWithError, which only stops later writes.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	name   string
	err    error     // sticky: the first write error, or the close state
	closer io.Closer // set by OpenDevice and NewWriteCloser: closed by Close and CloseWithError
}

var _ Sink = (*Writer)(nil)

// NewWriter returns a Sink that writes to w and never closes it.
func NewWriter(w io.Writer, name string) *Writer {
	return &Writer{w: w, name: name}
}

// NewWriteCloser returns a Sink that writes to w and closes it on Close or
// CloseWithError: the Sink owns w (a duplicated file descriptor, for
// example).
func NewWriteCloser(w io.WriteCloser, name string) *Writer {
	return &Writer{w: w, name: name, closer: w}
}

// Write writes p to the underlying writer. After an error every later Write
// returns the same error without touching the writer.
func (s *Writer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// Close marks the sink closed. The underlying writer stays open, except
// for a device opened by OpenDevice or a writer given to NewWriteCloser,
// which is closed.
func (s *Writer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = closedError{ErrClosed}
		return s.closeDevice()
	}
	if c, ok := s.err.(closedError); ok {
		if c.cause == ErrClosed {
			return nil
		}
		return c.cause
	}
	return s.err
}

// CloseWithError stops later writes; cause (or ErrAborted when nil) is what
// they return. It never returns an error.
func (s *Writer) CloseWithError(cause error) error {
	if cause == nil {
		cause = ErrAborted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = closedError{cause}
		s.closeDevice()
	}
	return nil
}

func (s *Writer) closeDevice() error {
	if s.closer == nil {
		return nil
	}
	c := s.closer
	s.closer = nil
	return c.Close()
}

// OpenDevice opens an existing file that is not a regular file (a device
// such as /dev/null, or a named pipe) for writing, as a Writer that closes
// it on Close or CloseWithError. Such outputs cannot be written atomically
// (there is nothing to rename), and CreateFile must not be used for them: it
// would replace the device with a regular file.
func OpenDevice(path string) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err == nil && (st.Mode().IsRegular() || st.IsDir()) {
		err = fmt.Errorf("sinks: %s is not a device or named pipe", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{w: f, name: path, closer: f}, nil
}

// Name returns the name given to NewWriter.
func (s *Writer) Name() string { return s.name }

// closedError is the sticky state of a closed Writer: it matches ErrClosed
// and unwraps to the abort cause.
type closedError struct{ cause error }

func (e closedError) Error() string {
	if e.cause == ErrClosed {
		return ErrClosed.Error()
	}
	return ErrClosed.Error() + ": " + e.cause.Error()
}

func (e closedError) Is(target error) bool { return target == ErrClosed }
func (e closedError) Unwrap() error        { return e.cause }
