package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

func TestNewSessionFactoryRejectsBadConfig(t *testing.T) {
	kms := newStaticKMS(t)
	store := memstore.New()
	ok := func() *envelope.Config { return &envelope.Config{Service: "svc", Product: "prod"} }
	cases := map[string]struct {
		cfg   *envelope.Config
		store envelope.Metastore
		kms   envelope.KMS
		opts  []envelope.FactoryOption
	}{
		"nil config":      {nil, store, kms, nil},
		"no service":      {&envelope.Config{Product: "prod"}, store, kms, nil},
		"no product":      {&envelope.Config{Service: "svc"}, store, kms, nil},
		"no store":        {ok(), nil, kms, nil},
		"no kms":          {ok(), store, nil, nil},
		"bad suffix":      {&envelope.Config{Service: "s", Product: "p", RegionSuffix: "us_west_2"}, store, kms, nil},
		"bad store suffx": {ok(), memstore.New(memstore.WithRegionSuffix("not a region")), kms, nil},
		"unknown SK policy": {&envelope.Config{Service: "s", Product: "p", Policy: envelope.NewCryptoPolicy(
			envelope.WithSystemKeyCache("fifo", 10))}, store, kms, nil},
		"unknown IK policy": {&envelope.Config{Service: "s", Product: "p", Policy: envelope.NewCryptoPolicy(
			envelope.WithIntermediateKeyCache("random", 10))}, store, kms, nil},
		"unknown session policy": {&envelope.Config{Service: "s", Product: "p", Policy: envelope.NewCryptoPolicy(
			envelope.WithSessionCache(), envelope.WithSessionCacheEvictionPolicy("arc"))}, store, kms, nil},
		"bounded without size": {&envelope.Config{Service: "s", Product: "p", Policy: envelope.NewCryptoPolicy(
			envelope.WithIntermediateKeyCache("lru", 0))}, store, kms, nil},
		"negative expiry": {&envelope.Config{Service: "s", Product: "p", Policy: envelope.NewCryptoPolicy(
			envelope.WithExpireAfterDuration(-time.Hour))}, store, kms, nil},
		"nil clock":          {ok(), store, kms, []envelope.FactoryOption{envelope.WithClock(nil)}},
		"nil secret factory": {ok(), store, kms, []envelope.FactoryOption{envelope.WithSecretFactory(nil)}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			f, err := envelope.NewSessionFactory(c.cfg, c.store, c.kms, nil, c.opts...)
			if err == nil {
				f.Close()
				t.Fatal("accepted")
			}
			if !errors.Is(err, envelope.ErrInvalidConfig) {
				t.Errorf("error %q does not match ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestPolicyDefaults(t *testing.T) {
	p := envelope.NewCryptoPolicy()
	want := envelope.CryptoPolicy{
		ExpireKeyAfter:              90 * 24 * time.Hour,
		RevokeCheckInterval:         time.Hour,
		CreateDatePrecision:         time.Minute,
		CacheSystemKeys:             true,
		CacheIntermediateKeys:       true,
		SystemKeyCacheMaxSize:       1000,
		IntermediateKeyCacheMaxSize: 1000,
		SessionCacheMaxSize:         1000,
		SessionCacheDuration:        2 * time.Hour,
	}
	if *p != want {
		t.Fatalf("NewCryptoPolicy() = %+v\nwant %+v", *p, want)
	}
	p = envelope.NewCryptoPolicy(envelope.WithNoCache(), envelope.WithSharedIntermediateKeyCache(5),
		envelope.WithSessionCache(), envelope.WithSessionCacheMaxSize(7), envelope.WithSessionCacheDuration(time.Minute),
		envelope.WithExpireAfterDuration(time.Hour), envelope.WithRevokeCheckInterval(time.Second),
		envelope.WithCreateDatePrecision(time.Second))
	if p.CacheSystemKeys || p.CacheIntermediateKeys || !p.SharedIntermediateKeyCache || p.IntermediateKeyCacheMaxSize != 5 ||
		!p.CacheSessions || p.SessionCacheMaxSize != 7 || p.SessionCacheDuration != time.Minute ||
		p.ExpireKeyAfter != time.Hour || p.RevokeCheckInterval != time.Second || p.CreateDatePrecision != time.Second {
		t.Fatalf("options not applied: %+v", *p)
	}
}

// The factory copies the policy: changing it later changes nothing.
func TestPolicyCopied(t *testing.T) {
	policy := envelope.NewCryptoPolicy()
	clock := newFakeClock(t0)
	store := memstore.New()
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: policy}, store, envelope.WithClock(clock.Now))
	policy.ExpireKeyAfter = 0 // would rotate on every write if it were shared
	s := getSession(t, f, "p")
	a, _ := encrypt(t, s, "a")
	clock.Advance(time.Second)
	b, _ := encrypt(t, s, "b")
	if ikOf(a) != ikOf(b) {
		t.Fatal("changing the caller's policy after NewSessionFactory changed the factory")
	}
}

func TestKeyIDs(t *testing.T) {
	store := memstore.New()
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store)
	if f.SystemKeyID() != "_SK_svc_prod" || f.IntermediateKeyID("a_b") != "_IK_a_b_svc_prod" || f.RegionSuffix() != "" {
		t.Fatalf("ids %q %q", f.SystemKeyID(), f.IntermediateKeyID("a_b"))
	}
	g := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", RegionSuffix: "us-west-2"}, store)
	if g.SystemKeyID() != "_SK_svc_prod_us-west-2" || g.IntermediateKeyID("p") != "_IK_p_svc_prod_us-west-2" {
		t.Fatalf("suffixed ids %q %q", g.SystemKeyID(), g.IntermediateKeyID("p"))
	}
	// A metastore with GetRegionSuffix sets the suffix, as in Asherah;
	// Config.RegionSuffix wins over it.
	h := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New(memstore.WithRegionSuffix("eu-central-1")))
	if h.RegionSuffix() != "eu-central-1" {
		t.Fatalf("suffix from the metastore = %q", h.RegionSuffix())
	}
	i := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", RegionSuffix: "us-east-1"}, memstore.New(memstore.WithRegionSuffix("eu-central-1")))
	if i.RegionSuffix() != "us-east-1" {
		t.Fatalf("Config.RegionSuffix did not win: %q", i.RegionSuffix())
	}
	if _, err := f.GetSession(""); !errors.Is(err, envelope.ErrEmptyPartition) {
		t.Fatalf("GetSession(\"\") = %v", err)
	}
}

