package securebuf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf/internal/memcall"
)

// No test in this package calls t.Parallel: several of them measure
// process-wide state (VmLck, the mapping list, the secret registry).

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// pkeyUsable reports whether AccessPKey works in this process. When it does
// not although /proc/cpuinfo lists pku, the test fails under CI=true (a
// broken mode must not pass as "not tested") and says why otherwise.
func pkeyUsable(t testing.TB) bool {
	t.Helper()
	err := PKeyAvailable()
	if err == nil {
		return true
	}
	if testenv.CPUHas("pku") && testenv.InCI() {
		t.Fatalf("the CPU has pku but AccessPKey does not work: %v", err)
	}
	t.Logf("AccessPKey not tested here: %v", err)
	return false
}

// pkeyOrRefusal reports whether AccessPKey works, for a test of what only
// AccessPKey does. Where it does not, the test checks the refusal instead:
// an AccessPKey factory fails with ErrNoPKey and AccessAuto falls back to
// AccessMprotect; the caller then returns. Such a test passes on machines
// with and without protection keys, and tests something on both.
func pkeyOrRefusal(t testing.TB) bool {
	t.Helper()
	if pkeyUsable(t) {
		return true
	}
	f, err := NewFactory(WithAccessMode(AccessPKey))
	if err == nil {
		_ = f.Close()
		t.Fatal("an AccessPKey factory was made although PKeyAvailable fails")
	}
	if !errors.Is(err, ErrNoPKey) {
		t.Fatalf("AccessPKey without protection keys: %v, want ErrNoPKey", err)
	}
	if auto := newTestFactory(t, WithAccessMode(AccessAuto)); auto.AccessMode() != AccessMprotect {
		t.Fatalf("AccessAuto without protection keys chose %v", auto.AccessMode())
	}
	t.Logf("checked the refusal of AccessPKey and the AccessAuto fallback instead: %v", err)
	return false
}

// requirePKeyBench stops a benchmark of AccessPKey on a CPU without pku
// (machines differ; there is nothing to measure), and fails it under
// CI=true where the CPU has pku but AccessPKey does not work.
func requirePKeyBench(b *testing.B) {
	b.Helper()
	testenv.SkipWithoutCPU(b, "pku")
	if err := PKeyAvailable(); err != nil {
		testenv.Missing(b, "the CPU has pku but AccessPKey does not work: "+err.Error())
	}
}

// accessModes are the modes a mode-independent test runs in:
// AccessMprotect always, AccessPKey where it works.
func accessModes(t testing.TB) []AccessMode {
	t.Helper()
	modes := []AccessMode{AccessMprotect}
	if pkeyUsable(t) {
		modes = append(modes, AccessPKey)
	}
	return modes
}

// forEachMode runs fn as one subtest per access mode, named after it.
func forEachMode(t *testing.T, fn func(t *testing.T, m AccessMode)) {
	t.Helper()
	for _, m := range accessModes(t) {
		t.Run(m.String(), func(t *testing.T) { fn(t, m) })
	}
}

// writeInside runs fn while the data pages of s may be written by this
// goroutine, as a buggy callback with a mutable view would do.
func writeInside(t testing.TB, s Secret, fn func(inner []byte)) {
	t.Helper()
	st := stateOf(s)
	if k := st.f.pkey; k != noPKey {
		withPKeyAccess(k, true, func() { fn(st.reg.inner) })
		return
	}
	if err := memcall.Protect(st.reg.inner, memcall.ReadWrite); err != nil {
		t.Fatal(err)
	}
	fn(st.reg.inner)
	if err := memcall.Protect(st.reg.inner, memcall.NoAccess); err != nil {
		t.Fatal(err)
	}
}

