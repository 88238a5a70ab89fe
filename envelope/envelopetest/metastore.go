// Package envelopetest holds conformance suites for implementations of
// envelope.Metastore and envelope.KMS, in the spirit of testing/iotest.
// Every backend runs them from its own tests:
//
//	func TestConformance(t *testing.T) {
//		envelopetest.TestMetastore(t, func(t *testing.T) envelope.Metastore { return memstore.New() })
//	}
//
// The suites use only the standard library (and this module's testenv,
// for skips), so they can run against backends in any module. A store
// that lacks an optional interface (Revoker, Lister, Deleter) skips its
// checks. Key ids are random per run, so a backend backed by a shared
// server (a real database table) may be reused between runs.
package envelopetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestMetastore runs the Metastore conformance suite. newStore returns the
// store under test; it is called once per subtest and may return the same
// store each time. The suite checks:
//
//   - Store then Load returns the record (Created, Key bytes, ParentKeyMeta,
//     Revoked), for system-key records (no ParentKeyMeta) and intermediate
//     ones, and a mutated loaded record does not change the store;
//   - Load and LoadLatest of absent keys return errors matching
//     envelope.ErrNotFound;
//   - LoadLatest returns the greatest created time whatever the insertion
//     order, and ids that share a prefix do not mix;
//   - a second Store of one (id, created) returns envelope.ErrKeyExists and
//     leaves the first record in place;
//   - the Revoked flag round-trips;
//   - concurrent Stores of one (id, created) from many goroutines: exactly
//     one succeeds, all others return ErrKeyExists;
//   - calls with a cancelled context fail with an error matching
//     context.Canceled;
//   - the optional envelope.Revoker, envelope.Lister and envelope.Deleter
//     interfaces, when implemented, behave as documented.
func TestMetastore(t *testing.T, newStore func(t *testing.T) envelope.Metastore) {
	t.Helper()
	base := time.Now().Truncate(time.Minute).Unix()
	t.Run("StoreLoad", func(t *testing.T) { testStoreLoad(t, newStore(t), base) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t), base) })
	t.Run("LoadLatest", func(t *testing.T) { testLoadLatest(t, newStore(t), base) })
	t.Run("Duplicate", func(t *testing.T) { testDuplicate(t, newStore(t), base) })
	t.Run("Revoked", func(t *testing.T) { testRevokedFlag(t, newStore(t), base) })
	t.Run("ConcurrentStore", func(t *testing.T) { testConcurrentStore(t, newStore(t), base) })
	t.Run("ContextCanceled", func(t *testing.T) { testCanceled(t, newStore(t), base) })
	t.Run("Revoker", func(t *testing.T) { testRevoker(t, newStore(t), base) })
	t.Run("Lister", func(t *testing.T) { testLister(t, newStore(t), base) })
	t.Run("Deleter", func(t *testing.T) { testDeleter(t, newStore(t), base) })
}