func TestIsRegionSuffix(t *testing.T) {
	good := []string{"us-west-2", "eu-central-1", "us-gov-east-1", "ap-southeast-10", "il-central-1", "us-isob-east-1"}
	bad := []string{"", "us", "us-west", "west-2", "us-west-", "us_west_2", "US-WEST-2", "us-west-2a", "u-west-2", "us--west-2",
		"svc_prod_us-west-2", "us-west-2_x", "-us-west-2", "us-2"}
	for _, s := range good {
		if !envelope.IsRegionSuffix(s) {
			t.Errorf("IsRegionSuffix(%q) = false", s)
		}
	}
	for _, s := range bad {
		if envelope.IsRegionSuffix(s) {
			t.Errorf("IsRegionSuffix(%q) = true", s)
		}
	}
}

// Decrypt accepts only the session's own intermediate key ids: exactly
// its id; with a region suffix also the unsuffixed id and the unsuffixed id
// plus another region. Asherah's loose prefix test (spec §1.2) would accept
// records of partition "a_svc_prod" in a session of partition "a".
func TestPartitionCheck(t *testing.T) {
	store := memstore.New()
	ctx := context.Background()
	write := func(cfg *envelope.Config, partition string) *envelope.DataRowRecord {
		t.Helper()
		drr, _ := encrypt(t, getSession(t, newFactory(t, cfg, store), partition), "payload of "+partition)
		return drr
	}
	west := &envelope.Config{Service: "svc", Product: "prod", RegionSuffix: "us-west-2"}
	east := &envelope.Config{Service: "svc", Product: "prod", RegionSuffix: "us-east-1"}
	plain := &envelope.Config{Service: "svc", Product: "prod"}
	fromEast := write(east, "a")
	fromPlain := write(plain, "a")
	loose := write(west, "a_svc_prod") // _IK_a_svc_prod_svc_prod_us-west-2
	wrongRegionShape := write(&envelope.Config{Service: "svc", Product: "prod_x", RegionSuffix: "us-west-2"}, "a")

	sWest := getSession(t, newFactory(t, west, store), "a")
	for name, drr := range map[string]*envelope.DataRowRecord{"other region": fromEast, "unsuffixed": fromPlain} {
		if _, err := sWest.Decrypt(ctx, *drr); err != nil {
			t.Errorf("suffixed session refused a record of its partition (%s): %v", name, err)
		}
	}
	for name, drr := range map[string]*envelope.DataRowRecord{"partition a_svc_prod": loose, "product prod_x": wrongRegionShape} {
		if got, err := sWest.Decrypt(ctx, *drr); !errors.Is(err, envelope.ErrPartitionMismatch) || got != nil {
			t.Errorf("suffixed session of partition a opened a record of %s: %q, %v", name, got, err)
		}
	}
	sPlain := getSession(t, newFactory(t, plain, store), "a")
	if _, err := sPlain.Decrypt(ctx, *fromEast); !errors.Is(err, envelope.ErrPartitionMismatch) {
		t.Errorf("unsuffixed session opened a suffixed record: %v", err)
	}
	// The check happens before any key is loaded: a bad id with a missing
	// key is a partition error, not a key error.
	bogus := *fromPlain
	key := *bogus.Key
	key.ParentKeyMeta = &envelope.KeyMeta{ID: "_IK_b_svc_prod", Created: 1}
	bogus.Key = &key
	if _, err := sPlain.Decrypt(ctx, bogus); !errors.Is(err, envelope.ErrPartitionMismatch) {
		t.Errorf("foreign id: %v", err)
	}
	// OpenDataKey makes the same check.
	if _, err := sPlain.OpenDataKey(ctx, fromEast.Key); !errors.Is(err, envelope.ErrPartitionMismatch) {
		t.Errorf("OpenDataKey of a foreign record: %v", err)
	}
}

