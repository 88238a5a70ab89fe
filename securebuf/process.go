package securebuf

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// DisableCoreDumps turns core dumps off for the whole process: RLIMIT_CORE
// soft and hard limits become 0 (the hard limit cannot be raised again
// without CAP_SYS_RESOURCE), and on Linux the process is marked not
// dumpable, which also stops same-user debuggers from attaching. Importing
// securebuf never does this; call it deliberately. Secrets are excluded from
// dumps page by page (MADV_DONTDUMP) without it. On Windows it returns an
// error matching errors.ErrUnsupported.
func DisableCoreDumps() error {
	if err := memcall.DisableCoreDumps(); err != nil {
		return fmt.Errorf("securebuf: disable core dumps: %w", err)
	}
	return nil
}

// PurgeOnSignal purges every secret (see Purge) when one of sigs arrives
// (default: os.Interrupt and SIGTERM), then stops listening and sends the
// signal to the process again, so that it has the effect it would have had
// without PurgeOnSignal: unless the program listens for it too, SIGINT or
// SIGTERM then ends the process. On Windows, where a signal cannot be sent
// again, the process exits with status 1. Importing securebuf installs no
// handler.
//
// The returned stop function removes the handler; it is idempotent.
func PurgeOnSignal(sigs ...os.Signal) (stop func()) {
	if len(sigs) == 0 {
		sigs = []os.Signal{os.Interrupt, syscall.SIGTERM}
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	done := make(chan struct{})
	go func() {
		select {
		case sig := <-ch:
			Purge()
			signal.Stop(ch)
			if err := raise(sig); err != nil {
				os.Exit(1)
			}
		case <-done:
			signal.Stop(ch)
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}

func raise(sig os.Signal) error {
	p, err := os.FindProcess(os.Getpid())
	if err != nil {
		return err
	}
	return p.Signal(sig)
}

// Preflight reports, without allocating, whether this process can hold
// expectedSecrets more secrets of up to one page each with the default
// layout (one locked page and up to three mappings per secret). It returns
// nil when they fit, or an error matching ErrLockLimit and/or ErrMapLimit
// that says what to raise. Call it at start-up to warn early.
func Preflight(expectedSecrets int) error {
	if expectedSecrets < 0 {
		return fmt.Errorf("%w: Preflight(%d)", ErrInvalidSize, expectedSecrets)
	}
	l := memcall.ReadLimits()
	need := int64(expectedSecrets) * int64(memcall.PageSize())
	var errs []error
	if !l.CanLockAll && l.MemlockSoft >= 0 && max(l.Locked, 0)+need > l.MemlockSoft {
		errs = append(errs, newLimitError(ErrLockLimit, "preflight", int(need), l,
			fmt.Errorf("%d secrets need %d locked bytes", expectedSecrets, need)))
	}
	if l.MaxMapCount >= 0 && l.MapCount >= 0 && l.MapCount+3*int64(expectedSecrets) > l.MaxMapCount {
		errs = append(errs, newLimitError(ErrMapLimit, "preflight", int(need), l,
			fmt.Errorf("%d secrets need up to %d more mappings", expectedSecrets, 3*expectedSecrets)))
	}
	return errors.Join(errs...)
}
