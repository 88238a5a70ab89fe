package securebuf

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
	"go.uber.org/goleak"
)

func TestRoundTripAndClosedErrors(t *testing.T) {
	forEachMode(t, testRoundTripAndClosedErrors)
}

func testRoundTripAndClosedErrors(t *testing.T, mode AccessMode) {
	for _, cfg := range []struct {
		name string
		opts []Option
	}{
		{"default", nil},
		{"noguard-nocanary", []Option{WithGuardPages(false), WithCanary(false)}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			f := newTestFactory(t, append(cfg.opts, WithAccessMode(mode))...)
			if f.AccessMode() != mode {
				t.Fatalf("factory uses %v, want %v", f.AccessMode(), mode)
			}
			want := patternBytes(1, 32)
			s, err := f.New(bytes.Clone(want))
			if err != nil {
				t.Fatal(err)
			}
			if s.Len() != 32 {
				t.Fatalf("Len = %d", s.Len())
			}
			mustEqual(t, s, want)
			got, err := io.ReadAll(s.NewReader())
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("NewReader read %d bytes, %v", len(got), err)
			}
			r := s.NewReader() // partial reads
			buf := make([]byte, 5)
			var acc []byte
			for {
				n, err := r.Read(buf)
				acc = append(acc, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(acc, want) {
				t.Fatal("5-byte reads did not reassemble the secret")
			}
			if s.IsClosed() {
				t.Fatal("IsClosed before Close")
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			if !s.IsClosed() || s.Len() != 32 {
				t.Fatalf("after Close: IsClosed %v Len %d", s.IsClosed(), s.Len())
			}
			if err := s.WithBytes(func([]byte) error { t.Error("callback ran after Close"); return nil }); !errors.Is(err, ErrClosed) {
				t.Errorf("WithBytes after Close: %v", err)
			}
			if _, err := s.WithBytesFunc(func([]byte) ([]byte, error) { return nil, nil }); !errors.Is(err, ErrClosed) {
				t.Errorf("WithBytesFunc after Close: %v", err)
			}
			if _, err := s.NewReader().Read(make([]byte, 4)); !errors.Is(err, ErrClosed) {
				t.Errorf("Read after Close: %v", err)
			}
			if _, err := Equal(s, s); !errors.Is(err, ErrClosed) {
				t.Errorf("Equal after Close: %v", err)
			}
		})
	}
}

// A reader's error is sticky: once the secret is closed it keeps failing.
func TestReaderStickyError(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode AccessMode) {
		f := newTestFactory(t, WithAccessMode(mode))
		s, _ := f.CreateRandom(8)
		r := s.NewReader()
		if _, err := r.Read(make([]byte, 2)); err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		for range 2 {
			if _, err := r.Read(make([]byte, 2)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Read after Close: %v", err)
			}
		}
	})
}

// New wipes its input (and only on success); CreateRandom puts nothing
// of the secret on the heap.
func TestNewWipesInputAndCreateRandomSkipsTheHeap(t *testing.T) {
	forEachMode(t, testNewWipesInputAndCreateRandomSkipsTheHeap)
}

func testNewWipesInputAndCreateRandomSkipsTheHeap(t *testing.T, mode AccessMode) {
	f := newTestFactory(t, WithMaxSize(1<<20), WithAccessMode(mode))
	in := patternBytes(7, 64)
	s, err := f.New(in)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !bytes.Equal(in, make([]byte, 64)) {
		t.Errorf("New left its input: %d non-zero bytes", 64-bytes.Count(in, []byte{0}))
	}
	mustEqual(t, s, patternBytes(7, 64))

	big := patternBytes(8, 1<<20+1)
	if _, err := f.New(big); !errors.Is(err, ErrInvalidSize) {
		t.Fatalf("New over the maximum: %v", err)
	}
	if !bytes.Equal(big, patternBytes(8, 1<<20+1)) {
		t.Error("a failed New changed its input")
	}

	// The heap cost of CreateRandom does not depend on the secret's size:
	// the bytes go straight into the mapping.
	allocs := func(n int) (count float64, bytesPerOp uint64) {
		var m0, m1 runtime.MemStats
		runtime.ReadMemStats(&m0)
		count = testing.AllocsPerRun(20, func() {
			s, err := f.CreateRandom(n)
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Close()
		})
		runtime.ReadMemStats(&m1)
		return count, (m1.TotalAlloc - m0.TotalAlloc) / 21
	}
	smallN, smallB := allocs(32)
	bigN, bigB := allocs(1 << 20)
	if bigN != smallN {
		t.Errorf("CreateRandom allocates %v objects for 1 MiB and %v for 32 bytes", bigN, smallN)
	}
	if bigB > smallB+512 || bigB >= 4096 {
		t.Errorf("CreateRandom(1 MiB) allocates %d heap bytes per call (32 bytes: %d): the secret went through the heap", bigB, smallB)
	}
	t.Logf("CreateRandom+Close: %v allocs, ~%d heap bytes per call, for 32 B and 1 MiB alike", smallN, smallB)
}