// failingStore fails Store with a given error, optionally after storing a
// competitor's key first (another process winning the race).
type failingStore struct {
	envelope.Metastore
	storeErr   error
	competitor func(id string, created int64) *envelope.EnvelopeKeyRecord
	stores     atomic.Int32
	loadLatest atomic.Int32
}

func (s *failingStore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	s.stores.Add(1)
	if s.competitor != nil && strings.HasPrefix(id, "_IK_") {
		if c := s.competitor(id, created); c != nil {
			if err := s.Metastore.Store(ctx, id, created, c); err != nil {
				return err
			}
			return s.Metastore.Store(ctx, id, created, rec) // ErrKeyExists
		}
	}
	if s.storeErr != nil {
		return s.storeErr
	}
	return s.Metastore.Store(ctx, id, created, rec)
}

func (s *failingStore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	s.loadLatest.Add(1)
	return s.Metastore.LoadLatest(ctx, id)
}

// A Store failure other than ErrKeyExists is returned, not treated as a
// lost race (Asherah swallows it).
func TestStoreErrorReturned(t *testing.T) {
	boom := errors.New("disk full")
	store := &failingStore{Metastore: memstore.New(), storeErr: boom}
	s := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store), "p")
	drr, err := s.Encrypt(context.Background(), []byte("x"))
	if !errors.Is(err, boom) || drr != nil {
		t.Fatalf("Encrypt = %v, %v; want the store's error", drr, err)
	}
	var ke *envelope.KeyError
	if !errors.As(err, &ke) || ke.Op != "store" || ke.Kind != envelope.SystemKey {
		t.Fatalf("error %v is not a store KeyError for the system key", err)
	}
	// One LoadLatest for the IK and one for the SK; a third would mean the
	// failure was taken for a lost race.
	if n := store.loadLatest.Load(); n != 2 {
		t.Errorf("%d LoadLatest calls, want 2: the error was treated as a lost race", n)
	}
}

