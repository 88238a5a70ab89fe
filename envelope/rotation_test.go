package envelope_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// t0 is a point in time 5 seconds past a minute.
var t0 = time.Date(2026, 11, 27, 10, 0, 5, 0, time.UTC)

func keyRows(t *testing.T, store envelope.Metastore, prefix string) []*envelope.EnvelopeKeyRecord {
	t.Helper()
	l, ok := store.(envelope.Lister)
	if !ok {
		t.Fatalf("%T is not a Lister", store)
	}
	recs, err := l.List(context.Background(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func encrypt(t *testing.T, s *envelope.Session, msg string) (*envelope.DataRowRecord, []byte) {
	t.Helper()
	drr, err := s.Encrypt(context.Background(), []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	return drr, []byte(msg)
}

func mustDecrypt(t *testing.T, s *envelope.Session, drr *envelope.DataRowRecord, want []byte) {
	t.Helper()
	got, err := s.Decrypt(context.Background(), *drr)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Decrypt = %q, want %q", got, want)
	}
}

func ikOf(drr *envelope.DataRowRecord) envelope.KeyMeta { return *drr.Key.ParentKeyMeta }

// Keys past ExpireKeyAfter are replaced inline on the next write (both the
// intermediate key and the system key); older records still decrypt.
func TestRotationAfterExpiry(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			clock := newFakeClock(t0)
			policy := envelope.NewCryptoPolicy(
				envelope.WithExpireAfterDuration(time.Hour),
				envelope.WithRevokeCheckInterval(10*time.Minute))
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: policy}, store, envelope.WithClock(clock.Now))
			s := getSession(t, f, "p")

			drr1, p1 := encrypt(t, s, "one")
			clock.Advance(30 * time.Minute) // stale for the revoke check, not expired
			drr2, p2 := encrypt(t, s, "two")
			if ikOf(drr2) != ikOf(drr1) {
				t.Fatalf("key changed before expiry: %+v then %+v", ikOf(drr1), ikOf(drr2))
			}
			clock.Advance(31 * time.Minute) // 61 minutes after creation: expired
			drr3, p3 := encrypt(t, s, "three")
			ik1, ik3 := ikOf(drr1), ikOf(drr3)
			if ik3.ID != ik1.ID || ik3.Created == ik1.Created {
				t.Fatalf("no new intermediate key after expiry: %+v then %+v", ik1, ik3)
			}
			if want := t0.Add(61 * time.Minute).Truncate(time.Minute).Unix(); ik3.Created != want {
				t.Errorf("new intermediate key created %d, want %d", ik3.Created, want)
			}
			// NewDataKey rotates like Encrypt and now uses the new key.
			_, rec, err := s.NewDataKey(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if *rec.ParentKeyMeta != ik3 {
				t.Errorf("NewDataKey used %+v, want %+v", *rec.ParentKeyMeta, ik3)
			}

			iks := keyRows(t, store, "_IK_p_")
			sks := keyRows(t, store, "_SK_")
			if len(iks) != 2 || len(sks) != 2 {
				t.Fatalf("after one expiry: %d IK rows and %d SK rows, want 2 and 2", len(iks), len(sks))
			}
			if iks[1].ParentKeyMeta.Created != sks[1].Created || iks[0].ParentKeyMeta.Created != sks[0].Created {
				t.Errorf("each IK must be wrapped by the SK of its generation: IKs %+v %+v, SKs %d %d",
					*iks[0].ParentKeyMeta, *iks[1].ParentKeyMeta, sks[0].Created, sks[1].Created)
			}
			for _, c := range []struct {
				drr *envelope.DataRowRecord
				p   []byte
			}{{drr1, p1}, {drr2, p2}, {drr3, p3}} {
				mustDecrypt(t, s, c.drr, c.p)
				mustDecrypt(t, getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store), "p"), c.drr, c.p)
			}
		})
	}
}

