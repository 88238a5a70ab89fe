package envelope_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// secretGauges follows a securebuf factory's live secrets and locked
// bytes, and remembers their maxima since the last reset.
type secretGauges struct {
	inUse, locked       atomic.Int64
	maxInUse, maxLocked atomic.Int64
}

func (g *secretGauges) Add(m securebuf.Metric, delta int64) {
	switch m {
	case securebuf.InUse:
		raiseTo(&g.maxInUse, g.inUse.Add(delta))
	case securebuf.LockedBytes:
		raiseTo(&g.maxLocked, g.locked.Add(delta))
	}
}

func (g *secretGauges) resetMax() {
	g.maxInUse.Store(g.inUse.Load())
	g.maxLocked.Store(g.locked.Load())
}

func raiseTo(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}

// procStatus returns a field of /proc/self/status in kB (VmLck) or as a
// count (Threads).
func procStatus(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestManyPartitionsStayBounded writes and reads records of 10 000
// partitions (1 000 with -short or the race detector) through the session and key caches, one
// partition after the other, and checks that memory follows the cache
// sizes, not the number of partitions: after a warm-up that fills the
// caches, the live secrets and the locked bytes of the factory's securebuf
// factory never exceed what the caches can hold (each bound is derived
// from the cache capacities and the locked size of one secret), the
// process's VmLck never exceeds its warm-up level by more than that, and
// neither goroutines nor file descriptors grow. Keys evicted from the
// caches are closed (securebuf wipes them on Close): the live-secret bound
// could not hold otherwise, and after Close none is left.
func TestManyPartitionsStayBounded(t *testing.T) {
	partitions := 10_000
	if testing.Short() || raceEnabled {
		partitions = 1_000
	}
	const capacity = 32 // sessions, or intermediate keys in the shared cache
	configs := []struct {
		name   string
		policy *envelope.CryptoPolicy
		// live is how many intermediate keys the caches can hold when
		// every session is closed after use.
		live int
	}{
		{"session-cache", envelope.NewCryptoPolicy(envelope.WithSessionCache(), envelope.WithSessionCacheMaxSize(capacity)), capacity},
		{"shared-lru", envelope.NewCryptoPolicy(envelope.WithSharedIntermediateKeyCache(capacity), envelope.WithIntermediateKeyCache(envelope.PolicyLRU, capacity)), capacity},
		{"per-session", envelope.NewCryptoPolicy(), 0},
	}
	for _, b := range backends {
		for _, cfg := range configs {
			t.Run(b.name+"/"+cfg.name, func(t *testing.T) {
				testManyPartitions(t, b, cfg.policy, cfg.live, partitions)
			})
		}
	}
}

func testManyPartitions(t *testing.T, b backend, policy *envelope.CryptoPolicy, liveIKs, partitions int) {
	// Registered first, so it runs after the cleanups that close the
	// metastore's database.
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	ctx := context.Background()

	g := &secretGauges{}
	sf, err := securebuf.NewFactory(securebuf.WithMetrics(securebuf.MetricsFunc(g.Add)))
	if err != nil {
		t.Fatal(err)
	}
	// One secret's locked bytes, from this factory's own accounting.
	probe, err := sf.CreateRandom(envelope.AES256KeySize)
	if err != nil {
		t.Fatal(err)
	}
	perSecret := g.locked.Load()
	probe.Close()
	if perSecret <= 0 {
		t.Fatalf("a secret locked %d bytes", perSecret)
	}
	// Scratch slots for data row keys: at most the arena's pages, which
	// one goroutine's records need only one of.
	scratchPages := int64(1)

	store := b.open(t)
	kms := newStaticKMS(t)
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod", Policy: policy},
		store, kms, nil, envelope.WithSecretFactory(sf))
	if err != nil {
		t.Fatal(err)
	}
	// What the caches may hold at once: the intermediate keys they keep,
	// the one in use by the open session, and the system key.
	maxSecrets := int64(liveIKs + 1 + 1)
	maxLocked := maxSecrets*perSecret + scratchPages*int64(securebuf.PageSize())

	payload := []byte("a record of some partition")
	use := func(i int) {
		s, err := f.GetSession(fmt.Sprintf("tenant-%05d", i))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for range 2 {
			drr, err := s.Encrypt(ctx, payload)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := s.Decrypt(ctx, *drr); err != nil || string(got) != string(payload) {
				t.Fatalf("partition %d: Decrypt = %q, %v", i, got, err)
			}
		}
	}

	warmUp := 2 * max(liveIKs, 1)
	for i := range warmUp {
		use(i)
	}
	runtime.GC()
	vmLckWarm := procStatus(t, "VmLck")
	goroutinesWarm := runtime.NumGoroutine()
	fdsWarm := openFDs(t)
	g.resetMax()
	maxVmLck := vmLckWarm
	for i := warmUp; i < partitions; i++ {
		use(i)
		if i%500 == 0 {
			maxVmLck = max(maxVmLck, procStatus(t, "VmLck"))
		}
	}
	maxVmLck = max(maxVmLck, procStatus(t, "VmLck"))
	t.Logf("%d partitions: at most %d live secrets (bound %d), %d locked bytes (bound %d); VmLck %d kB after warm-up, at most %d kB after",
		partitions, g.maxInUse.Load(), maxSecrets, g.maxLocked.Load(), maxLocked, vmLckWarm, maxVmLck)

	if got := g.maxInUse.Load(); got > maxSecrets {
		t.Errorf("%d secrets alive at once, want at most %d: evicted keys were not closed", got, maxSecrets)
	}
	if got := g.maxLocked.Load(); got > maxLocked {
		t.Errorf("%d bytes locked at once, want at most %d", got, maxLocked)
	}
	if grew := (maxVmLck - vmLckWarm) * 1024; grew > maxLocked {
		t.Errorf("VmLck grew by %d bytes after the warm-up, more than the caches can hold (%d)", grew, maxLocked)
	}
	runtime.GC()
	if n := runtime.NumGoroutine(); n > goroutinesWarm {
		t.Errorf("%d goroutines after %d partitions, %d after the warm-up", n, partitions, goroutinesWarm)
	}
	if n := openFDs(t); n > fdsWarm {
		t.Errorf("%d open file descriptors after %d partitions, %d after the warm-up", n, partitions, fdsWarm)
	}

	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n := g.inUse.Load(); n != 0 {
		t.Errorf("%d secrets left open after the factory was closed", n)
	}
	if err := sf.Close(); err != nil {
		t.Fatal(err)
	}
	if n := g.locked.Load(); n != 0 {
		t.Errorf("%d bytes still locked after the secret factory was closed", n)
	}
}
