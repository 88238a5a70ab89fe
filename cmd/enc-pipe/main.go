// Command enc-pipe encrypts and decrypts files, pipes and ETL records with
// envelope encryption: an Asherah-compatible key hierarchy (master key,
// system key, intermediate key per partition, data key per stream or
// record) over a metastore of wrapped keys.
//
// Run "enc-pipe --help" for the commands, and see docs/CLI.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code) // the only exit: every deferred cleanup in run has run
}

// signalError is the cancellation cause recorded when a signal arrives.
type signalError struct{ sig syscall.Signal }

func (e signalError) Error() string { return "interrupted by " + e.sig.String() }

// stopSignals are the signals that abort a run: its outputs are discarded
// and it exits with 128 + the signal's number. SIGHUP (the terminal went
// away) and SIGQUIT (Ctrl-\) are handled like SIGINT and SIGTERM rather
// than by Go's defaults, which would leave no chance to clean up (and, for
// SIGQUIT, print every goroutine's stack).
var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

// signalContext returns a context that is cancelled, with a signalError
// cause, on the first of stopSignals. A second one ends the process at once
// with the same kind of exit code (a file output's unnamed temporary
// vanishes with it; see sinks.File). SIGPIPE is caught too, so that a
// write to a closed stdout returns EPIPE (handled as a quiet end) instead of
// killing the process before it can clean up.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, stopSignals...)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		stopping := false
		for {
			select {
			case s := <-sigs:
				sig := s.(syscall.Signal)
				if stopping {
					os.Exit(128 + int(sig))
				}
				stopping = true
				cancel(signalError{sig})
			case <-pipes:
				// EPIPE is reported by the failing write.
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		signal.Stop(pipes)
		close(done)
		cancel(nil)
	}
}
