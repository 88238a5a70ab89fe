package securebuf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
	"golang.org/x/sys/unix"
)

// Tests of what is particular to AccessPKey: access is granted per thread,
// with no change to the page tables.

// newPKeyFactory returns an AccessPKey factory; the caller has checked
// pkeyOrRefusal.
func newPKeyFactory(t testing.TB, opts ...Option) *Factory {
	t.Helper()
	f := newTestFactory(t, append(opts, WithAccessMode(AccessPKey))...)
	if f.AccessMode() != AccessPKey || f.pkey <= 0 {
		t.Fatalf("factory mode %v key %d", f.AccessMode(), f.pkey)
	}
	return f
}

// onLockedThread runs fn on a new goroutine locked to its own OS thread
// and returns when fn has returned. The thread is discarded afterwards
// (the goroutine exits locked), so it never serves another goroutine.
func onLockedThread(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		fn()
	}()
	<-done
}

func threadCount(t testing.TB) int {
	t.Helper()
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(st), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads: in /proc/self/status")
	return 0
}

// As TestNoAccessAtRestReadOnlyInsideWithBytes, for AccessPKey: denied at
// rest, read-only inside WithBytes, denied again after a normal return, an
// error and a panic; the page tables never change, and the thread's PKRU
// is back to its exact value.
func TestPKeyAccessStateMachine(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newPKeyFactory(t)
	s, err := newPattern(f, 2, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	data := stateOf(s).data
	p := &data[7]
	addr := addrOf(stateOf(s).reg.inner)
	perms := func() string { return mustSmaps(t, addr).perms }
	denied := func(when string) {
		t.Helper()
		if a, faulted := probe(p, false); !faulted || a != uintptr(unsafe.Pointer(p)) {
			t.Errorf("%s: read faulted=%v at %#x, want a fault at %#x", when, faulted, a, uintptr(unsafe.Pointer(p)))
		}
		if pr := perms(); pr != "rw-p" {
			t.Errorf("%s: data pages are %s, want rw-p (the key protects them, not the page tables)", when, pr)
		}
	}
	// The test goroutine stays on one thread so that its PKRU can be
	// compared before and after.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := memcall.ReadPKRU()
	if !memcall.PKRUDeniesAccess(before, f.pkey) {
		t.Fatalf("PKRU %#x of this thread allows key %d at rest", before, f.pkey)
	}
	denied("at rest")

	var readOK, writeFaulted bool
	var inside string
	if err := s.WithBytes(func(b []byte) error {
		_, rf := probe(&b[7], false)
		readOK = !rf
		_, writeFaulted = probe(&b[7], true)
		inside = perms()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !readOK || !writeFaulted {
		t.Errorf("inside WithBytes: read ok %v, write faulted %v; want true, true", readOK, writeFaulted)
	}
	if inside != "rw-p" {
		t.Errorf("inside WithBytes the pages are %s: WithBytes changed the page tables", inside)
	}
	mustEqual(t, s, patternBytes(2, 32)) // the refused write changed nothing
	if got := memcall.ReadPKRU(); got != before {
		t.Errorf("PKRU after WithBytes %#x, before %#x", got, before)
	}
	denied("after WithBytes")

	boom := errors.New("callback failed")
	if err := s.WithBytes(func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("WithBytes returned %v, want the callback's error", err)
	}
	denied("after a failing callback")

	func() {
		defer func() {
			if r := recover(); r != "callback panicked" {
				t.Errorf("recovered %v", r)
			}
		}()
		_ = s.WithBytes(func([]byte) error { panic("callback panicked") })
	}()
	denied("after a panicking callback")
	if got := memcall.ReadPKRU(); got != before {
		t.Errorf("PKRU after a panicking callback %#x, before %#x", got, before)
	}
	if st := stateOf(s); st.readers != 0 {
		t.Errorf("reader count after panic = %d", st.readers)
	}

	// A fault inside the callback (recovered by the caller) also ends
	// with the key closed.
	func() {
		defer func() { _ = recover() }()
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		_ = s.WithBytes(func(b []byte) error { b[0] = 1; return nil })
	}()
	denied("after a callback that faulted")
	mustEqual(t, s, patternBytes(2, 32))
}

// As TestNestedAndConcurrentReadersKeepPagesReadable, for AccessPKey: a
// nested callback restores the outer one's access when it returns, and one
// goroutine's callback leaving does not close another goroutine's.
func TestPKeyNestedAndConcurrentReaders(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newPKeyFactory(t)
	a, err := newPattern(f, 14, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := newPattern(f, 15, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	pa := &stateOf(a).data[0]
	readable := func(p *byte) bool { _, faulted := probe(p, false); return !faulted }

	err = a.WithBytes(func(outer []byte) error {
		for _, inner := range []Secret{a, b} { // the same secret and another one
			if err := inner.WithBytes(func([]byte) error {
				if !readable(pa) {
					t.Error("outer secret unreadable inside a nested callback")
				}
				return nil
			}); err != nil {
				return err
			}
			if !readable(&outer[0]) {
				t.Error("the outer callback lost access when the nested one returned")
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if readable(pa) {
		t.Error("readable after the nested callbacks returned")
	}

	entered, leave, left := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		left <- a.WithBytes(func(p []byte) error {
			close(entered)
			<-leave
			if !readable(&p[31]) {
				return errors.New("the first reader lost access when another goroutine's callback returned")
			}
			return nil
		})
	}()
	<-entered
	// This goroutine (on whatever thread) cannot read while the other
	// goroutine's callback is open, can inside its own callback, and
	// cannot again after it.
	onLockedThread(func() {
		if readable(pa) {
			t.Error("another goroutine's open callback made the secret readable here")
		}
		if err := a.WithBytes(func([]byte) error { return nil }); err != nil {
			t.Error(err)
		}
		if readable(pa) {
			t.Error("readable after this goroutine's callback returned")
		}
	})
	close(leave)
	if err := <-left; err != nil {
		t.Fatal(err)
	}
}

// The property AccessMprotect does not have: while a callback is open on
// one thread, a read of the same bytes from another thread faults. The
// control shows that AccessMprotect lets it through.
func TestPKeyOtherThreadFaults(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	for _, c := range []struct {
		mode        AccessMode
		wantFaulted bool
	}{{AccessPKey, true}, {AccessMprotect, false}} {
		t.Run(c.mode.String(), func(t *testing.T) {
			f := newTestFactory(t, WithAccessMode(c.mode))
			s, err := newPattern(f, 31, 32)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			p := &stateOf(s).data[3]
			entered, leave, left := make(chan int), make(chan struct{}), make(chan error)
			go func() {
				// Locked in both modes, so that the other reader
				// cannot run on this thread while it waits.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				left <- s.WithBytes(func(b []byte) error {
					entered <- unix.Gettid()
					<-leave
					return nil
				})
			}()
			ownerTID := <-entered
			var otherTID int
			var faulted bool
			var addr uintptr
			onLockedThread(func() {
				otherTID = unix.Gettid()
				addr, faulted = probe(p, false)
			})
			close(leave)
			if err := <-left; err != nil {
				t.Fatal(err)
			}
			if otherTID == ownerTID {
				t.Fatalf("both readers ran on thread %d", otherTID)
			}
			if faulted != c.wantFaulted {
				t.Fatalf("thread %d read while thread %d had a callback open: faulted=%v, want %v", otherTID, ownerTID, faulted, c.wantFaulted)
			}
			if faulted && addr != uintptr(unsafe.Pointer(p)) {
				t.Errorf("fault at %#x, want %#x", addr, uintptr(unsafe.Pointer(p)))
			}
		})
	}
}

// Threads that the runtime creates while a callback is open do not inherit
// the open key. The callback starts goroutines that each lock a thread and
// hold it, so the runtime must create new threads; because the calling
// thread is locked, runtime.newm hands their creation to the template
// thread instead of cloning the calling thread (and its PKRU).
func TestPKeyNewThreadsDoNotInherit(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newPKeyFactory(t)
	s, err := newPattern(f, 32, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := &stateOf(s).data[0]
	// More locked goroutines than the process has threads: however many
	// idle threads earlier tests left, some must be created.
	n := threadCount(t) + 4
	type result struct {
		tid     int
		faulted bool
		pkru    uint32
	}
	results := make(chan result, n)
	hold := make(chan struct{})
	var wg sync.WaitGroup
	var before, after, ownerTID int
	err = s.WithBytes(func(b []byte) error {
		ownerTID = unix.Gettid()
		before = threadCount(t)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				_, faulted := probe(p, false)
				results <- result{unix.Gettid(), faulted, memcall.ReadPKRU()}
				<-hold
			}()
		}
		got := make([]result, 0, n)
		for range n {
			got = append(got, <-results)
		}
		after = threadCount(t)
		for _, r := range got {
			results <- r
		}
		sink = b[0] // still readable here
		return nil
	})
	close(hold)
	wg.Wait()
	close(results)
	if err != nil {
		t.Fatal(err)
	}
	tids := map[int]bool{}
	for r := range results {
		tids[r.tid] = true
		if !r.faulted {
			t.Errorf("thread %d read the secret while thread %d had a callback open (its PKRU %#x)", r.tid, ownerTID, r.pkru)
		}
		if !memcall.PKRUDeniesAccess(r.pkru, f.pkey) {
			t.Errorf("thread %d has PKRU %#x, which allows key %d", r.tid, r.pkru, f.pkey)
		}
	}
	if len(tids) != n || tids[ownerTID] {
		t.Fatalf("%d distinct threads (owner %d among them: %v), want %d others", len(tids), ownerTID, tids[ownerTID], n)
	}
	if after <= before {
		t.Fatalf("thread count %d -> %d: no thread was created during the callback, so the test proved nothing", before, after)
	}
	t.Logf("threads %d -> %d during the callback; all %d locked readers faulted", before, after, n)
}

// Signals delivered during a callback (the runtime's preemption signal,
// SIGURG, and a busy loop that invites asynchronous preemption) leave the
// thread's access as it was: the kernel runs handlers with its init PKRU
// and sigreturn restores ours.
func TestPKeySignalsKeepAccess(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newPKeyFactory(t)
	s, err := newPattern(f, 33, 32)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := patternBytes(33, 32)
	var sum, wantSum int
	for _, c := range want {
		wantSum += int(c)
	}
	const rounds = 200
	err = s.WithBytes(func(b []byte) error {
		open := memcall.ReadPKRU()
		pid, tid := unix.Getpid(), unix.Gettid()
		for i := range rounds {
			if err := unix.Tgkill(pid, tid, unix.SIGURG); err != nil {
				return err
			}
			for j := range 20000 { // a loop long enough to be preempted in
				sum += int(b[j%len(b)])
			}
			if i%50 == 0 {
				runtime.Gosched()
			}
		}
		if got := memcall.ReadPKRU(); got != open {
			return fmt.Errorf("PKRU %#x after %d signals, %#x before", got, rounds, open)
		}
		if unix.Gettid() != tid {
			return errors.New("the callback moved to another thread")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum != rounds*20000/len(want)*wantSum {
		t.Errorf("the callback read wrong bytes: sum %d", sum)
	}
	if _, faulted := probe(&stateOf(s).data[0], false); !faulted {
		t.Error("readable after the callback")
	}
}

// pkeyRestore puts back only the key's own bits: a change to another key's
// bits made during the callback survives.
func TestPKeyRestoreKeepsOtherKeys(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	k, err := processPKey()
	if err != nil {
		t.Fatal(err)
	}
	other, err := memcall.PKeyAlloc()
	if err != nil {
		testenv.Missing(t, "no second protection key: "+err.Error())
	}
	defer memcall.PKeyFree(other)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start := memcall.ReadPKRU()
	defer memcall.WritePKRU(start)
	for _, write := range []bool{false, true} {
		old := pkeyOpen(k, write)
		if old != start {
			t.Fatalf("pkeyOpen returned %#x, PKRU was %#x", old, start)
		}
		open := memcall.ReadPKRU()
		wantOpen := memcall.PKRURead(start, k)
		if write {
			wantOpen = memcall.PKRUWrite(start, k)
		}
		if open != wantOpen {
			t.Fatalf("write=%v: open PKRU %#x, want %#x", write, open, wantOpen)
		}
		memcall.WritePKRU(memcall.PKRUWrite(open, other)) // someone opens another key meanwhile
		pkeyRestore(k, old)
		got := memcall.ReadPKRU()
		if got&memcall.PKRUMask(k) != start&memcall.PKRUMask(k) {
			t.Errorf("write=%v: key %d bits %#x after restore, want %#x", write, k, got&memcall.PKRUMask(k), start&memcall.PKRUMask(k))
		}
		if got&memcall.PKRUMask(other) != 0 {
			t.Errorf("write=%v: restore clobbered key %d's bits (PKRU %#x)", write, other, got)
		}
		memcall.WritePKRU(start)
	}
}

// Many goroutines read, nest, fail, panic, create and close PKey secrets at
// once (run with -race as well). Afterwards every thread the runtime has,
// including those that ran callbacks, denies the key: locked probes on as
// many threads as can be had all fault.
func TestPKeyConcurrentUseLeavesEveryThreadDenied(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newPKeyFactory(t)
	shared := make([]Secret, 4)
	for i := range shared {
		s, err := newPattern(f, uint64(40+i), 32)
		if err != nil {
			t.Fatal(err)
		}
		shared[i] = s
	}
	defer func() {
		for _, s := range shared {
			_ = s.Close()
		}
	}()
	const workers, rounds = 8, 200
	boom := errors.New("boom")
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				a, b := shared[(w+i)%len(shared)], shared[(w+2*i+1)%len(shared)]
				want := patternBytes(uint64(40+(w+i)%len(shared)), 32)
				var err error
				switch i % 5 {
				case 0:
					err = a.WithBytes(func(p []byte) error {
						if !bytes.Equal(p, want) {
							return errors.New("wrong bytes")
						}
						return nil
					})
				case 1:
					_, err = Equal(a, b)
				case 2:
					if e := a.WithBytes(func([]byte) error { return boom }); !errors.Is(e, boom) {
						err = fmt.Errorf("failing callback returned %v", e)
					}
				case 3:
					func() {
						defer func() { _ = recover() }()
						_ = a.WithBytes(func([]byte) error { panic("x") })
					}()
				case 4:
					s, e := f.CreateRandom(32)
					if e != nil {
						err = e
						break
					}
					go func() { _ = s.WithBytes(func([]byte) error { return nil }) }()
					err = s.Close()
				}
				if err != nil && !errors.Is(err, ErrClosed) {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Probe on many threads at once: idle threads are reused first, so
	// the ones that ran callbacks are among them.
	p := &stateOf(shared[0]).data[0]
	n := max(threadCount(t), 4*runtime.GOMAXPROCS(0))
	type res struct {
		tid     int
		faulted bool
	}
	out := make(chan res, n)
	hold := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			_, faulted := probe(p, false)
			out <- res{unix.Gettid(), faulted}
			<-hold
		}()
	}
	tids := map[int]bool{}
	for range n {
		r := <-out
		tids[r.tid] = true
		if !r.faulted {
			t.Errorf("thread %d can read a secret at rest", r.tid)
		}
	}
	close(hold)
	if len(tids) != n {
		t.Fatalf("%d probes ran on %d threads", n, len(tids))
	}
	for i, s := range shared {
		mustEqual(t, s, patternBytes(uint64(40+i), 32))
	}
}

func init() {
	childModes["pkey-open-at-start"] = func() error {
		if !memcall.CPUHasOSPKE() {
			return errors.New("no OSPKE")
		}
		// Simulate a process whose threads start with every key open
		// (a non-default init_pkru): the allocation must refuse.
		runtime.LockOSThread()
		memcall.WritePKRU(0)
		err := PKeyAvailable()
		if !errors.Is(err, ErrNoPKey) || !strings.Contains(err.Error(), "threads start with access") {
			return fmt.Errorf("PKeyAvailable with PKRU 0: %v", err)
		}
		if _, err := NewFactory(WithAccessMode(AccessPKey)); !errors.Is(err, ErrNoPKey) {
			return fmt.Errorf("AccessPKey with PKRU 0: %v", err)
		}
		l := &recLogger{}
		f, err := NewFactory(WithAccessMode(AccessAuto), WithLogger(l))
		if err != nil {
			return err
		}
		if f.AccessMode() != AccessMprotect {
			return fmt.Errorf("AccessAuto with PKRU 0 chose %v", f.AccessMode())
		}
		if msgs := l.all(); len(msgs) != 1 || !strings.Contains(msgs[0], "AccessAuto uses mprotect: "+ErrNoPKey.Error()) {
			return fmt.Errorf("AccessAuto's fallback was logged as %q", msgs)
		}
		s, err := f.CreateRandom(32)
		if err != nil {
			return err
		}
		return s.Close()
	}
}

// A process whose threads could already access a fresh key gets no PKey
// mode: the key would protect nothing at rest.
func TestPKeyRefusedWhenThreadsStartOpen(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := childCommand(t, ctx, "pkey-open-at-start").CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