// Asherah keeps encrypting with a revoked intermediate key as long as it
// is the session's cached latest key (spec §5.2). Here, once the revoke
// check interval has passed, the next write uses a new key, and keeps
// using that one.
func TestRevokedCachedLatestIsReplaced(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			clock := newFakeClock(t0)
			policy := envelope.NewCryptoPolicy(envelope.WithRevokeCheckInterval(10 * time.Minute))
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: policy}, store, envelope.WithClock(clock.Now))
			s := getSession(t, f, "p")

			drr1, p1 := encrypt(t, s, "before revocation")
			ik1 := ikOf(drr1)
			// Out of band, like Asherah's revoke_keys scripts.
			if err := store.(envelope.Revoker).Revoke(context.Background(), ik1.ID, ik1.Created); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Minute)
			drr2, p2 := encrypt(t, s, "within the check interval")
			if ikOf(drr2) != ik1 {
				t.Fatalf("key changed within the revoke check interval: %+v", ikOf(drr2))
			}
			clock.Advance(10 * time.Minute)
			drr3, p3 := encrypt(t, s, "after the check interval")
			ik3 := ikOf(drr3)
			if ik3.ID != ik1.ID || ik3.Created <= ik1.Created {
				t.Fatalf("revoked cached key still used after the check interval: %+v then %+v", ik1, ik3)
			}
			rec, err := store.Load(context.Background(), ik3.ID, ik3.Created)
			if err != nil || rec.Revoked {
				t.Fatalf("replacement key row: %+v, %v", rec, err)
			}
			clock.Advance(time.Minute)
			drr4, p4 := encrypt(t, s, "later")
			if ikOf(drr4) != ik3 {
				t.Errorf("replacement key not kept: %+v then %+v", ik3, ikOf(drr4))
			}
			if n := len(keyRows(t, store, "_IK_p_")); n != 2 {
				t.Errorf("%d IK rows, want 2", n)
			}
			for _, c := range []struct {
				drr *envelope.DataRowRecord
				p   []byte
			}{{drr1, p1}, {drr2, p2}, {drr3, p3}, {drr4, p4}} {
				mustDecrypt(t, s, c.drr, c.p)
			}
		})
	}
}

// A key revoked in the same minute it was created gets a replacement
// created one second later, not a colliding row.
func TestRevokeInCreationMinute(t *testing.T) {
	store := backends[0].open(t)
	clock := newFakeClock(t0)
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithClock(clock.Now))
	s := getSession(t, f, "p")
	drr1, _ := encrypt(t, s, "x")
	ik1 := ikOf(drr1)
	if err := f.RevokeKey(context.Background(), ik1.ID, ik1.Created); err != nil {
		t.Fatal(err)
	}
	drr2, _ := encrypt(t, s, "y")
	if ik2 := ikOf(drr2); ik2.Created != ik1.Created+1 {
		t.Fatalf("replacement created %d, want %d", ik2.Created, ik1.Created+1)
	}
}

// RevokeKey through the factory takes effect at once for its sessions,
// whatever the caching mode, and a revoked system key makes the next write
// use a new system key and a new intermediate key under it.
func TestRevokeKeyImmediate(t *testing.T) {
	modes := map[string]*envelope.CryptoPolicy{
		"session-ik-cache": envelope.NewCryptoPolicy(),
		"shared-ik-cache":  envelope.NewCryptoPolicy(envelope.WithSharedIntermediateKeyCache(100)),
		"session-cache":    envelope.NewCryptoPolicy(envelope.WithSessionCache()),
	}
	for name, policy := range modes {
		t.Run(name, func(t *testing.T) {
			store := backends[0].open(t)
			clock := newFakeClock(t0)
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: policy}, store, envelope.WithClock(clock.Now))
			s := getSession(t, f, "p")
			drr1, p1 := encrypt(t, s, "one")
			ik1 := ikOf(drr1)
			clock.Advance(2 * time.Minute)
			if err := f.RevokeKey(context.Background(), ik1.ID, ik1.Created); err != nil {
				t.Fatal(err)
			}
			drr2, p2 := encrypt(t, s, "two")
			ik2 := ikOf(drr2)
			if ik2 == ik1 {
				t.Fatal("revoked intermediate key used for the next write")
			}
			sk1 := keyRows(t, store, "_SK_")[0]
			clock.Advance(2 * time.Minute)
			if err := f.RevokeKey(context.Background(), "_SK_svc_prod", sk1.Created); err != nil {
				t.Fatal(err)
			}
			drr3, p3 := encrypt(t, s, "three")
			ik3 := ikOf(drr3)
			if ik3 == ik2 {
				t.Fatal("intermediate key under a revoked system key used for the next write")
			}
			ikRec, err := store.Load(context.Background(), ik3.ID, ik3.Created)
			if err != nil {
				t.Fatal(err)
			}
			if ikRec.ParentKeyMeta.Created == sk1.Created {
				t.Fatalf("new intermediate key wrapped by the revoked system key")
			}
			for _, c := range []struct {
				drr *envelope.DataRowRecord
				p   []byte
			}{{drr1, p1}, {drr2, p2}, {drr3, p3}} {
				mustDecrypt(t, s, c.drr, c.p)
			}
		})
	}
}