// When another writer stores the intermediate key first, the loser uses
// the winner's key (read back with LoadLatest), and its records decrypt in
// a factory that never saw the loser's key.
func TestLostStoreRaceUsesWinner(t *testing.T) {
	inner := memstore.New()
	var winner *envelope.EnvelopeKeyRecord
	winnerKMS := newStaticKMS(t)
	// The competitor is a real factory writing to the same store; it
	// creates the partition's IK at the moment our factory tries to.
	var once sync.Once
	store := &failingStore{Metastore: inner}
	store.competitor = func(id string, created int64) *envelope.EnvelopeKeyRecord {
		once.Do(func() {
			fc, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, inner, winnerKMS, nil,
				envelope.WithClock(func() time.Time { return time.Unix(created, 0) }))
			if err != nil {
				t.Error(err)
				return
			}
			defer fc.Close()
			sc, _ := fc.GetSession("p")
			defer sc.Close()
			if _, err := sc.Encrypt(context.Background(), []byte("winner")); err != nil {
				t.Error(err)
			}
			winner, _ = inner.Load(context.Background(), id, created)
		})
		return nil // the competitor stored its row directly in inner
	}
	clock := newFakeClock(t0)
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithClock(clock.Now))
	s := getSession(t, f, "p")
	drr, p := encrypt(t, s, "loser")
	if winner == nil {
		t.Fatal("competitor did not store a key")
	}
	if got := ikOf(drr); got.Created != winner.Created {
		t.Fatalf("loser used %+v, want the winner's key created %d", got, winner.Created)
	}
	if n := len(keyRows(t, inner, "_IK_")); n != 1 {
		t.Fatalf("%d IK rows, want 1", n)
	}
	fresh := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, inner), "p")
	mustDecrypt(t, fresh, drr, p)
}

// ctxKey marks the caller's context; every metastore and KMS call must
// receive it (no context.Background in the middle of the stack).
type ctxKey struct{}

type ctxCheckingStore struct {
	envelope.Metastore
	t     *testing.T
	calls atomic.Int32
}

func (s *ctxCheckingStore) check(ctx context.Context, op string) {
	s.calls.Add(1)
	if ctx.Value(ctxKey{}) != "caller" {
		s.t.Errorf("metastore %s called without the caller's context", op)
	}
}

func (s *ctxCheckingStore) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	s.check(ctx, "Load")
	return s.Metastore.Load(ctx, id, created)
}

func (s *ctxCheckingStore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	s.check(ctx, "LoadLatest")
	return s.Metastore.LoadLatest(ctx, id)
}

func (s *ctxCheckingStore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	s.check(ctx, "Store")
	return s.Metastore.Store(ctx, id, created, rec)
}

type ctxCheckingKMS struct {
	envelope.KMS
	t     *testing.T
	calls atomic.Int32
}

func (k *ctxCheckingKMS) EncryptKey(ctx context.Context, key []byte) ([]byte, error) {
	k.calls.Add(1)
	if ctx.Value(ctxKey{}) != "caller" {
		k.t.Error("KMS EncryptKey called without the caller's context")
	}
	return k.KMS.EncryptKey(ctx, key)
}

func (k *ctxCheckingKMS) DecryptKey(ctx context.Context, b []byte) ([]byte, error) {
	k.calls.Add(1)
	if ctx.Value(ctxKey{}) != "caller" {
		k.t.Error("KMS DecryptKey called without the caller's context")
	}
	return k.KMS.DecryptKey(ctx, b)
}

