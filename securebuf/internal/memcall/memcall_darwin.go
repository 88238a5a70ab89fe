package memcall

import "golang.org/x/sys/unix"

const mapFlags = 0

// DontDump does nothing: macOS has no per-page core-dump exclusion. Core
// dumps are off by default there (RLIMIT_CORE 0); call DisableCoreDumps to
// make sure.
func DontDump(b []byte) error { return nil }

// WipeOnFork is not available on macOS; it does nothing.
func WipeOnFork(b []byte) error { return nil }

// HasDumpExclusion reports whether DontDump really keeps pages out of core
// dumps on this platform.
const HasDumpExclusion = false

// ReadLimits reports the current locking limits (see Limits).
func ReadLimits() Limits { return rlimitOnly() }

// DisableCoreDumps sets RLIMIT_CORE to 0 (soft and hard).
func DisableCoreDumps() error { return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}) }
