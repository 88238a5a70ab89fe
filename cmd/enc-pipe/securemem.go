package main

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// keyAccess parses --key-access (ENC_PIPE_KEY_ACCESS).
func (a *app) keyAccess() (envelope.KeyAccess, error) {
	k, err := envelope.ParseKeyAccess(a.g.keyAccess)
	if err != nil {
		return 0, usageErrorf("--key-access %q: want cached or strict", a.g.keyAccess)
	}
	return k, nil
}

// secureMemory parses --secure-memory (ENC_PIPE_SECURE_MEMORY).
func (a *app) secureMemory() (securebuf.AccessMode, error) {
	return config.ParseSecureMemory(a.g.secureMemory)
}

// newSecretFactory makes the securebuf.Factory that holds every key of the
// run (master key, system, intermediate and data keys) in mode. The caller
// closes it after everything that holds secrets made by it. "pkey" where
// memory protection keys are unavailable is a usage error that says why.
func newSecretFactory(mode securebuf.AccessMode, opts ...securebuf.Option) (*securebuf.Factory, error) {
	sf, err := securebuf.NewFactory(append([]securebuf.Option{securebuf.WithAccessMode(mode)}, opts...)...)
	if errors.Is(err, securebuf.ErrNoPKey) {
		return nil, usageErrorf("--secure-memory pkey: %v (use auto or mprotect)", err)
	}
	if err != nil {
		return nil, keyError(err, "cannot set up protected memory")
	}
	return sf, nil
}

// secretObservability are the securebuf options that report to the run's
// metrics and, at debug level, log (a logger makes securebuf record each
// secret's creation stack, which costs microseconds per secret: only
// when debugging).
func (a *app) secretObservability() []securebuf.Option {
	var opts []securebuf.Option
	if !metrics.IsDiscard(a.obs.provider) {
		opts = append(opts, securebuf.WithMetrics(a.obs.provider))
	}
	if a.obs.debug {
		opts = append(opts, securebuf.WithLogger(debugfLogger{a.obs.log}))
	}
	return opts
}

// debugfLogger adapts a slog.Logger to securebuf.Logger, at debug level.
type debugfLogger struct{ l *slog.Logger }

func (d debugfLogger) Debugf(format string, args ...any) {
	d.l.Debug(fmt.Sprintf(format, args...), "component", "securebuf")
}

// limitCoreDumps turns core dumps off for the rest of the process, unless
// --allow-core-dumps: RLIMIT_CORE becomes 0 (soft and hard) and, on Linux,
// the process is marked not dumpable (PR_SET_DUMPABLE 0), which also keeps
// debuggers of the same user from attaching. Keys live in memory that is
// excluded from dumps anyway; what a dump would hold are AES key schedules
// and GCM tables that crypto/aes builds on the heap, and plaintext in
// transit. It runs before any command touches a key. Where the system
// has no such control (Windows) nothing is done.
func (a *app) limitCoreDumps() error {
	if a.g.allowCoreDumps {
		return nil
	}
	err := securebuf.DisableCoreDumps()
	if err == nil || errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	return &cliError{code: exitFailure, msg: "cannot turn core dumps off (--allow-core-dumps runs without)", err: err}
}

// secureMemoryLine describes, for "enc-pipe version", how keys are
// protected in memory with the current setting: the mode in use and, when
// auto fell back to mprotect, why.
func (a *app) secureMemoryLine() (string, error) {
	mode, err := a.secureMemory()
	if err != nil {
		return "", err
	}
	sf, err := newSecretFactory(mode)
	if err != nil {
		return "", err
	}
	defer sf.Close()
	used := sf.AccessMode()
	line := fmt.Sprintf("secure memory: %s (--secure-memory %s)", used, mode)
	if mode == securebuf.AccessAuto && used != securebuf.AccessPKey {
		line += fmt.Sprintf("; %v", securebuf.PKeyAvailable())
	}
	return line, nil
}