// An underrun into the canary is reported by Close, after wiping.
func TestCloseReportsCanaryOverwriteAfterWiping(t *testing.T) {
	forEachMode(t, testCloseReportsCanaryOverwriteAfterWiping)
}

func testCloseReportsCanaryOverwriteAfterWiping(t *testing.T, mode AccessMode) {
	m := &countingMetrics{}
	f := newTestFactory(t, WithMetrics(MetricsFunc(m.Add)), WithAccessMode(mode))
	s, err := newPattern(f, 5, 32)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a write just in front of the data, as a buggy callback with
	// a mutable view would do.
	writeInside(t, s, func(inner []byte) {
		slack := inner[:len(inner)-32]
		slack[len(slack)-1] ^= 0xFF
	})
	var wiped bool
	f.afterWipe = func(inner []byte) {
		wiped = !bytes.ContainsFunc(inner, func(r rune) bool { return r != 0 })
	}
	err = s.Close()
	if !errors.Is(err, ErrCanary) {
		t.Fatalf("Close after a canary overwrite: %v, want ErrCanary", err)
	}
	if !wiped {
		t.Error("the secret was not wiped before Close reported the canary")
	}
	if m.get(CanaryFailures) != 1 || m.get(InUse) != 0 {
		t.Errorf("metrics: canary failures %d, in use %d", m.get(CanaryFailures), m.get(InUse))
	}
	if err2 := s.Close(); !errors.Is(err2, ErrCanary) {
		t.Errorf("second Close returned %v, want the first result", err2)
	}

	// An intact canary, and no canary at all, close cleanly.
	for _, opts := range [][]Option{nil, {WithCanary(false)}} {
		g := newTestFactory(t, append(opts, WithAccessMode(mode))...)
		s, _ := g.CreateRandom(32)
		if err := s.Close(); err != nil {
			t.Errorf("Close with options %d: %v", len(opts), err)
		}
	}
}

// Readers race with Close. Every reader sees the right bytes or
// ErrClosed; none faults; Close waits for readers; no goroutine is left.
func TestReadersRacingCloseSeeBytesOrErrClosed(t *testing.T) {
	forEachMode(t, testReadersRacingCloseSeeBytesOrErrClosed)
}

func testReadersRacingCloseSeeBytesOrErrClosed(t *testing.T, mode AccessMode) {
	defer goleak.VerifyNone(t)
	f := newTestFactory(t, WithAccessMode(mode))
	for round := range 20 {
		want := patternBytes(uint64(round), 32)
		s, err := newPattern(f, uint64(round), 32)
		if err != nil {
			t.Fatal(err)
		}
		const readers = 8
		var wg sync.WaitGroup
		var reads, closedSeen [readers]int
		errs := make(chan error, readers)
		start := make(chan struct{})
		for g := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					err := s.WithBytes(func(b []byte) error {
						if !bytes.Equal(b, want) {
							return errors.New("reader saw wrong bytes")
						}
						return nil
					})
					switch {
					case err == nil:
						reads[g]++
					case errors.Is(err, ErrClosed):
						closedSeen[g]++
						return
					default:
						errs <- err
						return
					}
				}
			}()
		}
		close(start)
		for stateOf(s).readerTotal() == 0 {
			runtime.Gosched()
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if n := stateOf(s).readers; n != 0 {
			t.Fatalf("Close returned with %d readers inside", n)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for g := range readers {
			if closedSeen[g] != 1 {
				t.Fatalf("reader %d did not end with ErrClosed", g)
			}
		}
	}
}

