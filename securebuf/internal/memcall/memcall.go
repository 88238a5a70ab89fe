// Package memcall is the operating-system layer of securebuf: it maps,
// protects, locks and unmaps anonymous memory outside the Go heap, and reads
// the limits that decide whether locking can succeed.
//
// It holds no state and makes no policy decisions; every function is a thin,
// allocation-free wrapper over one system call (or a short read of /proc on
// Linux for the diagnostics), or, for memory protection keys on
// linux/amd64, over one instruction (CPUID, RDPKRU, WRPKRU; pkey_*.go).
// All functions are safe for concurrent use; ReadPKRU and WritePKRU act on
// the calling thread only.
package memcall

import "os"

// Prot is a page protection.
type Prot int

// Page protections.
const (
	NoAccess  Prot = iota // PROT_NONE / PAGE_NOACCESS
	ReadOnly              // PROT_READ / PAGE_READONLY
	ReadWrite             // PROT_READ|PROT_WRITE / PAGE_READWRITE
)

func (p Prot) String() string {
	switch p {
	case NoAccess:
		return "none"
	case ReadOnly:
		return "read"
	case ReadWrite:
		return "read-write"
	}
	return "invalid"
}

var pageSize = os.Getpagesize()

// PageSize is the size of a memory page in bytes.
func PageSize() int { return pageSize }

// Limits describes what bounds locked memory and mappings in this process.
// A field is -1 when the platform does not report it.
type Limits struct {
	MemlockSoft int64 // RLIMIT_MEMLOCK soft limit in bytes (-1: unlimited or unknown)
	MemlockHard int64 // RLIMIT_MEMLOCK hard limit in bytes (-1: unlimited or unknown)
	Locked      int64 // bytes locked by this process now (VmLck)
	CanLockAll  bool  // the process may lock beyond RLIMIT_MEMLOCK (CAP_IPC_LOCK)
	MapCount    int64 // memory mappings of this process now
	MaxMapCount int64 // vm.max_map_count
}