// A system key revoked out of band is noticed at the intermediate key's
// next re-check: the intermediate key it wraps is replaced by one under a
// new system key.
func TestRevokedSystemKeyOutOfBand(t *testing.T) {
	store := backends[1].open(t)
	clock := newFakeClock(t0)
	policy := envelope.NewCryptoPolicy(envelope.WithRevokeCheckInterval(10 * time.Minute))
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: policy}, store, envelope.WithClock(clock.Now))
	s := getSession(t, f, "p")
	drr1, _ := encrypt(t, s, "one")
	sk1 := keyRows(t, store, "_SK_")[0]
	if err := store.(envelope.Revoker).Revoke(context.Background(), sk1.ID, sk1.Created); err != nil {
		t.Fatal(err)
	}
	clock.Advance(11 * time.Minute)
	drr2, p2 := encrypt(t, s, "two")
	if ikOf(drr2) == ikOf(drr1) {
		t.Fatal("intermediate key under a revoked system key still used after the check interval")
	}
	if sks := keyRows(t, store, "_SK_"); len(sks) != 2 || sks[1].Revoked {
		t.Fatalf("want a second, unrevoked system key; have %d rows", len(sks))
	}
	mustDecrypt(t, s, drr2, p2)
}

// Forced rotation creates new keys now; writes in this factory use them
// at once.
func TestForcedRotation(t *testing.T) {
	store := backends[0].open(t)
	clock := newFakeClock(t0)
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithClock(clock.Now))
	s := getSession(t, f, "p")
	drr1, p1 := encrypt(t, s, "one")
	clock.Advance(5 * time.Minute)
	sk, err := f.RotateSystemKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sk.ID != f.SystemKeyID() || sk.Created != t0.Add(5*time.Minute).Truncate(time.Minute).Unix() {
		t.Fatalf("RotateSystemKey = %+v", sk)
	}
	ik, err := f.RotateIntermediateKey(context.Background(), "p")
	if err != nil {
		t.Fatal(err)
	}
	if ik.ID != f.IntermediateKeyID("p") || ik.Created != sk.Created {
		t.Fatalf("RotateIntermediateKey = %+v", ik)
	}
	drr2, p2 := encrypt(t, s, "two")
	if ikOf(drr2) != ik {
		t.Fatalf("write after rotation used %+v, want %+v", ikOf(drr2), ik)
	}
	rec, err := store.Load(context.Background(), ik.ID, ik.Created)
	if err != nil || *rec.ParentKeyMeta != sk {
		t.Fatalf("rotated IK row %+v, %v; want it under %+v", rec, err, sk)
	}
	// Rotating again within the same minute still makes a new key.
	ik2, err := f.RotateIntermediateKey(context.Background(), "p")
	if err != nil || ik2.Created != ik.Created+1 {
		t.Fatalf("second rotation = %+v, %v", ik2, err)
	}
	mustDecrypt(t, s, drr1, p1)
	mustDecrypt(t, s, drr2, p2)
	if _, err := f.RotateIntermediateKey(context.Background(), ""); err == nil {
		t.Error("RotateIntermediateKey of an empty partition succeeded")
	}
}

// Deleting a partition's intermediate key crypto-shreds it.
func TestDeleteKeysShreds(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store)
			s := getSession(t, f, "p")
			other := getSession(t, f, "q")
			drr, _ := encrypt(t, s, "secret")
			drrQ, pQ := encrypt(t, other, "other partition")
			n, err := f.DeleteKeys(context.Background(), f.IntermediateKeyID("p"))
			if err != nil || n != 1 {
				t.Fatalf("DeleteKeys = %d, %v", n, err)
			}
			if got, err := s.Decrypt(context.Background(), *drr); err == nil || got != nil {
				t.Fatalf("record decrypted after its key was deleted: %q", got)
			}
			fresh := getSession(t, newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store), "p")
			if _, err := fresh.Decrypt(context.Background(), *drr); err == nil {
				t.Fatal("record decrypted in a fresh factory after its key was deleted")
			}
			mustDecrypt(t, other, drrQ, pQ)
			recs, err := f.ListKeys(context.Background(), "_IK_")
			if err != nil || len(recs) != 1 || recs[0].ID != f.IntermediateKeyID("q") {
				t.Fatalf("ListKeys after delete = %d records, %v", len(recs), err)
			}
		})
	}
}

func TestAdminNotSupported(t *testing.T) {
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, minimalStore{backends[0].open(t)})
	ctx := context.Background()
	if err := f.RevokeKey(ctx, "x", 1); !errorsIs(err, envelope.ErrNotSupported) {
		t.Errorf("RevokeKey = %v", err)
	}
	if _, err := f.ListKeys(ctx, ""); !errorsIs(err, envelope.ErrNotSupported) {
		t.Errorf("ListKeys = %v", err)
	}
	if _, err := f.DeleteKeys(ctx, "x"); !errorsIs(err, envelope.ErrNotSupported) {
		t.Errorf("DeleteKeys = %v", err)
	}
}

// minimalStore hides every optional interface of the store it wraps.
type minimalStore struct{ m envelope.Metastore }

func (s minimalStore) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	return s.m.Load(ctx, id, created)
}

func (s minimalStore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	return s.m.LoadLatest(ctx, id)
}

func (s minimalStore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	return s.m.Store(ctx, id, created, rec)
}
