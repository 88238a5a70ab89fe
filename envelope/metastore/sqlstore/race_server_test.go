package sqlstore_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/internal/keyrace"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestServerTwoProcessRace has two processes create the keys of new
// partitions at the same moment, through the session factory, in one
// PostgreSQL / MariaDB table. The primary key must let exactly one system
// key and one intermediate key per partition in, and both processes must
// use them: every record of each decrypts in a fresh factory.
func TestServerTwoProcessRace(t *testing.T) {
	if _, ok := testenv.IsChild(); ok {
		keyrace.Run(t, keyrace.Setup{Open: openRaceStore})
		return
	}
	for _, d := range serverDialects {
		dsn := d.freshDatabase(t, testenv.Var(t, d.envVar))
		keyrace.Run(t, keyrace.Setup{
			Name: d.name,
			Env:  []string{"RACE_DIALECT=" + string(d.dialect), "RACE_DSN=" + dsn},
			Open: openRaceStore,
		})
	}
}

// openRaceStore opens the race's database. Retries are off, so that a
// duplicate insert cannot hide behind a retried one.
func openRaceStore(t *testing.T, getenv func(string) string) keyrace.Store {
	for _, d := range serverDialects {
		if string(d.dialect) == getenv("RACE_DIALECT") {
			_, store := d.open(t, getenv("RACE_DSN"), sqlstore.WithRetry(sqlstore.RetryPolicy{Attempts: 1}))
			return store
		}
	}
	t.Fatalf("unknown RACE_DIALECT %q", getenv("RACE_DIALECT"))
	return nil
}