func (s *state) readerTotal() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readers + map[bool]int{true: 1}[s.closing]
}

// A secret dropped without Close is closed by the GC, counted, and
// reported with the stack that created it.
func TestDroppedSecretIsClosedCountedAndReported(t *testing.T) {
	forEachMode(t, testDroppedSecretIsClosedCountedAndReported)
}

func testDroppedSecretIsClosedCountedAndReported(t *testing.T, mode AccessMode) {
	m := &countingMetrics{}
	l := &recLogger{}
	f := newTestFactory(t, WithMetrics(MetricsFunc(m.Add)), WithLogger(l), WithAccessMode(mode))
	leakSecret(t, f)
	if m.get(InUse) != 1 {
		t.Fatalf("in use = %d", m.get(InUse))
	}
	// Bounded wait for the GC to run the cleanup: a timeout, not a timing.
	for i := 0; i < 1000 && m.get(FinalizedUnclosed) == 0; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if got := m.get(FinalizedUnclosed); got != 1 {
		t.Fatalf("FinalizedUnclosed = %d after GC, want 1", got)
	}
	if m.get(InUse) != 0 || m.get(LockedBytes) != 0 {
		t.Errorf("after the cleanup: in use %d, locked bytes %d", m.get(InUse), m.get(LockedBytes))
	}
	msgs := l.all()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "finalized before Close") || !strings.Contains(msgs[0], "leakSecret") {
		t.Errorf("leak report %q lacks the message or the creating function", msgs)
	}

	// A closed secret is not reported when collected.
	s, _ := f.CreateRandom(16)
	_ = s.Close()
	s = nil
	for range 3 {
		runtime.GC()
	}
	if got := m.get(FinalizedUnclosed); got != 1 {
		t.Errorf("a closed secret was reported as leaked (%d)", got)
	}
	_ = s
}

//go:noinline
func leakSecret(t *testing.T, f *Factory) {
	if _, err := f.CreateRandom(32); err != nil {
		t.Fatal(err)
	}
}

// The metrics match the operations.
func TestMetricsMatchOperations(t *testing.T) {
	forEachMode(t, testMetricsMatchOperations)
}

func testMetricsMatchOperations(t *testing.T, mode AccessMode) {
	m := &countingMetrics{}
	f := newTestFactory(t, WithMetrics(MetricsFunc(m.Add)), WithAccessMode(mode))
	ps := int64(PageSize())
	// A secret of n bytes locks the whole pages that hold it and its canary.
	locked := func(n int) int64 { return (int64(n+canaryMin) + ps - 1) / ps * ps }
	const small, large = 32, 5000
	a, _ := f.CreateRandom(small)
	b, _ := f.New(make([]byte, large))
	secrets := locked(small) + locked(large)
	if m.get(Allocated) != 2 || m.get(InUse) != 2 || m.get(LockedBytes) != secrets {
		t.Fatalf("after 2 secrets: allocated %d in use %d locked %d, want locked %d", m.get(Allocated), m.get(InUse), m.get(LockedBytes), secrets)
	}
	sc, _ := f.Scratch(32)
	arena := m.get(LockedBytes) - secrets
	if m.get(ScratchInUse) != 1 || arena <= 0 || arena%ps != 0 {
		t.Fatalf("after a scratch slot: scratch %d, the arena locks %d bytes", m.get(ScratchInUse), arena)
	}
	sc.Release()
	_ = a.Close()
	_ = b.Close()
	_ = a.Close()
	if m.get(Allocated) != 2 || m.get(InUse) != 0 || m.get(LockedBytes) != arena || m.get(ScratchInUse) != 0 {
		t.Fatalf("after closing: allocated %d in use %d locked %d scratch %d",
			m.get(Allocated), m.get(InUse), m.get(LockedBytes), m.get(ScratchInUse))
	}
	_ = f.Close()
	if m.get(LockedBytes) != 0 {
		t.Fatalf("after closing the factory: locked %d", m.get(LockedBytes))
	}

	fm := newFaultMem()
	f.mem = fm
	g := newTestFactory(t, WithMetrics(MetricsFunc(m.Add)), WithAccessMode(mode))
	g.mem = fm
	protectOp := "protect" // the call that makes a new secret's pages unreadable at rest
	if mode == AccessPKey {
		protectOp = "pkey"
	}
	g.readLimits = func() memcall.Limits {
		return memcall.Limits{MemlockSoft: 8192, MemlockHard: 8192, Locked: 8192, MapCount: 10, MaxMapCount: 65530}
	}
	for _, c := range []struct {
		op     string
		err    error
		metric Metric
	}{
		{"lock", errENOMEM, FailLockLimit},
		{"map", errENOMEM, FailMapLimit},
		{"dontdump", errInjected, FailDontDump},
		{protectOp, errInjected, FailProtect},
	} {
		fm.set(c.op, faultRule{err: c.err, times: 1})
		if _, err := g.CreateRandom(32); err == nil {
			t.Fatalf("%s failure: CreateRandom succeeded", c.op)
		}
		if m.get(c.metric) != 1 {
			t.Errorf("%s failure: %v = %d, want 1", c.op, c.metric, m.get(c.metric))
		}
	}
	if m.get(InUse) != 0 || m.get(LockedBytes) != 0 || m.get(Allocated) != 2 {
		t.Errorf("failed allocations changed the gauges: in use %d locked %d allocated %d",
			m.get(InUse), m.get(LockedBytes), m.get(Allocated))
	}
	if FailLockLimit.String() != "securebuf.alloc_failures{reason=lock_limit}" || InUse.Name() != "secret.inuse" {
		t.Errorf("metric names: %s, %s", FailLockLimit, InUse.Name())
	}
}

