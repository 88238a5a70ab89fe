package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"
	_ "time/tzdata" // Asia/Tokyo without a system zone database

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

// The sqlite dialect stores created as UTC text in SQLite's own format,
// whatever the store's location, so processes in different time zones
// agree on the primary key and rows sort by time.
func TestSQLiteCreatedIsUTCText(t *testing.T) {
	db, _ := openSQLite(t)
	ctx := context.Background()
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err) // time/tzdata is linked in: the zone is always there
	}
	a, err := sqlstore.New(db, sqlstore.WithDialect(sqlstore.SQLite), sqlstore.WithLocation(tokyo))
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlstore.New(db, sqlstore.WithDialect(sqlstore.SQLite), sqlstore.WithLocation(time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	rec := &envelope.EnvelopeKeyRecord{Created: 1795749120, EncryptedKey: []byte{1, 2, 3}}
	if err := a.Store(ctx, "_SK_tz_test", 1795749120, rec); err != nil {
		t.Fatal(err)
	}
	// (Scanning the column would let the driver parse it as a time.)
	var typ string
	var match bool
	if err := db.QueryRowContext(ctx, "SELECT typeof(created), created = '2026-11-27 03:12:00' FROM encryption_key WHERE id = '_SK_tz_test'").Scan(&typ, &match); err != nil {
		t.Fatal(err)
	}
	if typ != "text" || !match {
		t.Errorf("created stored as %s, equal to '2026-11-27 03:12:00': %v", typ, match)
	}
	if _, err := b.Load(ctx, "_SK_tz_test", 1795749120); err != nil {
		t.Errorf("a store in another location cannot load the row: %v", err)
	}
	if err := b.Store(ctx, "_SK_tz_test", 1795749120, rec); !errors.Is(err, envelope.ErrKeyExists) {
		t.Errorf("duplicate from another location = %v, want ErrKeyExists", err)
	}
}
