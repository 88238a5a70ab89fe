// Package securebuf keeps secrets (encryption keys) in protected memory.
//
// # What a Secret is
//
// A Secret lives in memory mapped with mmap (VirtualAlloc on Windows),
// never in the Go heap, so the garbage collector never copies it and Close
// can wipe the only copy. Its pages are
//
//   - excluded from core dumps (MADV_DONTDUMP, set before any byte is
//     written; a failure is an error, ErrNoDontDump, because a page that is
//     merely no-access still lands in a dump),
//   - wiped in a forked child (MADV_WIPEONFORK, best effort),
//   - locked in RAM (mlock; a failure is ErrLockLimit unless the Factory is
//     built WithRequireLock(false)),
//   - no-access while at rest and read-only while a WithBytes callback runs
//     (a reader count makes the first reader open them and the last reader
//     close them again, also when the callback fails or panics),
//   - surrounded by two unlocked no-access guard pages, with the data
//     right-aligned against the trailing one so an overrun faults at once,
//     and a random canary in front of the data that Close checks (ErrCanary).
//
// Guard pages and the canary can be turned off per Factory (WithGuardPages,
// WithCanary) when thousands of secrets must fit under vm.max_map_count.
//
// # Contracts
//
//   - Factory.New copies its input in constant time and then wipes the
//     input; on error the input is left untouched. CreateRandom reads
//     crypto/rand straight into the locked page.
//   - The slice given to a WithBytes callback is valid only during the call
//     and must not be kept; writing to it faults.
//   - Every method of a Secret and a Factory is safe for concurrent use.
//     Close waits for running callbacks, then wipes and unmaps; it is
//     idempotent and every call returns the first result. After Close every
//     method returns an error matching ErrClosed. Close must not be called
//     from inside a callback of the same secret (it would wait for itself).
//   - A Secret is owned by whoever created it, who must Close it. A Secret
//     dropped without Close is closed by the garbage collector, which counts
//     it (FinalizedUnclosed) and tells the Logger with the stack that
//     created it: a leak detector, not a way to manage secrets.
//   - Failures are errors, never panics; a failure never touches other
//     secrets, never purges anything, leaves no mapping behind, and no
//     package lock is held while a Metrics, Logger or user callback runs, so
//     those may call back into the package (even Purge) without deadlock.
//   - ErrLockLimit and ErrMapLimit are returned as *LimitError, whose
//     message gives RLIMIT_MEMLOCK (soft and hard), the bytes locked now,
//     the request and how to raise the limit, or the mapping count and
//     vm.max_map_count. Preflight checks the limits at start-up.
//   - Formatting a Secret or a Scratch (String, GoString, every fmt verb)
//     prints a redaction.
//   - Importing the package changes nothing in the process: it sets no
//     rlimit and installs no signal handler. DisableCoreDumps, Purge and
//     PurgeOnSignal do those things when called.
//
// # Scratch slots
//
// Creating and closing a Secret costs eight system calls (tens of
// microseconds on a 2-vCPU VM; see docs/PERFORMANCE.md), far more than
// encrypting a small record. Keys that live for one record, such as
// Asherah's per-record data keys, belong in a Scratch slot instead: a
// fixed 64-byte slot carved from pages that were mapped, locked and excluded
// from core dumps once, handed out from a free list and wiped on Release.
// Slots stay read-write (no no-access state at rest, no guard between
// slots), which is the price of their near-heap cost. The arena is bounded
// (WithScratchPages) and fails with ErrScratchFull rather than grow without
// limit. Factory.WithScratch is the allocation-free, scoped form.
//
// # Threat model: what this protects and what it does not
//
// Protected: the key bytes at rest in this process's memory against core
// dumps and gcore (Linux, FreeBSD), swap (when locked), forked children
// (Linux), stray reads through dangling or overrunning slices (no-access
// pages and guard pages fault instead of leaking), accidental logging
// (redacted formatting), and lingering copies after Close (wiped).
//
// Not protected:
//
//   - Anything derived from the key outside this package. crypto/aes and
//     crypto/cipher build their key schedules and GCM tables on the Go
//     heap; a cipher.AEAD made inside WithBytes holds expanded key material
//     that the GC may copy and never wipes. Keep such objects short-lived.
//     Go 1.26's runtime/secret (GOEXPERIMENT=runtimesecret, linux/amd64 and
//     arm64 only) can erase the registers, stack and heap temporaries of
//     code run inside secret.Do; it is an optional helper for the code that
//     uses a key, and it does not lock, protect or hide memory that lives
//     across calls.
//   - Bytes a caller copies out (NewReader, WithBytesFunc results, copies
//     made inside callbacks).
//   - A reader inside WithBytes: the pages are readable then, by any
//     goroutine and by anyone who can read this process's memory (ptrace,
//     /proc/pid/mem as the same user or root). DisableCoreDumps on Linux
//     also marks the process not dumpable, which stops same-user ptrace.
//   - Scratch slots are always readable and writable while mapped.
//   - macOS and Windows have no per-page exclusion from crash dumps; there
//     only DisableCoreDumps (macOS) or the system's dump settings help.
//   - Hibernation images, a hostile kernel or hypervisor, and side channels
//     other than comparison timing (Equal and EqualBytes are constant time
//     for equal lengths).
//
// # Platforms
//
// Linux has everything above. macOS and FreeBSD use mmap, mlock and
// mprotect (FreeBSD maps with MAP_NOCORE and MADV_NOCORE; macOS has no dump
// exclusion and no wipe-on-fork). Windows uses VirtualAlloc, VirtualLock
// (limited by the working-set quota; raise it with SetProcessWorkingSetSize)
// and VirtualProtect.
package securebuf
