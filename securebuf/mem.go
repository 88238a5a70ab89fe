package securebuf

import (
	"fmt"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// memOps is the operating-system layer as the rest of the package sees it.
// Production code uses osMem; tests wrap it to inject failures between real
// system calls.
type memOps interface {
	Map(n int, p memcall.Prot) ([]byte, error)
	Unmap(b []byte) error
	Protect(b []byte, p memcall.Prot) error
	PKeyProtect(b []byte, p memcall.Prot, key int) error
	Lock(b []byte) error
	DontDump(b []byte) error
	WipeOnFork(b []byte) error
}

type osMem struct{}

func (osMem) Map(n int, p memcall.Prot) ([]byte, error)         { return memcall.Map(n, p) }
func (osMem) Unmap(b []byte) error                              { return memcall.Unmap(b) }
func (osMem) Protect(b []byte, p memcall.Prot) error            { return memcall.Protect(b, p) }
func (osMem) PKeyProtect(b []byte, p memcall.Prot, k int) error { return memcall.PKeyProtect(b, p, k) }
func (osMem) Lock(b []byte) error                               { return memcall.Lock(b) }
func (osMem) DontDump(b []byte) error                           { return memcall.DontDump(b) }
func (osMem) WipeOnFork(b []byte) error                         { return memcall.WipeOnFork(b) }

var _ memOps = osMem{}

// region is one mapping: optional guard pages around data pages.
type region struct {
	all    []byte // the whole mapping, guard pages included
	inner  []byte // the data pages
	locked int    // bytes of inner that are locked (0 when degraded)
}

func roundPages(n int) int {
	ps := memcall.PageSize()
	return (n + ps - 1) / ps * ps
}

// mapRegion must be called with no package lock held: it reports metrics
// and may log, and Metrics and Logger implementations may call back into
// this package.
//
// mapRegion maps dataBytes (a multiple of the page size) of data pages,
// with guard pages around them when the factory wants them. The data pages
// come back read-write, excluded from core dumps and locked (unless locking
// failed and the factory does not require it). With a protection key
// (pkey != noPKey) they are tagged with it before anything is written, so
// only a thread that opens the key can read or write them. On error
// nothing is left mapped and the failure has been counted.
func (f *Factory) mapRegion(dataBytes, pkey int) (region, error) {
	r, err := f.mapRegion1(dataBytes, pkey)
	if err != nil {
		f.opts.metrics.Add(metricFor(err), 1)
	}
	return r, err
}

func (f *Factory) mapRegion1(dataBytes, pkey int) (region, error) {
	guard := 0
	prot := memcall.ReadWrite
	if f.opts.guardPages {
		guard = memcall.PageSize()
		prot = memcall.NoAccess
	}
	total := dataBytes + 2*guard
	all, err := f.mem.Map(total, prot)
	if err != nil {
		return region{}, classifyMapErr("mmap", total, err, ErrProtect, f.readLimits)
	}
	r := region{all: all, inner: all[guard : guard+dataBytes : guard+dataBytes]}
	fail := func(err error) (region, error) {
		_ = f.mem.Unmap(all)
		return region{}, err
	}
	// Exclude from dumps before a single byte is written.
	if err := f.mem.DontDump(all); err != nil {
		return fail(fmt.Errorf("%w: madvise(MADV_DONTDUMP) of %d bytes: %w", ErrNoDontDump, total, err))
	}
	_ = f.mem.WipeOnFork(all) // best effort: EINVAL before Linux 4.14
	var lockErr error
	if pkey != noPKey {
		// The data pages become read-write in the page tables and
		// tagged: the guard pages keep key 0 and PROT_NONE.
		if err := f.mem.PKeyProtect(r.inner, memcall.ReadWrite, pkey); err != nil {
			return fail(classifyMapErr("pkey_mprotect", dataBytes, err, ErrProtect, f.readLimits))
		}
		// mlock faults the pages in for writing, which the kernel
		// refuses (ENOMEM) unless this thread may write them.
		withPKeyAccess(pkey, true, func() { lockErr = f.mem.Lock(r.inner) })
	} else {
		if guard > 0 {
			if err := f.mem.Protect(r.inner, memcall.ReadWrite); err != nil {
				return fail(classifyMapErr("mprotect", dataBytes, err, ErrProtect, f.readLimits))
			}
		}
		lockErr = f.mem.Lock(r.inner)
	}
	if lockErr != nil {
		lerr := classifyLockErr("mlock", dataBytes, lockErr, f.readLimits)
		if f.opts.requireLock {
			return fail(lerr)
		}
		f.opts.metrics.Add(LockDegraded, 1)
		if f.opts.logger != nil {
			f.opts.logger.Debugf("securebuf: WARNING: running unlocked (WithRequireLock(false)), memory may be swapped: %v", lerr)
		}
	} else {
		r.locked = dataBytes
		f.opts.metrics.Add(LockedBytes, int64(dataBytes))
	}
	return r, nil
}

// unmapRegion releases r, which the caller has wiped. It reports no
// metrics, because it runs under locks: the caller reports LockedBytes
// after unlocking.
func (f *Factory) unmapRegion(r region) error {
	if err := f.mem.Unmap(r.all); err != nil {
		return fmt.Errorf("securebuf: munmap of %d bytes: %w", len(r.all), err)
	}
	return nil
}
