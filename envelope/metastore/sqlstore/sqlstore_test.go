package sqlstore_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
)

func openSQLite(t *testing.T) (*sql.DB, *sqlstore.Store) {
	t.Helper()
	db, store, err := sqlitedb.Open(context.Background(), filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, store
}

func TestConformanceSQLite(t *testing.T) {
	envelopetest.TestMetastore(t, func(t *testing.T) envelope.Metastore {
		_, s := openSQLite(t)
		return s
	})
}