// Every failure of the allocation path returns the documented error and
// leaves no mapping and no registered secret behind.
func TestAllocationFailuresLeaveNothing(t *testing.T) {
	forEachMode(t, testAllocationFailuresLeaveNothing)
}

func testAllocationFailuresLeaveNothing(t *testing.T, mode AccessMode) {
	f := newTestFactory(t, WithAccessMode(mode))
	fm := newFaultMem()
	f.mem = fm
	lockLimited := func() memcall.Limits {
		return memcall.Limits{MemlockSoft: 65536, MemlockHard: 131072, Locked: 65536, MapCount: 100, MaxMapCount: 65530}
	}
	capHeld := func() memcall.Limits {
		return memcall.Limits{MemlockSoft: 65536, MemlockHard: 65536, Locked: 1 << 30, CanLockAll: true, MapCount: 65530, MaxMapCount: 65530}
	}
	cases := []struct {
		name   string
		op     string
		err    error
		limits func() memcall.Limits
		want   error
		msg    []string
	}{
		{"mmap ENOMEM", "map", errENOMEM, lockLimited, ErrMapLimit, []string{"mmap of 12288 bytes", "vm.max_map_count=65530"}},
		{"dontdump", "dontdump", errInjected, lockLimited, ErrNoDontDump, []string{"MADV_DONTDUMP"}},
		{"mlock at the limit", "lock", errENOMEM, lockLimited, ErrLockLimit, []string{
			"soft=65536 bytes (64 KiB)", "hard=131072 bytes", "VmLck)=65536 bytes", "mlock of 4096 bytes",
			"CAP_IPC_LOCK", "ulimit -l", "--ulimit memlock", "LimitMEMLOCK", "WithRequireLock(false)"}},
		{"mlock with CAP_IPC_LOCK", "lock", errENOMEM, capHeld, ErrMapLimit, []string{"mappings now=65530"}},
	}
	type failCase = struct {
		name   string
		op     string
		err    error
		limits func() memcall.Limits
		want   error
		msg    []string
	}
	if mode == AccessPKey {
		cases = append(cases,
			failCase{"pkey_mprotect ENOMEM", "pkey:read-write", errENOMEM, lockLimited, ErrMapLimit, []string{"pkey_mprotect of 4096 bytes"}},
			failCase{"pkey_mprotect other", "pkey", errInjected, lockLimited, ErrProtect, []string{"pkey_mprotect of 4096 bytes"}})
	} else {
		cases = append(cases,
			failCase{"mprotect rw ENOMEM", "protect:read-write", errENOMEM, lockLimited, ErrMapLimit, []string{"mprotect"}},
			failCase{"mprotect none", "protect:none", errInjected, lockLimited, ErrProtect, nil})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.readLimits = c.limits
			live := liveSecrets()
			in := patternBytes(11, 32)
			var err error
			leftBehind := 0
			// The Go runtime may map memory of its own at any moment, so a
			// difference is retried; a leak shows on every try.
			for try := 0; try < 3; try++ {
				before := mapCountIfLinux(t)
				fm.set(c.op, faultRule{err: c.err, times: 1})
				var s Secret
				s, err = f.New(in)
				if err == nil {
					_ = s.Close()
					t.Fatal("New succeeded")
				}
				if leftBehind = mapCountIfLinux(t) - before; leftBehind == 0 {
					break
				}
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("error %v does not match %v", err, c.want)
			}
			for _, other := range []error{ErrLockLimit, ErrMapLimit, ErrNoDontDump, ErrProtect} {
				if other != c.want && errors.Is(err, other) {
					t.Errorf("error %v also matches %v", err, other)
				}
			}
			if !errors.Is(err, c.err) {
				t.Errorf("error %v does not wrap the system error", err)
			}
			for _, m := range c.msg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("message lacks %q: %s", m, err)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("message is not one line: %q", err)
			}
			if !bytes.Equal(in, patternBytes(11, 32)) {
				t.Error("a failed New wiped or changed its input")
			}
			if n := fm.liveMappings(); n != 0 {
				t.Errorf("%d mappings left behind", n)
			}
			if leftBehind != 0 {
				t.Errorf("/proc/self/maps grew by %d lines on every try", leftBehind)
			}
			if liveSecrets() != live {
				t.Error("a failed allocation stayed registered")
			}
		})
	}
}