func newTestFactory(t testing.TB, opts ...Option) *Factory {
	t.Helper()
	f, err := NewFactory(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// pattern fills dst with a high-entropy sequence derived from seed
// (xorshift64*), byte by byte, so that the whole pattern exists only where
// it is written.
func pattern(seed uint64, dst []byte) {
	x := seed*0x9E3779B97F4A7C15 | 1
	for i := range dst {
		x ^= x >> 12
		x ^= x << 25
		x ^= x >> 27
		dst[i] = byte((x * 0x2545F4914F6CDD1D) >> 56)
	}
}

func patternBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	pattern(seed, b)
	return b
}

// newPattern creates a secret whose bytes are generated straight into its
// protected pages, never on the heap.
func newPattern(f *Factory, seed uint64, n int) (Secret, error) {
	s, err := f.newSecret(n, func(data []byte) { pattern(seed, data) })
	if err != nil {
		return nil, err
	}
	return s.handle(), nil
}

func stateOf(s Secret) *state { return s.(*handle).st }

func mustEqual(t testing.TB, s Secret, want []byte) {
	t.Helper()
	if err := s.WithBytes(func(b []byte) error {
		if !bytes.Equal(b, want) {
			return fmt.Errorf("secret holds %d bytes that differ from the expected %d", len(b), len(want))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// within runs fn and fails the test if it has not returned after d: the
// guard against deadlocks (a hang detector, not a speed check).
func within(t testing.TB, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s did not return within %v: deadlock", what, d)
	}
}

// countingMetrics records every metric.
type countingMetrics struct {
	mu sync.Mutex
	v  [numMetrics]int64
}

func (c *countingMetrics) Add(m Metric, d int64) {
	c.mu.Lock()
	c.v[m] += d
	c.mu.Unlock()
}

func (c *countingMetrics) get(m Metric) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.v[m]
}

// recLogger records messages.
type recLogger struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recLogger) Debugf(format string, args ...any) {
	l.mu.Lock()
	l.msgs = append(l.msgs, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

func (l *recLogger) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.msgs...)
}

// faultMem wraps the real system calls and makes chosen ones fail. It also
// counts live mappings so a test can see that a failure left none behind.
type faultMem struct {
	osMem
	mu   sync.Mutex
	fail map[string]faultRule
	live map[*byte]int
}

type faultRule struct {
	err   error
	skip  int // succeed this many times first
	times int // then fail this many times (0: forever)
}

func newFaultMem() *faultMem {
	return &faultMem{fail: map[string]faultRule{}, live: map[*byte]int{}}
}

func (m *faultMem) set(op string, r faultRule) {
	m.mu.Lock()
	m.fail[op] = r
	m.mu.Unlock()
}

func (m *faultMem) clearFaults() {
	m.mu.Lock()
	m.fail = map[string]faultRule{}
	m.mu.Unlock()
}

func (m *faultMem) check(op string, extra ...memcall.Prot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := op
	if len(extra) > 0 {
		key = op + ":" + extra[0].String()
	}
	for _, k := range []string{key, op} {
		r, ok := m.fail[k]
		if !ok {
			continue
		}
		if r.skip > 0 {
			r.skip--
			m.fail[k] = r
			return nil
		}
		if r.times > 0 {
			r.times--
			if r.times == 0 {
				delete(m.fail, k)
			} else {
				m.fail[k] = r
			}
		}
		return r.err
	}
	return nil
}

func (m *faultMem) liveMappings() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.live)
}

func (m *faultMem) Map(n int, p memcall.Prot) ([]byte, error) {
	if err := m.check("map"); err != nil {
		return nil, err
	}
	b, err := m.osMem.Map(n, p)
	if err == nil {
		m.mu.Lock()
		m.live[&b[0]] = n
		m.mu.Unlock()
	}
	return b, err
}

func (m *faultMem) Unmap(b []byte) error {
	m.mu.Lock()
	delete(m.live, &b[0])
	m.mu.Unlock()
	return m.osMem.Unmap(b)
}

func (m *faultMem) Protect(b []byte, p memcall.Prot) error {
	if err := m.check("protect", p); err != nil {
		return err
	}
	return m.osMem.Protect(b, p)
}

func (m *faultMem) PKeyProtect(b []byte, p memcall.Prot, key int) error {
	if err := m.check("pkey", p); err != nil {
		return err
	}
	return m.osMem.PKeyProtect(b, p, key)
}

func (m *faultMem) Lock(b []byte) error {
	if err := m.check("lock"); err != nil {
		return err
	}
	return m.osMem.Lock(b)
}

func (m *faultMem) DontDump(b []byte) error {
	if err := m.check("dontdump"); err != nil {
		return err
	}
	return m.osMem.DontDump(b)
}

var errInjected = errors.New("injected failure")

var errENOMEM = enomem()
