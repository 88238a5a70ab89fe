package dynamostore_test

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
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

const racePartitions = 6

// TestServerTwoProcessRace has two processes create the keys of new
// partitions at the same moment, through the session factory, on one
// table. The conditional put must let exactly one system key and one
// intermediate key per partition in, and both processes must end up using
// them: each decrypts what the other wrote.
func TestServerTwoProcessRace(t *testing.T) {
	if _, ok := testenv.IsChild(); ok {
		raceChild(t)
		return
	}
	endpoint := dynamoEndpoint(t)
	c := client("us-west-2", endpoint)
	table := newTable(t, c)
	// One clock for both processes, so that their keys' created times (one
	// minute precision) collide even across a minute boundary.
	now := time.Now().Unix()
	service := fmt.Sprintf("race%d", now)
	results := testenv.RunChildren(t, 2,
		"RACE_TABLE="+table, "RACE_ENDPOINT="+endpoint, "RACE_SERVICE="+service, "RACE_NOW="+strconv.FormatInt(now, 10))

	s, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	recs, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, r := range recs {
		count[r.ID]++
	}
	if len(recs) != 1+racePartitions {
		t.Errorf("%d key rows, want one system key and %d intermediate keys: %v", len(recs), racePartitions, count)
	}
	for id, n := range count {
		if n != 1 {
			t.Errorf("%s has %d rows, want 1", id, n)
		}
	}

	// Every record of each child decrypts in a fresh factory: both used the
	// stored keys, not a key that lost the race.
	f := raceFactory(t, s, service, now)
	for i, lines := range results {
		if len(lines) != racePartitions {
			t.Fatalf("child %d reported %d records", i, len(lines))
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
				t.Errorf("child %d's record for %s: %q, %v", i, part, pt, err)
			}
		}
	}
}

func raceFactory(t *testing.T, s envelope.Metastore, service string, now int64) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte("race-test-master-key-32-bytes!!!"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kms.Close() })
	f, err := envelope.NewSessionFactory(&envelope.Config{Service: service, Product: "prod"}, s, kms, nil,
		envelope.WithClock(func() time.Time { return time.Unix(now, 0) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func raceChild(t *testing.T) {
	i, _ := testenv.IsChild()
	now, _ := strconv.ParseInt(os.Getenv("RACE_NOW"), 10, 64)
	s, err := dynamostore.New(client("us-west-2", os.Getenv("RACE_ENDPOINT")), dynamostore.WithTableName(os.Getenv("RACE_TABLE")))
	if err != nil {
		t.Fatal(err)
	}
	f := raceFactory(t, s, os.Getenv("RACE_SERVICE"), now)
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