func TestContextReachesEveryCall(t *testing.T) {
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
	inner := memstore.New()
	store := &ctxCheckingStore{Metastore: inner, t: t}
	kms := &ctxCheckingKMS{KMS: newStaticKMS(t), t: t}
	clock := newFakeClock(t0)
	cfg := &envelope.Config{Service: "svc", Product: "prod", Policy: envelope.NewCryptoPolicy(
		envelope.WithRevokeCheckInterval(time.Minute))}
	f, err := envelope.NewSessionFactory(cfg, store, kms, nil, envelope.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, _ := f.GetSession("p")
	defer s.Close()
	drr, err := s.Encrypt(ctx, []byte("x")) // creates SK and IK
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute) // revoke checks are due
	if _, err := s.Encrypt(ctx, []byte("y")); err != nil {
		t.Fatal(err)
	}
	// A cold factory decrypting loads IK and SK and calls the KMS.
	g, err := envelope.NewSessionFactory(cfg, store, kms, nil, envelope.WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	s2, _ := g.GetSession("p")
	defer s2.Close()
	if _, err := s2.Decrypt(ctx, *drr); err != nil {
		t.Fatal(err)
	}
	if _, err := g.RotateIntermediateKey(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if store.calls.Load() < 8 || kms.calls.Load() < 2 {
		t.Fatalf("only %d metastore and %d KMS calls observed", store.calls.Load(), kms.calls.Load())
	}
	// And a cancelled context stops a cold operation.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	s3, _ := g.GetSession("other")
	defer s3.Close()
	if _, err := s3.Encrypt(cctx, []byte("z")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Encrypt with a cancelled context = %v", err)
	}
}

// countingMetrics records securebuf's live-secret gauge.
type countingMetrics struct{ inUse atomic.Int64 }

func (m *countingMetrics) Add(metric securebuf.Metric, delta int64) {
	if metric == securebuf.InUse {
		m.inUse.Add(delta)
	}
}

// Every key secret is freed: after the sessions and the factory are
// closed, no protected secret is left, whatever the caching mode.
func TestNoSecretLeaks(t *testing.T) {
	policies := map[string]*envelope.CryptoPolicy{
		"default":   envelope.NewCryptoPolicy(),
		"nocache":   envelope.NewCryptoPolicy(envelope.WithNoCache()),
		"shared":    envelope.NewCryptoPolicy(envelope.WithSharedIntermediateKeyCache(2), envelope.WithIntermediateKeyCache("lru", 2)),
		"sessions":  envelope.NewCryptoPolicy(envelope.WithSessionCache(), envelope.WithSessionCacheMaxSize(2)),
		"tinylfu":   envelope.NewCryptoPolicy(envelope.WithIntermediateKeyCache("tinylfu", 1), envelope.WithSystemKeyCache("tinylfu", 1)),
		"lfu+slru":  envelope.NewCryptoPolicy(envelope.WithIntermediateKeyCache("lfu", 1), envelope.WithSystemKeyCache("slru", 1)),
		"immediate": envelope.NewCryptoPolicy(envelope.WithExpireAfterDuration(0)),
	}
	for name, policy := range policies {
		t.Run(name, func(t *testing.T) {
			m := &countingMetrics{}
			sf, err := securebuf.NewFactory(securebuf.WithMetrics(securebuf.MetricsFunc(m.Add)))
			if err != nil {
				t.Fatal(err)
			}
			defer sf.Close()
			store := memstore.New()
			f, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod", Policy: policy},
				store, newStaticKMS(t), nil, envelope.WithSecretFactory(sf))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			var drrs []*envelope.DataRowRecord
			defer func() {
				// The records stay decryptable by a fresh factory on the
				// same store after everything above was closed.
				s := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store), "p0")
				for _, drr := range drrs {
					if drr.Key.ParentKeyMeta.ID != "_IK_p0_svc_prod" {
						continue
					}
					mustDecrypt(t, s, drr, []byte("x"))
				}
			}()
			for i := range 12 {
				s, err := f.GetSession(fmt.Sprintf("p%d", i%4))
				if err != nil {
					t.Fatal(err)
				}
				drr, err := s.Encrypt(ctx, []byte("x"))
				if err != nil {
					t.Fatal(err)
				}
				drrs = append(drrs, drr)
				if _, err := s.Decrypt(ctx, *drr); err != nil {
					t.Fatal(err)
				}
				k, rec, err := s.NewDataKey(ctx)
				if err != nil {
					t.Fatal(err)
				}
				k2, err := s.OpenDataKey(ctx, rec)
				if err != nil {
					t.Fatal(err)
				}
				same := false
				k.WithBytes(func(a []byte) error {
					return k2.WithBytes(func(b []byte) error { same = bytes.Equal(a, b); return nil })
				})
				if !same {
					t.Fatal("OpenDataKey returned a different key than NewDataKey")
				}
				k.Close()
				k2.Close()
				s.Close()
			}
			f.Close()
			if n := m.inUse.Load(); n != 0 {
				t.Fatalf("%d protected secrets still open after every session and the factory were closed", n)
			}
			// Closed factories refuse work with ErrClosed.
			if _, err := f.GetSession("p0"); !errors.Is(err, envelope.ErrClosed) {
				t.Errorf("GetSession after Close = %v", err)
			}
		})
	}
}

