package memcall

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

const mapFlags = 0

// DontDump excludes the pages of b from core dumps (MADV_DONTDUMP).
func DontDump(b []byte) error { return unix.Madvise(b, unix.MADV_DONTDUMP) }

// WipeOnFork makes a forked child see the pages of b as zeros
// (MADV_WIPEONFORK, Linux 4.14 and later; EINVAL before).
func WipeOnFork(b []byte) error { return unix.Madvise(b, unix.MADV_WIPEONFORK) }

// HasDumpExclusion reports whether DontDump really keeps pages out of core
// dumps on this platform.
const HasDumpExclusion = true

// ReadLimits reports the current locking limits (see Limits).
func ReadLimits() Limits {
	l := Limits{MemlockSoft: -1, MemlockHard: -1, Locked: -1, MapCount: -1, MaxMapCount: -1}
	var r unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &r) == nil {
		if r.Cur != unix.RLIM_INFINITY {
			l.MemlockSoft = int64(r.Cur)
		}
		if r.Max != unix.RLIM_INFINITY {
			l.MemlockHard = int64(r.Max)
		}
	}
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		if v, ok := statusField(st, "VmLck:"); ok {
			l.Locked = v * 1024 // reported in kB
		}
		if v, ok := statusHex(st, "CapEff:"); ok {
			l.CanLockAll = v&(1<<unix.CAP_IPC_LOCK) != 0
		}
	}
	if m, err := os.ReadFile("/proc/self/maps"); err == nil {
		l.MapCount = int64(bytes.Count(m, []byte{'\n'}))
	}
	if m, err := os.ReadFile("/proc/sys/vm/max_map_count"); err == nil {
		if v, err := strconv.ParseInt(string(bytes.TrimSpace(m)), 10, 64); err == nil {
			l.MaxMapCount = v
		}
	}
	return l
}

func statusLine(st []byte, key string) []byte {
	i := bytes.Index(st, []byte("\n"+key))
	if i < 0 {
		return nil
	}
	line := st[i+1+len(key):]
	if j := bytes.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	return bytes.TrimSpace(line)
}

func statusField(st []byte, key string) (int64, bool) {
	f := bytes.Fields(statusLine(st, key))
	if len(f) == 0 {
		return 0, false
	}
	v, err := strconv.ParseInt(string(f[0]), 10, 64)
	return v, err == nil
}

func statusHex(st []byte, key string) (uint64, bool) {
	v, err := strconv.ParseUint(string(statusLine(st, key)), 16, 64)
	return v, err == nil
}

// DisableCoreDumps sets RLIMIT_CORE to 0 (soft and hard) and marks the
// process not dumpable (PR_SET_DUMPABLE 0), which also stops same-user
// debuggers from attaching.
func DisableCoreDumps() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}
