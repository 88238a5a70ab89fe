package envelope_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// encryptConcurrently encrypts one record per goroutine, each through its
// own session of a factory chosen by pick, all released at once.
func encryptConcurrently(t *testing.T, n int, pick func(i int) *envelope.SessionFactory, partition string) []*envelope.DataRowRecord {
	t.Helper()
	out := make([]*envelope.DataRowRecord, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := pick(i).GetSession(partition)
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			<-start
			out[i], errs[i] = s.Encrypt(context.Background(), []byte(fmt.Sprintf("record %d", i)))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("goroutine %d: %v", i, err)
		}
	}
	return out
}

// checkOneKey asserts that the store holds exactly one IK row for
// partition and one SK row, that every record uses that IK, and that every
// record decrypts.
func checkOneKey(t *testing.T, store envelope.Metastore, f *envelope.SessionFactory, partition string, drrs []*envelope.DataRowRecord, plaintext func(i int) []byte) {
	t.Helper()
	iks := keyRows(t, store, f.IntermediateKeyID(partition))
	sks := keyRows(t, store, f.SystemKeyID())
	if len(iks) != 1 || len(sks) != 1 {
		t.Fatalf("%d IK rows and %d SK rows after concurrent first use, want 1 and 1", len(iks), len(sks))
	}
	want := envelope.KeyMeta{ID: iks[0].ID, Created: iks[0].Created}
	s := getSession(t, f, partition)
	for i, drr := range drrs {
		if ikOf(drr) != want {
			t.Errorf("record %d uses %+v, want the stored %+v", i, ikOf(drr), want)
		}
		mustDecrypt(t, s, drr, plaintext(i))
	}
}

func recordPlaintext(i int) []byte { return []byte(fmt.Sprintf("record %d", i)) }

// Many goroutines using a new partition at the same moment create exactly
// one intermediate key and one system key: within a factory, loads are
// coalesced; across factories (each with its own caches), the metastore's
// insert-if-absent picks one winner and the others adopt its key.
func TestConcurrentFirstUse(t *testing.T) {
	const n = 24
	for _, b := range backends {
		for _, mode := range []string{"one-factory", "shared-ik-cache", "factory-per-goroutine"} {
			t.Run(b.name+"/"+mode, func(t *testing.T) {
				store := b.open(t)
				clock := newFakeClock(t0)
				cfg := &envelope.Config{Service: "svc", Product: "prod"}
				if mode == "shared-ik-cache" {
					cfg.Policy = envelope.NewCryptoPolicy(envelope.WithSharedIntermediateKeyCache(10))
				}
				factories := make([]*envelope.SessionFactory, n)
				for i := range factories {
					if i == 0 || mode == "factory-per-goroutine" {
						factories[i] = newFactory(t, cfg, store, envelope.WithClock(clock.Now))
					} else {
						factories[i] = factories[0]
					}
				}
				drrs := encryptConcurrently(t, n, func(i int) *envelope.SessionFactory { return factories[i] }, "p")
				checkOneKey(t, store, factories[0], "p", drrs, recordPlaintext)
			})
		}
	}
}

// Two processes start using a new partition on one SQLite file at the same
// moment: exactly one intermediate key and one system key are stored, and
// each process's records decrypt in the other.
func TestTwoProcessesOneSQLiteFile(t *testing.T) {
	const perProcess = 8
	if i, ok := testenv.IsChild(); ok {
		now, err := strconv.ParseInt(os.Getenv("ENVELOPE_TEST_NOW"), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		clock := newFakeClock(time.Unix(now, 0))
		// Each goroutine has its own factory, so the processes race with
		// several writers each, not one.
		store := openSQLite(t, os.Getenv("ENVELOPE_TEST_DB"))
		factories := make([]*envelope.SessionFactory, perProcess)
		for j := range factories {
			factories[j] = newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store, envelope.WithClock(clock.Now))
		}
		testenv.ChildReady()
		drrs := encryptConcurrently(t, perProcess, func(j int) *envelope.SessionFactory { return factories[j] }, "shared-partition")
		for j, drr := range drrs {
			text, err := json.Marshal(drr)
			if err != nil {
				t.Fatal(err)
			}
			testenv.ChildResult(fmt.Sprintf("%d %d %s", i, j, text))
		}
		return
	}

	path := filepath.Join(t.TempDir(), "shared.db")
	store := openSQLite(t, path) // creates the schema before the children start
	results := testenv.RunChildren(t, 2,
		"ENVELOPE_TEST_DB="+path,
		"ENVELOPE_TEST_NOW="+strconv.FormatInt(t0.Unix(), 10))

	var drrs []*envelope.DataRowRecord
	var plaintexts [][]byte
	for _, lines := range results {
		if len(lines) != perProcess {
			t.Fatalf("a child reported %d records, want %d", len(lines), perProcess)
		}
		for _, line := range lines {
			var proc, j int
			var text string
			if _, err := fmt.Sscanf(line, "%d %d %s", &proc, &j, &text); err != nil {
				t.Fatalf("child result %q: %v", line, err)
			}
			var drr envelope.DataRowRecord
			if err := json.Unmarshal([]byte(text), &drr); err != nil {
				t.Fatal(err)
			}
			drrs = append(drrs, &drr)
			plaintexts = append(plaintexts, recordPlaintext(j))
		}
	}
	f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod"}, store)
	checkOneKey(t, store, f, "shared-partition", drrs, func(i int) []byte { return plaintexts[i] })
}

// Sessions of one partition used concurrently for writes and reads, with
// a key cache small enough to evict, keep working and never mix keys.
func TestConcurrentMixedUse(t *testing.T) {
	for _, policy := range []string{"simple", "lru", "lfu", "slru", "tinylfu"} {
		t.Run(policy, func(t *testing.T) {
			store := backends[0].open(t)
			p := envelope.NewCryptoPolicy(
				envelope.WithSharedIntermediateKeyCache(2),
				envelope.WithIntermediateKeyCache(policy, 2),
				envelope.WithSystemKeyCache(policy, 1))
			f := newFactory(t, &envelope.Config{Service: "svc", Product: "prod", Policy: p}, store)
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for g := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range 30 {
						partition := fmt.Sprintf("p%d", (g+k)%5)
						s, err := f.GetSession(partition)
						if err != nil {
							errs <- err
							return
						}
						msg := []byte(fmt.Sprintf("%s/%d/%d", partition, g, k))
						drr, err := s.Encrypt(context.Background(), msg)
						if err == nil {
							var got []byte
							got, err = s.Decrypt(context.Background(), *drr)
							if err == nil && !bytes.Equal(got, msg) {
								err = fmt.Errorf("got %q, want %q", got, msg)
							}
						}
						s.Close()
						if err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := len(keyRows(t, store, "_IK_")); n != 5 {
				t.Errorf("%d IK rows for 5 partitions, want 5", n)
			}
		})
	}
}