func TestClosedSession(t *testing.T) {
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New())
	s, _ := f.GetSession("p")
	drr, _ := encrypt(t, s, "x")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if _, err := s.Encrypt(context.Background(), []byte("x")); !errors.Is(err, envelope.ErrClosed) {
		t.Errorf("Encrypt after Close = %v", err)
	}
	if _, err := s.Decrypt(context.Background(), *drr); !errors.Is(err, envelope.ErrClosed) {
		t.Errorf("Decrypt after Close = %v", err)
	}
	s2, _ := f.GetSession("p")
	f.Close()
	if _, err := s2.Encrypt(context.Background(), []byte("x")); !errors.Is(err, envelope.ErrClosed) {
		t.Errorf("Encrypt after the factory closed = %v", err)
	}
	s2.Close()
}

// With the session cache, sessions of one partition share their keys: the
// second GetSession needs no metastore read, and the cache keeps at most
// its size.
func TestSessionCache(t *testing.T) {
	inner := memstore.New()
	store := &failingStore{Metastore: inner}
	clock := newFakeClock(t0)
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: envelope.NewCryptoPolicy(
		envelope.WithSessionCache(), envelope.WithSessionCacheDuration(time.Hour))}, store, envelope.WithClock(clock.Now))
	s1, _ := f.GetSession("p")
	encrypt(t, s1, "x")
	s1.Close()
	before := store.loadLatest.Load()
	s2, _ := f.GetSession("p")
	encrypt(t, s2, "y")
	s2.Close()
	if store.loadLatest.Load() != before {
		t.Fatal("cached session reloaded its key")
	}
	// After SessionCacheDuration idle, the session is rebuilt.
	clock.Advance(2 * time.Hour)
	s3, _ := f.GetSession("p")
	encrypt(t, s3, "z")
	s3.Close()
	if store.loadLatest.Load() == before {
		t.Fatal("expired cached session was reused")
	}
}