// Failures after creation: the access path and Close.
func TestAccessAndCloseFailures(t *testing.T) {
	f := newTestFactory(t)
	fm := newFaultMem()
	f.mem = fm
	s, err := newPattern(f, 12, 32)
	if err != nil {
		t.Fatal(err)
	}
	fm.set("protect:read", faultRule{err: errInjected, times: 1})
	ran := false
	if err := s.WithBytes(func([]byte) error { ran = true; return nil }); !errors.Is(err, ErrProtect) || ran {
		t.Fatalf("WithBytes with a failing mprotect: %v (callback ran: %v)", err, ran)
	}
	mustEqual(t, s, patternBytes(12, 32)) // recovers

	fm.set("protect:none", faultRule{err: errInjected, times: 1})
	cbErr := errors.New("callback error")
	err = s.WithBytes(func([]byte) error { return cbErr })
	if !errors.Is(err, ErrProtect) || !errors.Is(err, cbErr) {
		t.Fatalf("a failing re-protect must be reported with the callback's error: %v", err)
	}
	if stateOf(s).readers != 0 {
		t.Fatal("reader count leaked")
	}

	fm.set("protect:read-write", faultRule{err: errInjected, times: 1})
	if err := s.Close(); !errors.Is(err, ErrProtect) {
		t.Fatalf("Close with a failing mprotect: %v", err)
	}
	if fm.liveMappings() != 0 {
		t.Error("Close left the mapping when the wipe was impossible")
	}
	if err := s.WithBytes(func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("after a failed Close: %v", err)
	}
}

// In AccessPKey mode neither WithBytes nor Close changes a page protection:
// with every mprotect failing, they still work, and Close still wipes.
func TestPKeyAccessMakesNoProtectCalls(t *testing.T) {
	if !pkeyOrRefusal(t) {
		return
	}
	f := newTestFactory(t, WithAccessMode(AccessPKey))
	fm := newFaultMem()
	f.mem = fm
	s, err := newPattern(f, 13, 32)
	if err != nil {
		t.Fatal(err)
	}
	fm.set("protect", faultRule{err: errInjected})
	for range 3 {
		mustEqual(t, s, patternBytes(13, 32))
	}
	var wiped bool
	f.afterWipe = func(inner []byte) { wiped = !bytes.ContainsFunc(inner, func(r rune) bool { return r != 0 }) }
	if err := s.Close(); err != nil {
		t.Fatalf("Close with mprotect failing: %v", err)
	}
	if !wiped {
		t.Error("Close did not wipe")
	}
	// The control: the same fault breaks an AccessMprotect factory.
	g := newTestFactory(t)
	g.mem = fm
	if _, err := g.CreateRandom(32); !errors.Is(err, ErrProtect) {
		t.Fatalf("AccessMprotect with mprotect failing: %v, want ErrProtect", err)
	}
}

