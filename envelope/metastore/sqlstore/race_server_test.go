package sqlstore_test

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
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

const racePartitions = 6

// TestServerTwoProcessRace has two processes create the keys of new
// partitions at the same moment, through the session factory, in one
// PostgreSQL / MariaDB table. The primary key must let exactly one system
// key and one intermediate key per partition in, and both processes must
// use them: every record of each decrypts in a fresh factory.
func TestServerTwoProcessRace(t *testing.T) {
	if _, ok := testenv.IsChild(); ok {
		raceChild(t)
		return
	}
	for _, d := range serverDialects {
		dsn := d.freshDatabase(t, testenv.Var(t, d.envVar))
		_, store := d.open(t, dsn)
		// One clock for both processes, so their created times collide.
		now := time.Now().Unix()
		service := fmt.Sprintf("race%d", now)
		results := testenv.RunChildren(t, 2, "RACE_DIALECT="+string(d.dialect), "RACE_DSN="+dsn,
			"RACE_SERVICE="+service, "RACE_NOW="+strconv.FormatInt(now, 10))

		ctx := context.Background()
		recs, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		count := map[string]int{}
		for _, r := range recs {
			count[r.ID]++
		}
		if len(recs) != 1+racePartitions {
			t.Errorf("%s: %d key rows, want one system key and %d intermediate keys: %v", d.name, len(recs), racePartitions, count)
		}
		f := newFactory(t, store, service, envelope.WithClock(func() time.Time { return time.Unix(now, 0) }))
		for i, lines := range results {
			if len(lines) != racePartitions {
				t.Fatalf("%s: child %d reported %d records", d.name, i, len(lines))
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
				if err != nil || string(pt) != fmt.Sprintf("child %d %s", i, part) {
					t.Errorf("%s: child %d's record for %s: %q, %v", d.name, i, part, pt, err)
				}
			}
		}
	}
}

func raceChild(t *testing.T) {
	i, _ := testenv.IsChild()
	now, _ := strconv.ParseInt(os.Getenv("RACE_NOW"), 10, 64)
	var d serverDialect
	for _, sd := range serverDialects {
		if string(sd.dialect) == os.Getenv("RACE_DIALECT") {
			d = sd
		}
	}
	if d.dialect == "" {
		t.Fatalf("unknown RACE_DIALECT %q", os.Getenv("RACE_DIALECT"))
	}
	_, store := d.open(t, os.Getenv("RACE_DSN"), sqlstore.WithRetry(sqlstore.RetryPolicy{Attempts: 1}))
	f := newFactory(t, store, os.Getenv("RACE_SERVICE"), envelope.WithClock(func() time.Time { return time.Unix(now, 0) }))
	testenv.ChildReady()
	ctx := context.Background()
	for p := range racePartitions {
		part := fmt.Sprintf("p%d", p)
		sess, err := f.GetSession(part)
		if err != nil {
			t.Fatal(err)
		}
		drr, err := sess.Encrypt(ctx, fmt.Appendf(nil, "child %d %s", i, part))
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