// The factory reports to its Provider: Asherah's timers, one sample per
// call, the metastore and KMS calls it makes, and the key counters.
func TestMetricsInjected(t *testing.T) {
	m := metrics.NewMemory()
	store := &failingStore{Metastore: memstore.New()}
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithMetrics(m))
	s := getSession(t, f, "p")
	drr, p := encrypt(t, s, "x")
	encrypt(t, s, "y")
	mustDecrypt(t, s, drr, p)
	if m.Value(envelope.MetricEncrypt) != 2 || m.Value(envelope.MetricDecrypt) != 1 {
		t.Errorf("timers %v", m.Points())
	}
	if m.Value(envelope.MetricSystemKeyNew) != 1 || m.Value(envelope.MetricIntermediateNew) != 1 {
		t.Errorf("counters %v", m.Points())
	}
	// Each metastore call the factory made was timed once.
	if got, want := m.Value(envelope.MetricMetastoreLoadLatest), int64(store.loadLatest.Load()); got != want || got == 0 {
		t.Errorf("%s timed %d calls, the store saw %d", envelope.MetricMetastoreLoadLatest, got, want)
	}
	if got := m.Value(envelope.MetricMetastoreStore); got != 2 {
		t.Errorf("%s timed %d calls, want 2 (a system and an intermediate key)", envelope.MetricMetastoreStore, got)
	}
	if got := m.Value(envelope.MetricKMSEncrypt); got != 1 {
		t.Errorf("%s timed %d calls, want 1 (the new system key)", envelope.MetricKMSEncrypt, got)
	}
	// ErrNotFound from LoadLatest (no key yet) is an answer, not an error.
	if v, _ := m.Sum(envelope.MetricMetastoreErrors); v != 0 {
		t.Errorf("metastore errors %d, want 0", v)
	}
	key, rec, err := s.NewDataKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key.Close()
	k2, err := s.OpenDataKey(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	k2.Close()
	if m.Value(envelope.MetricDataKeyNew) != 1 || m.Value(envelope.MetricDataKeyOpened) != 1 {
		t.Errorf("data key counters %v", m.Points())
	}
}

// A failing metastore call is counted under its operation; the timer
// still has its sample.
func TestMetricsCountBackendFailures(t *testing.T) {
	m := metrics.NewMemory()
	store := &failingStore{Metastore: memstore.New(), storeErr: errors.New("disk full")}
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithMetrics(m))
	s := getSession(t, f, "p")
	if _, err := s.Encrypt(context.Background(), []byte("x")); err == nil {
		t.Fatal("Encrypt succeeded with a failing Store")
	}
	storeOp := metrics.Label{Name: "op", Value: "store"}
	if got, want := m.Value(envelope.MetricMetastoreErrors, storeOp), int64(store.stores.Load()); got != want || got == 0 {
		t.Errorf("store errors = %d, the store failed %d times", got, want)
	}
	if got := m.Value(envelope.MetricMetastoreStore); got != int64(store.stores.Load()) {
		t.Errorf("store timer has %d samples for %d calls", got, store.stores.Load())
	}
	if m.Value(envelope.MetricEncrypt) != 0 {
		t.Error("a failed Encrypt was timed as a completed one")
	}
}

func TestEncryptEmptyAndLoaderAdapters(t *testing.T) {
	s := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, memstore.New()), "p")
	ctx := context.Background()
	saved := map[string]envelope.DataRowRecord{}
	key, err := s.Store(ctx, []byte{}, envelope.StorerFunc(func(_ context.Context, d envelope.DataRowRecord) (any, error) {
		saved["k"] = d
		return "k", nil
	}))
	if err != nil || key != "k" {
		t.Fatalf("Store = %v, %v", key, err)
	}
	if len(saved["k"].Data) != 28 {
		t.Fatalf("empty payload encrypted to %d bytes, want 28", len(saved["k"].Data))
	}
	got, err := s.Load(ctx, "k", envelope.LoaderFunc(func(_ context.Context, k any) (*envelope.DataRowRecord, error) {
		d := saved[k.(string)]
		return &d, nil
	}))
	if err != nil || len(got) != 0 {
		t.Fatalf("Load = %q, %v", got, err)
	}
	if _, err := s.Load(ctx, "k", envelope.LoaderFunc(func(context.Context, any) (*envelope.DataRowRecord, error) { return nil, nil })); !errors.Is(err, envelope.ErrInvalidRecord) {
		t.Fatalf("Load of a nil record = %v", err)
	}
}
