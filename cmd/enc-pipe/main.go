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

// signalContext returns a context that is cancelled, with a signalError
// cause, on the first SIGINT or SIGTERM. After that first signal the
// default action is restored, so a second Ctrl-C ends the process at once.
// SIGPIPE is caught too, so that a write to a closed stdout returns EPIPE
// (handled as a quiet end) instead of killing the process before it can
// clean up.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	pipes := make(chan os.Signal, 1)
	signal.Notify(pipes, syscall.SIGPIPE)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				signal.Reset(syscall.SIGINT, syscall.SIGTERM)
				cancel(signalError{s.(syscall.Signal)})
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