// Sizes around page boundaries and absurd sizes.
func FuzzNew(f *testing.F) {
	ps := PageSize()
	for _, n := range []int{0, 1, ps - canaryMin - 1, ps - canaryMin, ps - 1, ps, ps + 1, 3*ps + 7, -1, math.MaxInt, 1 << 62, DefaultMaxSize, DefaultMaxSize + 1} {
		f.Add(n, []byte("seed"))
	}
	facs := []*Factory{}
	for _, m := range accessModes(f) {
		fac, err := NewFactory(WithAccessMode(m))
		if err != nil {
			f.Fatal(err)
		}
		facs = append(facs, fac)
	}
	f.Fuzz(func(t *testing.T, n int, data []byte) {
		fac := facs[len(data)%len(facs)] // both modes see every kind of input
		if n <= 0 || n > DefaultMaxSize {
			if _, err := fac.CreateRandom(n); !errors.Is(err, ErrInvalidSize) {
				t.Fatalf("CreateRandom(%d): %v", n, err)
			}
			if n > 0 && n <= 1<<24 {
				if _, err := fac.New(make([]byte, n)); !errors.Is(err, ErrInvalidSize) {
					t.Fatalf("New(%d bytes): %v", n, err)
				}
			}
			if n <= 0 {
				if _, err := fac.New(make([]byte, 0)); !errors.Is(err, ErrInvalidSize) {
					t.Fatalf("New(empty): %v", err)
				}
			}
			return
		}
		want := make([]byte, n)
		for i := range want {
			if len(data) > 0 {
				want[i] = data[i%len(data)] ^ byte(i)
			} else {
				want[i] = byte(i)
			}
		}
		s, err := fac.New(bytes.Clone(want))
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != n {
			t.Fatalf("Len %d, want %d", s.Len(), n)
		}
		if ok, err := EqualBytes(s, want); !ok || err != nil {
			t.Fatalf("round trip of %d bytes: %v %v", n, ok, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := fac.CreateRandom(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestEqual(t *testing.T) {
	forEachMode(t, testEqual)
	if pkeyUsable(t) {
		// Nested callbacks across modes: a PKey secret read inside an
		// mprotect secret's callback and the other way round.
		p := newTestFactory(t, WithAccessMode(AccessPKey))
		m := newTestFactory(t)
		a, _ := p.New(patternBytes(1, 32))
		b, _ := m.New(patternBytes(1, 32))
		defer func() { a.Close(); b.Close() }()
		for _, pair := range [][2]Secret{{a, b}, {b, a}} {
			if ok, err := Equal(pair[0], pair[1]); !ok || err != nil {
				t.Errorf("Equal across modes = %v, %v", ok, err)
			}
		}
	}
}

func testEqual(t *testing.T, mode AccessMode) {
	f := newTestFactory(t, WithAccessMode(mode))
	a, _ := f.New(patternBytes(1, 32))
	b, _ := f.New(patternBytes(1, 32))
	c, _ := f.New(patternBytes(2, 32))
	d, _ := f.New(patternBytes(1, 31))
	defer func() { a.Close(); b.Close(); c.Close(); d.Close() }()
	for _, x := range []struct {
		x, y Secret
		want bool
	}{{a, b, true}, {a, a, true}, {a, c, false}, {a, d, false}} {
		if got, err := Equal(x.x, x.y); got != x.want || err != nil {
			t.Errorf("Equal = %v, %v; want %v", got, err, x.want)
		}
	}
	if ok, _ := EqualBytes(a, patternBytes(1, 32)); !ok {
		t.Error("EqualBytes of the same bytes is false")
	}
	if ok, _ := EqualBytes(a, patternBytes(1, 33)[:32:32][:31]); ok {
		t.Error("EqualBytes of a prefix is true")
	}
}

func TestFormattingRedacts(t *testing.T) {
	f := newTestFactory(t)
	raw := []byte("super-secret-key-material-012345")
	s, _ := f.New(bytes.Clone(raw))
	defer s.Close()
	sc, _ := f.Scratch(32)
	copy(sc.Bytes(), raw)
	defer sc.Release()
	type wrapper struct {
		Key Secret
		S   *Scratch
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		for _, v := range []any{s, sc, wrapper{s, sc}, &wrapper{s, sc}} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, "super") || strings.Contains(strings.ToLower(out), "7375706572") || !strings.Contains(out, "REDACTED") {
				t.Errorf("%s of %T printed %q", format, v, out)
			}
		}
	}
	if s.(fmt.Stringer).String() != redacted || s.(fmt.GoStringer).GoString() != redacted {
		t.Error("String/GoString do not redact")
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, o := range []Option{WithMaxSize(0), WithMaxSize(-1), WithMaxSize(2 << 30), WithScratchPages(0), WithMetrics(nil), WithLogger(nil),
		WithAccessMode(-1), WithAccessMode(AccessAuto + 1)} {
		if _, err := NewFactory(o); err == nil {
			t.Error("invalid option accepted")
		}
	}
	f := newTestFactory(t, WithMaxSize(100))
	if _, err := f.CreateRandom(101); !errors.Is(err, ErrInvalidSize) || !strings.Contains(err.Error(), "1..100") {
		t.Errorf("CreateRandom over WithMaxSize: %v", err)
	}
	s, err := f.CreateRandom(100)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	var nilF *Factory
	if _, err := nilF.CreateRandom(1); err == nil {
		t.Error("nil factory accepted")
	}
}

func TestPreflight(t *testing.T) {
	if err := Preflight(1); err != nil {
		t.Fatalf("Preflight(1) in the test process: %v", err)
	}
	if err := Preflight(-1); !errors.Is(err, ErrInvalidSize) {
		t.Errorf("Preflight(-1): %v", err)
	}
	l := memcall.ReadLimits()
	if l.MaxMapCount > 0 {
		err := Preflight(int(l.MaxMapCount))
		if !errors.Is(err, ErrMapLimit) {
			t.Errorf("Preflight(vm.max_map_count) = %v, want ErrMapLimit", err)
		}
	}
}

// Purge wipes every live secret and never waits for a running callback.
func TestPurge(t *testing.T) {
	forEachMode(t, testPurge)
}

func testPurge(t *testing.T, mode AccessMode) {
	f := newTestFactory(t, WithAccessMode(mode))
	var wipes int
	f.afterWipe = func([]byte) { wipes++ }
	a, _ := f.CreateRandom(32)
	b, _ := f.CreateRandom(32)
	entered, leave, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- b.WithBytes(func(p []byte) error { close(entered); <-leave; _ = p[0]; return nil })
	}()
	<-entered
	within(t, 10*time.Second, "Purge with a reader inside", Purge)
	if !a.IsClosed() || !b.IsClosed() {
		t.Fatal("Purge left a secret open")
	}
	if wipes != 1 {
		t.Fatalf("%d secrets wiped while one reader is inside, want 1", wipes)
	}
	if err := a.WithBytes(func([]byte) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("after Purge: %v", err)
	}
	close(leave)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if wipes != 2 {
		t.Fatalf("the last reader did not wipe the purged secret (%d wipes)", wipes)
	}
	if err := b.Close(); err != nil {
		t.Errorf("Close after Purge: %v", err)
	}
}

// The canary check sees a change in any byte of the slack, whatever the
// alignment of the slack's length.
func TestCanaryEveryByte(t *testing.T) {
	var pat [32]byte
	copy(pat[:], patternBytes(30, 32))
	for _, n := range []int{0, 1, 7, 31, 32, 33, 100, 4064, 4079} {
		slack := make([]byte, n)
		fillCanary(slack, &pat)
		if !canaryIntact(slack, &pat) {
			t.Fatalf("len %d: intact canary reported broken", n)
		}
		for i := range slack {
			slack[i] ^= 0x01
			if canaryIntact(slack, &pat) {
				t.Fatalf("len %d: change at byte %d not seen", n, i)
			}
			slack[i] ^= 0x01
		}
	}
}
