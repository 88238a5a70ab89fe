package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"strings"
	"syscall"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/textsafe"
)

// Exit codes, documented in the root command's help and docs/CLI.md.
const (
	exitOK        = 0
	exitFailure   = 1   // anything not covered below
	exitUsage     = 2   // bad command line, flag, setting or environment variable
	exitIntegrity = 3   // not an enc-pipe stream or record, truncated, tampered, trailing data
	exitKey       = 4   // key or backend: missing or shredded key, partition not allowed, metastore or KMS failure
	exitIO        = 5   // reading the input or writing the output failed
	exitSIGPIPE   = 141 // 128 + SIGPIPE: stdout was closed by its reader
	// A run stopped by SIGHUP, SIGINT, SIGQUIT or SIGTERM exits with 128 +
	// the signal's number: 129, 130, 131, 143.
)

const exitCodesHelp = `Exit codes:
  0    success
  1    unexpected failure
  2    usage: bad command line, flag, setting or ENC_PIPE_* variable; output is
       the input, a symbolic link, or a closed standard output
  3    integrity: not an enc-pipe stream or record, truncated, tampered, trailing data
  4    key or backend: key missing or shredded, partition not allowed, metastore or KMS failure
  5    I/O: the input cannot be read or the output cannot be written
  130  interrupted by SIGINT (129 SIGHUP, 131 SIGQUIT, 143 SIGTERM); no output
       file is left behind
  141  standard output was closed by its reader (e.g. "| head"); ends quietly`

// cliError is an error with the exit code it maps to. Its message is what
// the user sees after "enc-pipe: error: ".
type cliError struct {
	code  int
	msg   string
	err   error
	terse bool // the message says it all: leave the cause out of Error
	// input marks an exit-2 error about the input's data (a bad record),
	// not about the command line: no hint to read --help.
	input bool
}

// wantsHint reports whether err, exiting with the usage code, is a mistake
// on the command line that --help can answer.
func wantsHint(err error) bool {
	var ce *cliError
	return !errors.As(err, &ce) || !ce.input
}

func (e *cliError) Error() string {
	if e.terse {
		return e.msg
	}
	if e.msg == "" {
		return e.err.Error()
	}
	if e.err == nil {
		return e.msg
	}
	return e.msg + ": " + e.err.Error()
}

func (e *cliError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &cliError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}

func withCode(code int, err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return &cliError{code: code, msg: fmt.Sprintf(format, a...), err: err}
}

func ioError(err error, format string, a ...any) error {
	return withCode(exitIO, err, format, a...)
}

func keyError(err error, format string, a ...any) error {
	return withCode(exitKey, err, format, a...)
}

func integrityError(err error, format string, a ...any) error {
	return withCode(exitIntegrity, err, format, a...)
}

// errQuietEnd marks a run that ended because stdout was closed.
var errQuietEnd = errors.New("standard output closed")

// exitCode maps an error to an exit code. Errors that carry a code keep it;
// others are classified by what they wrap.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errQuietEnd) {
		return exitSIGPIPE
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	if code := classify(err); code != 0 {
		return code
	}
	switch {
	case errors.Is(err, config.ErrInvalid), errors.Is(err, location.ErrInvalid):
		return exitUsage
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, fs.ErrPermission),
		errors.Is(err, io.ErrShortWrite), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EIO):
		return exitIO
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return exitIO
	}
	return exitFailure
}

// signalExitCode is the exit code for a run cancelled by ctx's cause.
func signalExitCode(ctx context.Context) int {
	var se signalError
	if errors.As(context.Cause(ctx), &se) {
		return 128 + int(se.sig)
	}
	return exitFailure
}

// oneLine makes a message fit on one line and safe to print: messages
// quote stream headers, key ids and other text written by someone else,
// whose control characters textsafe.Escape makes visible.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return textsafe.Escape(strings.ReplaceAll(s, "\n", "; "))
}

// isEPIPE reports whether err is a write to a closed pipe.
// isEPIPE reports whether err is a write to a pipe whose reader has gone
// (`| head`). A connection reset by a server (S3, a metastore) can also
// surface as EPIPE, inside a *net.OpError: that is an I/O failure, not the
// quiet end of a pipeline.
func isEPIPE(err error) bool {
	var ne *net.OpError
	return errors.Is(err, syscall.EPIPE) && !errors.As(err, &ne)
}
