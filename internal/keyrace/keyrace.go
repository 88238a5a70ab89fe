// Package keyrace is test support: it races two processes creating the
// keys of new partitions in one shared metastore, the duplicate-store race
// of Asherah's design (two writers in the same CreateDatePrecision window
// collide on one (id, created) row and the loser must adopt the winner's
// key). Every metastore that can be shared between processes runs it
// against its real server.
package keyrace

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// Partitions is how many new partitions each process writes to.
const Partitions = 6

const (
	envService = "KEYRACE_SERVICE"
	envNow     = "KEYRACE_NOW"
	masterKey  = "keyrace-test-master-key-32bytes!"
)

// Store is what the race needs of a metastore: the contract, and a list of
// the stored rows to count them.
type Store interface {
	envelope.Metastore
	envelope.Lister
}

// Setup says how to reach the shared metastore.
type Setup struct {
	// Name prefixes the test's failure messages (several setups may run
	// in one test).
	Name string
	// Env is added to the children's environment (KEY=VALUE).
	Env []string
	// Open opens the shared metastore. getenv reads Env: in the parent
	// from Setup.Env, in a child from its environment, so the same
	// function serves both sides.
	Open func(t *testing.T, getenv func(string) string) Store
}

// Run races two processes on s and checks the outcome: exactly one system
// key row and one intermediate key row per partition, and every record of
// each process decrypts in a fresh factory (both adopted the stored keys).
// Call it from a top-level test; in a child process (the test binary
// re-executed by testenv.RunChildren) it does the child's part instead,
// and the caller must return right after it.
func Run(t *testing.T, s Setup) {
	t.Helper()
	if i, ok := testenv.IsChild(); ok {
		child(t, i, s)
		return
	}
	// One clock for both processes, so that their keys' created times
	// (one-minute precision) collide even across a minute boundary.
	now := time.Now().Unix()
	service := fmt.Sprintf("race%d", now)
	env := append(s.Env[:len(s.Env):len(s.Env)], envService+"="+service, envNow+"="+strconv.FormatInt(now, 10))
	// The parent opens the store first, so that whatever opening creates
	// (a schema: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
	// against a concurrent twin) exists before the children race.
	store := s.Open(t, lookup(s.Env))
	results := testenv.RunChildren(t, 2, env...)

	ctx := context.Background()
	recs, err := store.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range recs {
		if strings.Contains(r.ID, service) {
			count[r.ID]++
		}
	}
	if len(count) != 1+Partitions {
		t.Errorf("%s: %d key ids, want one system key and %d intermediate keys: %v", s.Name, len(count), Partitions, count)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s: %s has %d rows, want 1", s.Name, id, n)
		}
	}
	f := factory(t, store, service, now)
	for i, lines := range results {
		if len(lines) != Partitions {
			t.Fatalf("%s: child %d reported %d records, want %d", s.Name, i, len(lines), Partitions)
		}
		for _, line := range lines {
			part, js, _ := strings.Cut(line, " ")
			var drr envelope.DataRowRecord
			if err := json.Unmarshal([]byte(js), &drr); err != nil {
				t.Fatal(err)
			}
			sess, err := f.GetSession(part)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := sess.Decrypt(ctx, drr)
			sess.Close()
			if err != nil || string(pt) != plaintext(i, part) {
				t.Errorf("%s: child %d's record for %s: %q, %v", s.Name, i, part, pt, err)
			}
		}
	}
}

func child(t *testing.T, i int, s Setup) {
	now, err := strconv.ParseInt(os.Getenv(envNow), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envNow, err)
	}
	f := factory(t, s.Open(t, os.Getenv), os.Getenv(envService), now)
	testenv.ChildReady()
	ctx := context.Background()
	for p := range Partitions {
		part := fmt.Sprintf("p%d", p)
		sess, err := f.GetSession(part)
		if err != nil {
			t.Fatal(err)
		}
		drr, err := sess.Encrypt(ctx, []byte(plaintext(i, part)))
		sess.Close()
		if err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(drr)
		if err != nil {
			t.Fatal(err)
		}
		testenv.ChildResult(part + " " + string(js))
	}
}

func plaintext(child int, part string) string { return fmt.Sprintf("child %d %s", child, part) }

func factory(t *testing.T, store envelope.Metastore, service string, now int64) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte(masterKey))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: service, Product: "prod"}, store, kms, nil,
		envelope.WithClock(func() time.Time { return time.Unix(now, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// lookup reads KEY=VALUE pairs.
func lookup(env []string) func(string) string {
	return func(key string) string {
		for _, kv := range env {
			if k, v, ok := strings.Cut(kv, "="); ok && k == key {
				return v
			}
		}
		return ""
	}
}
