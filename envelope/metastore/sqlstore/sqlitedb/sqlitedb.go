// Package sqlitedb opens the embedded default metastore: a SQLite file
// through modernc.org/sqlite (pure Go, no cgo), set up so that several
// processes can share it, with Asherah's encryption_key table.
//
// It is a separate package so that importing sqlstore does not link the
// SQLite driver into programs that use PostgreSQL or MySQL.
package sqlitedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// DefaultBusyTimeout is how long a connection waits for another process's
// write lock before failing with SQLITE_BUSY.
const DefaultBusyTimeout = 10 * time.Second

// DSN returns the modernc.org/sqlite data source name for the file at
// path: WAL journal (readers never block the writer and processes share
// the file safely), synchronous=NORMAL (durable at each checkpoint; a
// power cut can lose the last transactions but never corrupts the file),
// a busy timeout, and IMMEDIATE transactions (a transaction takes the
// write lock when it begins, so two writers cannot deadlock by upgrading
// read locks).
func DSN(path string, busyTimeout time.Duration) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Opaque: (&url.URL{Path: path}).EscapedPath(), RawQuery: q.Encode()}
	return u.String()
}

// Open opens (creating if needed) the SQLite database at path with the
// settings of DSN and DefaultBusyTimeout, creates the encryption_key table
// if it is missing, and returns the database and a Store on it. The caller
// closes db when done (after the SessionFactory using the store).
func Open(ctx context.Context, path string) (*sql.DB, *sqlstore.Store, error) {
	if path == "" {
		return nil, nil, errors.New("sqlitedb: empty database path")
	}
	db, err := sql.Open("sqlite", DSN(path, DefaultBusyTimeout))
	if err != nil {
		return nil, nil, fmt.Errorf("sqlitedb: failed to open %s: %w", path, err)
	}
	store, err := sqlstore.New(db, sqlstore.WithDialect(sqlstore.SQLite))
	if err == nil {
		err = store.CreateSchema(ctx)
	}
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sqlitedb: %s: %w", path, err)
	}
	return db, store, nil
}