// uniqueID returns a key id no earlier run has used.
func uniqueID(kind, name string) string {
	var b [6]byte
	rand.Read(b[:])
	return fmt.Sprintf("_%s_conf-%s-%s_svc_prod", kind, name, hex.EncodeToString(b[:]))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func ikRecord(created int64, parentCreated int64) *envelope.EnvelopeKeyRecord {
	return &envelope.EnvelopeKeyRecord{
		Created:       created,
		EncryptedKey:  randomBytes(60),
		ParentKeyMeta: &envelope.KeyMeta{ID: "_SK_svc_prod", Created: parentCreated},
	}
}

func skRecord(created int64) *envelope.EnvelopeKeyRecord {
	return &envelope.EnvelopeKeyRecord{Created: created, EncryptedKey: randomBytes(60)}
}

func mustStore(t *testing.T, s envelope.Metastore, id string, rec *envelope.EnvelopeKeyRecord) {
	t.Helper()
	if err := s.Store(context.Background(), id, rec.Created, rec); err != nil {
		t.Fatalf("Store(%s, %d): %v", id, rec.Created, err)
	}
}

// sameRecord reports how got differs from want, ignoring ID (which a
// store may or may not set).
func sameRecord(got, want *envelope.EnvelopeKeyRecord) error {
	if got == nil {
		return errors.New("nil record")
	}
	if got.Created != want.Created {
		return fmt.Errorf("field Created = %d, want %d", got.Created, want.Created)
	}
	if got.Revoked != want.Revoked {
		return fmt.Errorf("field Revoked = %v, want %v", got.Revoked, want.Revoked)
	}
	if !bytes.Equal(got.EncryptedKey, want.EncryptedKey) {
		return fmt.Errorf("field Key = %x, want %x", got.EncryptedKey, want.EncryptedKey)
	}
	switch {
	case want.ParentKeyMeta == nil && got.ParentKeyMeta != nil:
		return fmt.Errorf("field ParentKeyMeta = %+v, want none", *got.ParentKeyMeta)
	case want.ParentKeyMeta != nil && got.ParentKeyMeta == nil:
		return fmt.Errorf("field ParentKeyMeta missing, want %+v", *want.ParentKeyMeta)
	case want.ParentKeyMeta != nil && *got.ParentKeyMeta != *want.ParentKeyMeta:
		return fmt.Errorf("field ParentKeyMeta = %+v, want %+v", *got.ParentKeyMeta, *want.ParentKeyMeta)
	}
	return nil
}

func testStoreLoad(t *testing.T, s envelope.Metastore, base int64) {
	ctx := context.Background()
	skID, ikID := uniqueID("SK", "load"), uniqueID("IK", "load")
	sk := skRecord(base)
	ik := ikRecord(base, base)
	mustStore(t, s, skID, sk)
	mustStore(t, s, ikID, ik)
	for _, c := range []struct {
		id   string
		want *envelope.EnvelopeKeyRecord
	}{{skID, sk}, {ikID, ik}} {
		got, err := s.Load(ctx, c.id, c.want.Created)
		if err != nil {
			t.Fatalf("Load(%s): %v", c.id, err)
		}
		if err := sameRecord(got, c.want); err != nil {
			t.Errorf("Load(%s): %v", c.id, err)
		}
		latest, err := s.LoadLatest(ctx, c.id)
		if err != nil {
			t.Fatalf("LoadLatest(%s): %v", c.id, err)
		}
		if err := sameRecord(latest, c.want); err != nil {
			t.Errorf("LoadLatest(%s): %v", c.id, err)
		}
	}
	// Changing a loaded record must not change the store.
	got, err := s.Load(ctx, ikID, base)
	if err != nil {
		t.Fatal(err)
	}
	got.EncryptedKey[0] ^= 0xff
	got.ParentKeyMeta.Created++
	got.Revoked = true
	again, err := s.Load(ctx, ikID, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(again, ik); err != nil {
		t.Errorf("after changing a loaded record, Load: %v", err)
	}
	// Nor must changing the record passed to Store.
	stored := ikRecord(base+60, base)
	want := *stored
	want.EncryptedKey = bytes.Clone(stored.EncryptedKey)
	pm := *stored.ParentKeyMeta
	want.ParentKeyMeta = &pm
	mustStore(t, s, ikID, stored)
	stored.EncryptedKey[0] ^= 0xff
	stored.ParentKeyMeta.ID = "changed"
	again, err = s.Load(ctx, ikID, base+60)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(again, &want); err != nil {
		t.Errorf("after changing the stored record, Load: %v", err)
	}
}

func testNotFound(t *testing.T, s envelope.Metastore, base int64) {
	ctx := context.Background()
	id := uniqueID("IK", "absent")
	if rec, err := s.Load(ctx, id, base); !errors.Is(err, envelope.ErrNotFound) {
		t.Errorf("Load of an absent id = %v, %v; want ErrNotFound", rec, err)
	}
	if rec, err := s.LoadLatest(ctx, id); !errors.Is(err, envelope.ErrNotFound) {
		t.Errorf("LoadLatest of an absent id = %v, %v; want ErrNotFound", rec, err)
	}
	mustStore(t, s, id, ikRecord(base, base))
	if rec, err := s.Load(ctx, id, base+1); !errors.Is(err, envelope.ErrNotFound) {
		t.Errorf("Load of an absent created time = %v, %v; want ErrNotFound", rec, err)
	}
}

func testLoadLatest(t *testing.T, s envelope.Metastore, base int64) {
	ctx := context.Background()
	id := uniqueID("IK", "latest")
	// The prefix of id: its rows must not count as id's.
	other := id + "x"
	recs := map[int64]*envelope.EnvelopeKeyRecord{}
	for _, created := range []int64{base - 120, base + 60, base - 60, base} {
		r := ikRecord(created, base-3600)
		recs[created] = r
		mustStore(t, s, id, r)
	}
	mustStore(t, s, other, ikRecord(base+3600, base))
	got, err := s.LoadLatest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(got, recs[base+60]); err != nil {
		t.Errorf("LoadLatest: %v (want the record created at %d)", err, base+60)
	}
	for created, want := range recs {
		got, err := s.Load(ctx, id, created)
		if err != nil {
			t.Fatalf("Load(%d): %v", created, err)
		}
		if err := sameRecord(got, want); err != nil {
			t.Errorf("Load(%d): %v", created, err)
		}
	}
}

func testDuplicate(t *testing.T, s envelope.Metastore, base int64) {
	ctx := context.Background()
	id := uniqueID("IK", "dup")
	first := ikRecord(base, base)
	mustStore(t, s, id, first)
	err := s.Store(ctx, id, base, ikRecord(base, base))
	if !errors.Is(err, envelope.ErrKeyExists) {
		t.Fatalf("second Store of one (id, created) = %v, want ErrKeyExists", err)
	}
	got, err := s.Load(ctx, id, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(got, first); err != nil {
		t.Errorf("after a duplicate Store, Load: %v (want the first record)", err)
	}
	// Same created, other id: not a duplicate.
	if err := s.Store(ctx, id+"2", base, ikRecord(base, base)); err != nil {
		t.Errorf("Store of another id with the same created time: %v", err)
	}
}

func testRevokedFlag(t *testing.T, s envelope.Metastore, base int64) {
	ctx := context.Background()
	id := uniqueID("IK", "revoked")
	r := ikRecord(base, base)
	r.Revoked = true
	mustStore(t, s, id, r)
	got, err := s.Load(ctx, id, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(got, r); err != nil {
		t.Errorf("Load of a revoked record: %v", err)
	}
	latest, err := s.LoadLatest(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !latest.Revoked {
		t.Error("LoadLatest lost the Revoked flag")
	}
}

func testConcurrentStore(t *testing.T, s envelope.Metastore, base int64) {
	const n = 16
	id := uniqueID("IK", "race")
	var wg sync.WaitGroup
	errs := make([]error, n)
	recs := make([]*envelope.EnvelopeKeyRecord, n)
	start := make(chan struct{})
	for i := range n {
		recs[i] = ikRecord(base, base)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = s.Store(context.Background(), id, base, recs[i])
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Errorf("Stores %d and %d of one (id, created) both succeeded", winner, i)
			}
			winner = i
		case !errors.Is(err, envelope.ErrKeyExists):
			t.Errorf("concurrent Store %d: %v, want nil or ErrKeyExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no concurrent Store succeeded")
	}
	got, err := s.Load(context.Background(), id, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameRecord(got, recs[winner]); err != nil {
		t.Errorf("stored record is not the winner's: %v", err)
	}
}

func testCanceled(t *testing.T, s envelope.Metastore, base int64) {
	id := uniqueID("IK", "ctx")
	mustStore(t, s, id, ikRecord(base, base))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Load(ctx, id, base); !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.LoadLatest(ctx, id); !errors.Is(err, context.Canceled) {
		t.Errorf("LoadLatest with a cancelled context = %v, want context.Canceled", err)
	}
	if err := s.Store(ctx, id, base+60, ikRecord(base+60, base)); !errors.Is(err, context.Canceled) {
		t.Errorf("Store with a cancelled context = %v, want context.Canceled", err)
	}
}

func testRevoker(t *testing.T, s envelope.Metastore, base int64) {
	r, ok := s.(envelope.Revoker)
	if !ok {
		testenv.NotApplicable(t, "store does not implement envelope.Revoker")
	}
	ctx := context.Background()
	id := uniqueID("IK", "revoke")
	older, newer := ikRecord(base-60, base), ikRecord(base, base)
	mustStore(t, s, id, older)
	mustStore(t, s, id, newer)
	if err := r.Revoke(ctx, id, base); err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	if err := r.Revoke(ctx, id, base); err != nil {
		t.Errorf("second Revoke: %v", err)
	}
	got, err := s.Load(ctx, id, base)
	if err != nil {
		t.Fatal(err)
	}
	want := *newer
	want.Revoked = true
	if err := sameRecord(got, &want); err != nil {
		t.Errorf("after Revoke, Load: %v", err)
	}
	if got, err := s.Load(ctx, id, base-60); err != nil || got.Revoked {
		t.Errorf("Revoke changed another row: %+v, %v", got, err)
	}
	if err := r.Revoke(ctx, id, base+1); !errors.Is(err, envelope.ErrNotFound) {
		t.Errorf("Revoke of an absent row = %v, want ErrNotFound", err)
	}
}

func testLister(t *testing.T, s envelope.Metastore, base int64) {
	l, ok := s.(envelope.Lister)
	if !ok {
		testenv.NotApplicable(t, "store does not implement envelope.Lister")
	}
	ctx := context.Background()
	// "_" and "%" must not act as wildcards: prefix "_IK_p_q" must not
	// match "_IKxp_q..." and "100%" must not match "100x".
	var b [6]byte
	rand.Read(b[:])
	tag := hex.EncodeToString(b[:])
	prefix := "_IK_list" + tag + "_100%_"
	inside := []string{prefix + "a_svc_prod", prefix + "b_svc_prod"}
	outside := []string{"_IKxlist" + tag + "_100%_a", "_IK_list" + tag + "_100x_a", "_IK_list" + tag + "_100%xa"}
	for i, id := range append(append([]string{}, inside...), outside...) {
		mustStore(t, s, id, ikRecord(base+int64(i), base))
	}
	mustStore(t, s, inside[0], ikRecord(base-60, base))
	got, err := l.List(ctx, prefix)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	type row struct {
		id      string
		created int64
	}
	want := []row{{inside[0], base - 60}, {inside[0], base}, {inside[1], base + 1}}
	if len(got) != len(want) {
		ids := make([]string, len(got))
		for i, r := range got {
			ids[i] = r.ID
		}
		t.Fatalf("List(%q) returned %d records %v, want %d", prefix, len(got), ids, len(want))
	}
	for i, w := range want {
		if got[i].ID != w.id || got[i].Created != w.created {
			t.Errorf("List[%d] = %s/%d, want %s/%d", i, got[i].ID, got[i].Created, w.id, w.created)
		}
	}
}

func testDeleter(t *testing.T, s envelope.Metastore, base int64) {
	d, ok := s.(envelope.Deleter)
	if !ok {
		testenv.NotApplicable(t, "store does not implement envelope.Deleter")
	}
	ctx := context.Background()
	id := uniqueID("IK", "delete")
	keep := id + "keep"
	mustStore(t, s, id, ikRecord(base, base))
	mustStore(t, s, id, ikRecord(base+60, base))
	mustStore(t, s, keep, ikRecord(base, base))
	n, err := d.Delete(ctx, id)
	if err != nil || n != 2 {
		t.Fatalf("Delete = %d, %v; want 2, nil", n, err)
	}
	if _, err := s.LoadLatest(ctx, id); !errors.Is(err, envelope.ErrNotFound) {
		t.Errorf("LoadLatest after Delete = %v, want ErrNotFound", err)
	}
	if _, err := s.Load(ctx, keep, base); err != nil {
		t.Errorf("Delete removed another id: %v", err)
	}
	if n, err := d.Delete(ctx, id); err != nil || n != 0 {
		t.Errorf("second Delete = %d, %v; want 0, nil", n, err)
	}
}
