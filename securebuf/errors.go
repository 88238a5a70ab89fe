package securebuf

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// ErrScratchFull is returned by Factory.Scratch when every slot of the
// bounded scratch arena is in use (see WithScratchPages).
var ErrScratchFull = errors.New("securebuf: all scratch slots are in use")

// LimitError describes an allocation that failed at a resource limit. It
// matches ErrLockLimit or ErrMapLimit with errors.Is (Kind says which), and
// also the system error that the operating system returned.
//
// The limit fields are -1 when the platform does not report them.
type LimitError struct {
	Kind    error  // ErrLockLimit or ErrMapLimit
	Op      string // the failing call: "mmap", "mlock", "mprotect", "preflight"
	Request int    // bytes the call asked for

	MemlockSoft int64 // RLIMIT_MEMLOCK soft limit, bytes (Windows: working-set minimum)
	MemlockHard int64 // RLIMIT_MEMLOCK hard limit, bytes (Windows: working-set maximum)
	Locked      int64 // bytes locked by the process (VmLck)
	CanLockAll  bool  // the process holds CAP_IPC_LOCK
	MapCount    int64 // mappings of the process
	MaxMapCount int64 // vm.max_map_count

	Err error // the system error, such as ENOMEM
}

func newLimitError(kind error, op string, n int, l memcall.Limits, err error) *LimitError {
	return &LimitError{Kind: kind, Op: op, Request: n,
		MemlockSoft: l.MemlockSoft, MemlockHard: l.MemlockHard, Locked: l.Locked, CanLockAll: l.CanLockAll,
		MapCount: l.MapCount, MaxMapCount: l.MaxMapCount, Err: err}
}

func (e *LimitError) Error() string {
	var b strings.Builder
	l := e
	fmt.Fprintf(&b, "%v: %s of %d bytes failed (%v)", e.Kind, e.Op, e.Request, e.Err)
	if e.Kind == ErrLockLimit {
		if runtime.GOOS == "windows" {
			fmt.Fprintf(&b, "; working set min=%s max=%s; raise it with SetProcessWorkingSetSize",
				bytesOrUnknown(l.MemlockSoft), bytesOrUnknown(l.MemlockHard))
			return b.String()
		}
		fmt.Fprintf(&b, "; RLIMIT_MEMLOCK soft=%s hard=%s, locked now (VmLck)=%s",
			bytesOrUnknown(l.MemlockSoft), bytesOrUnknown(l.MemlockHard), bytesOrUnknown(l.Locked))
		b.WriteString("; raise the limit: grant CAP_IPC_LOCK, or `ulimit -l <KiB>`, docker run --ulimit memlock=<bytes>, " +
			"Kubernetes securityContext.capabilities.add [IPC_LOCK], systemd LimitMEMLOCK=; " +
			"or build the Factory with WithRequireLock(false) to run unlocked")
		return b.String()
	}
	fmt.Fprintf(&b, "; mappings now=%s, vm.max_map_count=%s", countOrUnknown(l.MapCount), countOrUnknown(l.MaxMapCount))
	b.WriteString("; raise vm.max_map_count (sysctl), close unused secrets, or use WithGuardPages(false) (1 mapping per secret instead of 3)")
	return b.String()
}

// Unwrap returns the kind sentinel and the system error.
func (e *LimitError) Unwrap() []error { return []error{e.Kind, e.Err} }

func bytesOrUnknown(v int64) string {
	if v < 0 {
		return "unlimited/unknown"
	}
	return fmt.Sprintf("%d bytes (%d KiB)", v, v/1024)
}

func countOrUnknown(v int64) string {
	if v < 0 {
		return "unknown"
	}
	return fmt.Sprint(v)
}

// classifyLockErr turns an mlock failure into an error. ENOMEM comes both
// from RLIMIT_MEMLOCK and from vm.max_map_count (mlock splits mappings), so
// the limits decide: without CAP_IPC_LOCK, locked bytes plus the request
// above the soft limit mean the lock limit; anything else is the map limit.
func classifyLockErr(op string, n int, err error, readLimits func() memcall.Limits) error {
	if !memcall.IsResourceError(err) {
		return fmt.Errorf("securebuf: %s of %d bytes: %w", op, n, err)
	}
	l := readLimits()
	kind := ErrMapLimit
	switch {
	case memcall.IsQuotaError(err):
		kind = ErrLockLimit
	case l.CanLockAll:
		kind = ErrMapLimit
	case l.MemlockSoft >= 0 && (l.Locked < 0 || l.Locked+int64(n) > l.MemlockSoft):
		kind = ErrLockLimit
	}
	return newLimitError(kind, op, n, l, err)
}

// classifyMapErr turns an mmap or mprotect failure into an error.
func classifyMapErr(op string, n int, err error, kindIfOther error, readLimits func() memcall.Limits) error {
	if memcall.IsResourceError(err) {
		return newLimitError(ErrMapLimit, op, n, readLimits(), err)
	}
	return fmt.Errorf("%w: %s of %d bytes: %w", kindIfOther, op, n, err)
}

func metricFor(err error) Metric {
	switch {
	case errors.Is(err, ErrLockLimit):
		return FailLockLimit
	case errors.Is(err, ErrMapLimit):
		return FailMapLimit
	case errors.Is(err, ErrNoDontDump):
		return FailDontDump
	}
	return FailProtect
}
