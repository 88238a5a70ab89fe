package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/enc-pipe/enc-pipe/internal/redact"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// abortGrace bounds how long run waits, after a signal, for the command to
// notice the cancellation and clean up by itself. A command blocked in a
// write to a stalled pipe may never return; its outputs have already been
// aborted by then.
const abortGrace = 5 * time.Second

// app is one invocation of the command: its standard streams, its
// environment and the outputs that must be aborted if it is interrupted.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	g   globalFlags
	s3  s3Settings // S3 client settings and flags (s3client.go)
	of  obsFlags   // --log-level, --log-format, --metrics-addr, --stats (observe.go)
	obs *observer  // logs, metrics, health check and summary of the run

	// secrets are the passwords and other secrets found in the command
	// line and the environment's metastore settings: every message is
	// scrubbed of them before it is printed.
	secrets []string
	// homeWarned is set once the home's permissions were warned about.
	homeWarned bool

	mu      sync.Mutex
	sinks   []sinks.Sink // outputs to abort on interruption
	in      *input       // the run's input, once opened
	started bool         // a command's RunE was entered (errors before are usage errors)
}

// run is the whole program. It returns the exit code; main exits with it.
// Standard streams are passed in so that tests can run the program in
// process.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, stdin, stdout, stderr, os.Getenv)
}

func runEnv(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, obs: newObserver()}
	for _, v := range append([]string{getenv(config.EnvMetastore), getenv(config.EnvKMS), getenv(config.EnvKMSEndpoints)}, args...) {
		a.secrets = append(a.secrets, redact.Secrets(v)...)
	}
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("internal error: %v", r)
			}
		}()
		done <- a.execute(ctx, args)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		a.abortSinks(context.Cause(ctx))
		select {
		case err = <-done:
			a.finishRun(signalExitCode(ctx), err)
		case <-time.After(abortGrace):
		}
		return signalExitCode(ctx)
	}
	if ctx.Err() != nil {
		// The command finished (with whatever error the cancellation
		// caused) after a signal: report the signal.
		a.finishRun(signalExitCode(ctx), err)
		return signalExitCode(ctx)
	}
	if err == nil {
		a.finishRun(exitOK, nil)
		return exitOK
	}
	code := exitCode(err)
	if code == exitFailure && !a.hasStarted() {
		code = exitUsage // cobra's own errors: unknown command, bad arguments
	}
	a.finishRun(code, err)
	if code != exitSIGPIPE {
		fmt.Fprintf(stderr, "enc-pipe: error: %s\n", a.clean(err.Error()))
		if code == exitUsage && wantsHint(err) {
			fmt.Fprintln(stderr, "enc-pipe: hint: run 'enc-pipe --help' for usage")
		}
	}
	return code
}

func (a *app) execute(ctx context.Context, args []string) error {
	root := a.newRootCommand()
	root.SetArgs(args)
	root.SetIn(a.stdin)
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	return root.ExecuteContext(ctx)
}

// track registers an output so that an interruption aborts it.
func (a *app) track(s sinks.Sink) {
	a.mu.Lock()
	a.sinks = append(a.sinks, s)
	a.mu.Unlock()
}

func (a *app) abortSinks(cause error) {
	a.mu.Lock()
	ss := a.sinks
	a.mu.Unlock()
	for _, s := range ss {
		s.CloseWithError(cause)
	}
}

func (a *app) markStarted() {
	a.mu.Lock()
	a.started = true
	a.mu.Unlock()
}

func (a *app) hasStarted() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.started
}

// warnf prints a one-line warning on stderr (and logs it at warn level).
func (a *app) warnf(format string, args ...any) {
	fmt.Fprintf(a.stderr, "enc-pipe: warning: %s\n", a.clean(fmt.Sprintf(format, args...)))
	a.obs.logf(slog.LevelWarn, format, args...)
}

// noticef prints a one-line notice on stderr (and logs it at info level).
func (a *app) noticef(format string, args ...any) {
	fmt.Fprintf(a.stderr, "enc-pipe: %s\n", a.clean(fmt.Sprintf(format, args...)))
	a.obs.logf(slog.LevelInfo, format, args...)
}

// clean makes a message fit on one line and scrubs it of every secret the
// command line and environment hold, and of anything that looks like a
// password in a URL or a NAME=VALUE pair (drivers quote DSNs in their
// errors).
func (a *app) clean(msg string) string {
	return oneLine(redact.Scrub(msg, a.secrets))
}

// errCancelled is returned by ctxReader once the run is cancelled.
var errCancelled = errors.New("cancelled")

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: %v", errCancelled, context.Cause(r.ctx))
	}
	return r.r.Read(p)
}

// trimFlagError gives pflag's messages our lowercase shape.
func trimFlagError(err error) error {
	return usageErrorf("%s", strings.TrimSuffix(err.Error(), "."))
}
