package keycache

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/aesgcm"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// fakeLoader makes entries with fresh secrets and counts its calls.
type fakeLoader struct {
	t       *testing.T
	sf      *securebuf.Factory
	now     func() time.Time
	mu      sync.Mutex
	latest  map[string]int64 // id -> created the "metastore" reports as latest
	revoked map[Key]bool
	gate    chan struct{} // when set, loads wait on it
	loads   atomic.Int32
	latests atomic.Int32
	refresh atomic.Int32
	fail    error
	made    []*Entry
	ciphers bool // give every entry an aesgcm cipher
}

func newFakeLoader(t *testing.T, now func() time.Time) *fakeLoader {
	sf, err := securebuf.NewFactory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sf.Close() })
	return &fakeLoader{t: t, sf: sf, now: now, latest: map[string]int64{}, revoked: map[Key]bool{}}
}

func (l *fakeLoader) entry(k Key) *Entry {
	s, err := l.sf.CreateRandom(32)
	if err != nil {
		l.t.Fatal(err)
	}
	var aead cipher.AEAD
	if l.ciphers {
		key := make([]byte, aesgcm.KeySize)
		rand.Read(key)
		if aead, err = aesgcm.New(key); err != nil {
			l.t.Fatal(err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e := NewEntry(k.ID, k.Created, s, aead, l.revoked[k], l.now())
	l.made = append(l.made, e)
	return e
}

func (l *fakeLoader) wait(ctx context.Context) error {
	if l.gate == nil {
		return nil
	}
	select {
	case <-l.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *fakeLoader) LoadLatest(ctx context.Context, id string, cur *Entry) (*Entry, error) {
	l.latests.Add(1)
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	if l.fail != nil {
		return nil, l.fail
	}
	l.mu.Lock()
	created := l.latest[id]
	k := Key{id, created}
	revoked := l.revoked[k]
	l.mu.Unlock()
	if cur != nil && cur.Created() == created {
		cur.SetRevoked(revoked)
		cur.MarkChecked(l.now())
		if !revoked {
			return cur, nil
		}
	}
	if revoked {
		// "create" a new key
		l.mu.Lock()
		created++
		l.latest[id] = created
		l.mu.Unlock()
		k = Key{id, created}
	}
	return l.entry(k), nil
}

func (l *fakeLoader) Load(ctx context.Context, k Key) (*Entry, error) {
	l.loads.Add(1)
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	if l.fail != nil {
		return nil, l.fail
	}
	return l.entry(k), nil
}

func (l *fakeLoader) Refresh(ctx context.Context, e *Entry) error {
	l.refresh.Add(1)
	if l.fail != nil {
		return l.fail
	}
	l.mu.Lock()
	e.SetRevoked(l.revoked[e.Key()])
	l.mu.Unlock()
	e.MarkChecked(l.now())
	return nil
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newCache(t *testing.T, cfg Config) (*Cache, *fakeLoader, *clock) {
	t.Helper()
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	cfg.Now = clk.Now
	if cfg.ExpireAfter == 0 {
		cfg.ExpireAfter = 24 * time.Hour
	}
	if cfg.RevokeCheckInterval == 0 {
		cfg.RevokeCheckInterval = time.Hour
	}
	l := newFakeLoader(t, clk.Now)
	c, err := New(cfg, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c, l, clk
}

func TestGetOrLoadCaches(t *testing.T) {
	c, l, _ := newCache(t, Config{})
	ctx := context.Background()
	k := Key{"_IK_p_s_p", 1_799_999_940}
	e1, err := c.GetOrLoad(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	e2, err := c.GetOrLoad(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if e1 != e2 || l.loads.Load() != 1 {
		t.Fatalf("second lookup loaded again (%d loads)", l.loads.Load())
	}
	e1.Release()
	e2.Release()
	if e1.Secret().IsClosed() {
		t.Fatal("cached entry closed after its users released it")
	}
	c.Close()
	if !e1.Secret().IsClosed() {
		t.Fatal("Close left a cached secret open")
	}
	if _, err := c.GetOrLoad(ctx, k); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetOrLoad after Close = %v", err)
	}
}

// Concurrent misses of one key load once; every caller gets its own
// reference.
func TestLoadsCoalesce(t *testing.T) {
	c, l, _ := newCache(t, Config{})
	l.gate = make(chan struct{})
	k := Key{"id", 60}
	const n = 16
	var wg sync.WaitGroup
	entries := make([]*Entry, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := c.GetOrLoad(context.Background(), k)
			if err != nil {
				t.Error(err)
				return
			}
			entries[i] = e
		}()
	}
	for l.loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the others queue up behind the load
	close(l.gate)
	wg.Wait()
	if got := l.loads.Load(); got != 1 {
		t.Fatalf("%d loads for %d concurrent misses", got, n)
	}
	for _, e := range entries {
		if e != entries[0] {
			t.Fatal("callers got different entries")
		}
		e.Release()
	}
	if entries[0].Secret().IsClosed() {
		t.Fatal("entry closed while still cached")
	}
	c.Close()
	if !entries[0].Secret().IsClosed() {
		t.Fatal("entry not closed after Close and every release")
	}
}

// A waiter whose context ends returns its context error; the load it
// waited for still completes and its reference is dropped.
func TestWaiterContextCanceled(t *testing.T) {
	c, l, _ := newCache(t, Config{})
	l.gate = make(chan struct{})
	k := Key{"id", 60}
	leaderDone := make(chan *Entry)
	go func() {
		e, err := c.GetOrLoad(context.Background(), k)
		if err != nil {
			t.Error(err)
		}
		leaderDone <- e
	}()
	for l.loads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waiterDone := make(chan error)
	go func() {
		_, err := c.GetOrLoad(ctx, k)
		waiterDone <- err
	}()
	time.Sleep(10 * time.Millisecond)
	cancel()
	if err := <-waiterDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiter = %v, want context.Canceled", err)
	}
	close(l.gate)
	e := <-leaderDone
	e.Release()
	c.Close()
	// The cancelled waiter's reference is dropped by a goroutine once the
	// load ends; wait for it (bounded) rather than race it.
	deadline := time.Now().Add(10 * time.Second)
	for !e.Secret().IsClosed() {
		if time.Now().After(deadline) {
			t.Fatal("a reference leaked: the secret is still open after Close")
		}
		time.Sleep(time.Millisecond)
	}
}

// An entry evicted while in use stays open until its user releases it.
func TestEvictionWaitsForRelease(t *testing.T) {
	c, _, _ := newCache(t, Config{Policy: "lru", Capacity: 1})
	ctx := context.Background()
	held, err := c.GetOrLoad(ctx, Key{"a", 60})
	if err != nil {
		t.Fatal(err)
	}
	other, err := c.GetOrLoad(ctx, Key{"b", 60}) // evicts a
	if err != nil {
		t.Fatal(err)
	}
	other.Release()
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1", c.Len())
	}
	if held.Secret().IsClosed() {
		t.Fatal("evicted entry closed while in use")
	}
	held.Release()
	if !held.Secret().IsClosed() {
		t.Fatal("evicted entry not closed after its last release")
	}
}

func TestDisabledCacheLoadsEveryTime(t *testing.T) {
	c, l, _ := newCache(t, Config{Disabled: true})
	ctx := context.Background()
	for range 3 {
		e, err := c.GetOrLoadLatest(ctx, "id")
		if err != nil {
			t.Fatal(err)
		}
		e.Release()
		if !e.Secret().IsClosed() {
			t.Fatal("uncached entry not closed after release")
		}
	}
	if got := l.latests.Load(); got != 3 {
		t.Fatalf("%d loads, want 3", got)
	}
}

// The cached latest key is used while fresh; after the revoke check
// interval the loader is asked, and a revoked latest key is replaced by
// the loader's new one, which then stays the latest.
func TestLatestRevokedIsReplaced(t *testing.T) {
	c, l, clk := newCache(t, Config{RevokeCheckInterval: 10 * time.Minute})
	ctx := context.Background()
	base := clk.Now().Unix()
	l.latest["id"] = base
	e1, err := c.GetOrLoadLatest(ctx, "id")
	if err != nil {
		t.Fatal(err)
	}
	e1.Release()
	l.mu.Lock()
	l.revoked[Key{"id", base}] = true
	l.mu.Unlock()
	clk.Advance(5 * time.Minute)
	e2, _ := c.GetOrLoadLatest(ctx, "id")
	e2.Release()
	if e2 != e1 || l.latests.Load() != 1 {
		t.Fatal("fresh latest entry not served from the cache")
	}
	clk.Advance(6 * time.Minute)
	e3, err := c.GetOrLoadLatest(ctx, "id")
	if err != nil {
		t.Fatal(err)
	}
	e3.Release()
	if e3.Created() != base+1 {
		t.Fatalf("after the check, latest created = %d, want the replacement %d", e3.Created(), base+1)
	}
	if !e1.Revoked() {
		t.Error("the old entry's Revoked flag was not updated")
	}
	e4, _ := c.GetOrLoadLatest(ctx, "id")
	e4.Release()
	if e4 != e3 || l.latests.Load() != 2 {
		t.Fatal("replacement not cached as the latest")
	}
}

// An expired latest key is never returned from the cache.
func TestLatestExpired(t *testing.T) {
	c, l, clk := newCache(t, Config{ExpireAfter: time.Hour})
	ctx := context.Background()
	l.latest["id"] = clk.Now().Unix()
	e1, _ := c.GetOrLoadLatest(ctx, "id")
	e1.Release()
	clk.Advance(2 * time.Hour)
	l.latest["id"] = clk.Now().Unix()
	e2, err := c.GetOrLoadLatest(ctx, "id")
	if err != nil {
		t.Fatal(err)
	}
	e2.Release()
	if e2.Created() == e1.Created() {
		t.Fatal("expired latest key served")
	}
}

// A stale entry is refreshed; a failed refresh drops it from the cache.
func TestRefresh(t *testing.T) {
	c, l, clk := newCache(t, Config{RevokeCheckInterval: time.Minute})
	ctx := context.Background()
	k := Key{"id", 60}
	e, _ := c.GetOrLoad(ctx, k)
	e.Release()
	clk.Advance(2 * time.Minute)
	e, err := c.GetOrLoad(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	e.Release()
	if l.refresh.Load() != 1 || l.loads.Load() != 1 {
		t.Fatalf("refreshes %d, loads %d; want 1 and 1", l.refresh.Load(), l.loads.Load())
	}
	clk.Advance(2 * time.Minute)
	l.fail = errors.New("metastore down")
	if _, err := c.GetOrLoad(ctx, k); err == nil {
		t.Fatal("refresh error swallowed")
	}
	if c.Len() != 0 || !e.Secret().IsClosed() {
		t.Fatal("entry whose refresh failed stayed cached")
	}
}

func TestMarkRevokedAndRemoveID(t *testing.T) {
	c, _, _ := newCache(t, Config{})
	ctx := context.Background()
	e, _ := c.GetOrLoad(ctx, Key{"a", 1})
	e.Release()
	c.MarkRevoked(Key{"a", 1})
	if !e.Revoked() {
		t.Fatal("MarkRevoked did not mark the entry")
	}
	f, _ := c.GetOrLoad(ctx, Key{"a", 2})
	f.Release()
	g, _ := c.GetOrLoad(ctx, Key{"b", 1})
	g.Release()
	c.RemoveID("a")
	if c.Len() != 1 || !e.Secret().IsClosed() || !f.Secret().IsClosed() || g.Secret().IsClosed() {
		t.Fatal("RemoveID removed the wrong entries")
	}
}

func TestUnknownPolicy(t *testing.T) {
	if _, err := New(Config{Policy: "mru", Capacity: 3}, nil); err == nil {
		t.Fatal("unknown policy accepted")
	}
}

// newCipherCache is newCache with a cipher on every entry.
func newCipherCache(t *testing.T, cfg Config) (*Cache, *fakeLoader, *clock) {
	t.Helper()
	c, l, clk := newCache(t, cfg)
	l.ciphers = true
	return c, l, clk
}

// gone checks that e's resources are released: secret closed, cipher wiped
// (a is the cipher e had).
func gone(t *testing.T, what string, e *Entry, a cipher.AEAD) {
	t.Helper()
	if !e.Secret().IsClosed() || !aesgcm.Wiped(a) || e.AEAD() != nil {
		t.Errorf("%s: secret closed %v, cipher wiped %v, cipher dropped %v", what, e.Secret().IsClosed(), aesgcm.Wiped(a), e.AEAD() == nil)
	}
}

func alive(t *testing.T, what string, e *Entry, a cipher.AEAD) {
	t.Helper()
	if e.Secret().IsClosed() || aesgcm.Wiped(a) || e.AEAD() != a {
		t.Errorf("%s: the entry in use lost its key (secret closed %v, cipher wiped %v)", what, e.Secret().IsClosed(), aesgcm.Wiped(a))
	}
	nonce := make([]byte, a.NonceSize())
	if _, err := a.Open(nil, nonce, a.Seal(nil, nonce, []byte("x"), nil), nil); err != nil {
		t.Errorf("%s: the cipher of an entry in use does not work: %v", what, err)
	}
}

// An evicted entry keeps its cipher while in use, and the cipher is wiped
// with the last release; Close wipes the ciphers of the entries left.
func TestCipherWipedOnEvictionAndClose(t *testing.T) {
	c, _, _ := newCipherCache(t, Config{Policy: "lru", Capacity: 1})
	ctx := context.Background()
	held, err := c.GetOrLoad(ctx, Key{"a", 60})
	if err != nil {
		t.Fatal(err)
	}
	a := held.AEAD()
	if a == nil {
		t.Fatal("the loader's cipher is not on the entry")
	}
	other, err := c.GetOrLoad(ctx, Key{"b", 60}) // evicts "a"
	if err != nil {
		t.Fatal(err)
	}
	b := other.AEAD()
	other.Release()
	alive(t, "evicted, still held", held, a)
	held.Release()
	gone(t, "evicted and released", held, a)

	alive(t, "cached, not held", other, b)
	c.Close()
	gone(t, "after Close", other, b)
}

// A revoked key keeps decrypting but not with a cached cipher: MarkRevoked
// drops the entry (wiping its cipher once released), and the next lookup
// loads it again.
func TestRevokedEntryDropsItsCipher(t *testing.T) {
	c, l, _ := newCipherCache(t, Config{})
	ctx := context.Background()
	k := Key{"a", 60}
	e, _ := c.GetOrLoad(ctx, k)
	a := e.AEAD()
	c.MarkRevoked(k)
	if c.Len() != 0 {
		t.Fatalf("a revoked entry with a cipher stayed cached (Len %d)", c.Len())
	}
	alive(t, "revoked while held", e, a)
	e.Release()
	gone(t, "revoked and released", e, a)
	e2, err := c.GetOrLoad(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	e2.Release()
	if l.loads.Load() != 2 {
		t.Fatalf("%d loads, want 2 (the revoked key is loaded again)", l.loads.Load())
	}

	// Without a cipher, a revoked entry stays cached, as before.
	c2, _, _ := newCache(t, Config{})
	e3, _ := c2.GetOrLoad(ctx, k)
	e3.Release()
	c2.MarkRevoked(k)
	if c2.Len() != 1 || !e3.Revoked() {
		t.Fatal("a revoked entry without a cipher was dropped")
	}
}

// A revocation found by the periodic re-check drops the entry's cipher too.
func TestRefreshThatFindsRevocationDropsTheCipher(t *testing.T) {
	c, l, clk := newCipherCache(t, Config{RevokeCheckInterval: time.Minute})
	ctx := context.Background()
	k := Key{"a", 60}
	e, _ := c.GetOrLoad(ctx, k)
	a := e.AEAD()
	e.Release()
	l.mu.Lock()
	l.revoked[k] = true
	l.mu.Unlock()
	clk.Advance(2 * time.Minute)
	e2, err := c.GetOrLoad(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	if e2 != e || !e2.Revoked() {
		t.Fatal("the re-check did not return the refreshed entry")
	}
	if c.Len() != 0 {
		t.Fatal("the entry found revoked kept its cipher in the cache")
	}
	e2.Release()
	gone(t, "found revoked", e, a)
}

// A latest key replaced because it was revoked leaves the cache with its
// cipher.
func TestReplacedRevokedLatestDropsItsCipher(t *testing.T) {
	c, l, clk := newCipherCache(t, Config{RevokeCheckInterval: time.Minute})
	ctx := context.Background()
	l.latest["id"] = clk.Now().Unix()
	e1, _ := c.GetOrLoadLatest(ctx, "id")
	a := e1.AEAD()
	e1.Release()
	l.mu.Lock()
	l.revoked[e1.Key()] = true
	l.mu.Unlock()
	clk.Advance(2 * time.Minute)
	e2, err := c.GetOrLoadLatest(ctx, "id")
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Release()
	if e2 == e1 {
		t.Fatal("the revoked latest key was not replaced")
	}
	gone(t, "replaced revoked latest", e1, a)
	if c.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the replacement only)", c.Len())
	}
}
