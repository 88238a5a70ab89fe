//go:build darwin || freebsd

package memcall

import "golang.org/x/sys/unix"

func rlimitOnly() Limits {
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
	l.CanLockAll = unix.Geteuid() == 0
	return l
}
