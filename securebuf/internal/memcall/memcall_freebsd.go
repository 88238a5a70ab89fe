package memcall

import "golang.org/x/sys/unix"

const mapFlags = unix.MAP_NOCORE

// DontDump excludes the pages of b from core dumps (MADV_NOCORE; the
// mapping is already MAP_NOCORE).
func DontDump(b []byte) error { return unix.Madvise(b, unix.MADV_NOCORE) }

// WipeOnFork is not available on FreeBSD; it does nothing.
func WipeOnFork(b []byte) error { return nil }

// HasDumpExclusion reports whether DontDump really keeps pages out of core
// dumps on this platform.
const HasDumpExclusion = true

// ReadLimits reports the current locking limits (see Limits).
func ReadLimits() Limits { return rlimitOnly() }

// DisableCoreDumps sets RLIMIT_CORE to 0 (soft and hard).
func DisableCoreDumps() error { return unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}) }
