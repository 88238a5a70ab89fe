// Package sqlstore is an envelope.Metastore on a database/sql database,
// compatible with Asherah's SQL metastore: the same table
// (encryption_key: id, created, key_record), the same queries and the same
// JSON in key_record, so enc-pipe and Asherah can share one table.
//
// The caller opens the *sql.DB with the driver of its choice and closes
// it; this package imports no driver. For the embedded SQLite default use
// package sqlitedb, which opens a file with the settings several processes
// need to share it.
//
// Duplicate inserts are reported as envelope.ErrKeyExists for SQLite
// (modernc.org/sqlite and mattn/go-sqlite3 constraint codes 1555 and
// 2067), PostgreSQL (SQLSTATE 23505, pgx and lib/pq), MySQL/MariaDB (error
// 1062, go-sql-driver/mysql) and Oracle (ORA-00001), recognised through the
// drivers' error methods and fields without importing the drivers.
//
// Calls that fail with a transient error (connection refused or reset, a
// server starting up or shutting down, deadlock, serialization failure)
// are retried with backoff and jitter; see RetryPolicy. Duplicates and
// every other error are returned at once. To open PostgreSQL or MySQL with
// pool limits and timeouts, see package serverdb.
//
// A Store is safe for concurrent use. It implements the optional
// envelope.Revoker, envelope.Lister and envelope.Deleter interfaces.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
)

// Store is a Metastore on the encryption_key table of a database.
type Store struct {
	db      *sql.DB
	dialect Dialect
	loc     *time.Location
	q       queries
	retry   RetryPolicy
	log     *slog.Logger
}

var (
	_ envelope.Metastore = (*Store)(nil)
	_ envelope.Revoker   = (*Store)(nil)
	_ envelope.Lister    = (*Store)(nil)
	_ envelope.Deleter   = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store) error

// WithDialect sets the SQL dialect (default MySQL, as in Asherah).
func WithDialect(d Dialect) Option {
	return func(s *Store) error {
		if !d.valid() {
			return fmt.Errorf("sqlstore: unknown SQL dialect %q (want sqlite, postgres, mysql or oracle)", d)
		}
		s.dialect = d
		return nil
	}
}

// WithLocation sets the time zone of the time.Time values bound for the
// created column in the mysql, postgres and oracle dialects (default
// time.Local, as Asherah's time.Unix(created, 0)). Processes that share a
// PostgreSQL table must agree on it; time.UTC avoids the daylight-saving
// ambiguity of local wall-clock times. The sqlite dialect always uses UTC.
func WithLocation(loc *time.Location) Option {
	return func(s *Store) error {
		if loc == nil {
			return errors.New("sqlstore: WithLocation(nil)")
		}
		s.loc = loc
		return nil
	}
}

// New returns a Store on db. It does not create the table; see
// CreateSchema. The Store does not close db.
func New(db *sql.DB, opts ...Option) (*Store, error) {
	if db == nil {
		return nil, errors.New("sqlstore: nil *sql.DB")
	}
	s := &Store{db: db, dialect: MySQL, loc: time.Local, retry: RetryPolicy{}.withDefaults()}
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.q = queriesFor(s.dialect)
	return s, nil
}

// Dialect returns the store's SQL dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// CreateSchema creates the encryption_key table and its index if they do
// not exist (the statements of Schema).
func (s *Store) CreateSchema(ctx context.Context) error {
	stmts, err := Schema(s.dialect)
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("sqlstore: failed to create the encryption_key table: %w", err)
		}
	}
	return nil
}

// createdArg is the value bound for the created column.
func (s *Store) createdArg(created int64) any {
	if s.dialect == SQLite {
		return time.Unix(created, 0).UTC().Format(time.DateTime)
	}
	return time.Unix(created, 0).In(s.loc)
}

func parseRecord(id string, text []byte) (*envelope.EnvelopeKeyRecord, error) {
	var rec envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(text, &rec); err != nil {
		return nil, fmt.Errorf("sqlstore: key_record of %s is not a valid key record: %w", id, err)
	}
	rec.ID = id
	return &rec, nil
}

// Load returns the record (id, created), or an error wrapping
// envelope.ErrNotFound.
func (s *Store) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	var text []byte
	err := s.do(ctx, "load", func() error {
		return s.db.QueryRowContext(ctx, s.q.load, id, s.createdArg(created)).Scan(&text)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: %s (created %d): %w", id, created, envelope.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: failed to load %s (created %d): %w", id, created, err)
	}
	return parseRecord(id, text)
}

// LoadLatest returns the record of id with the greatest created time, or
// an error wrapping envelope.ErrNotFound.
func (s *Store) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	var text []byte
	err := s.do(ctx, "load latest", func() error {
		return s.db.QueryRowContext(ctx, s.q.loadLatest, id).Scan(&text)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlstore: %s: %w", id, envelope.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: failed to load the latest %s: %w", id, err)
	}
	return parseRecord(id, text)
}

// Store inserts rec under (id, created). A row already there gives an
// error wrapping envelope.ErrKeyExists; any other failure is returned as
// is (wrapped), never reported as a duplicate.
func (s *Store) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) error {
	if rec == nil {
		return fmt.Errorf("sqlstore: nil record for %s", id)
	}
	text, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("sqlstore: failed to encode key record %s: %w", id, err)
	}
	err = s.do(ctx, "store", func() error {
		_, err := s.db.ExecContext(ctx, s.q.store, id, s.createdArg(created), string(text))
		return err
	})
	if err != nil {
		if isDuplicate(s.dialect, err) {
			return fmt.Errorf("sqlstore: %s (created %d): %w: %w", id, created, envelope.ErrKeyExists, err)
		}
		return fmt.Errorf("sqlstore: failed to store %s (created %d): %w", id, created, err)
	}
	return nil
}

// Revoke sets the Revoked flag in the key_record of (id, created). The
// record is re-encoded by encoding/json, which keeps Asherah's field names
// and order.
func (s *Store) Revoke(ctx context.Context, id string, created int64) error {
	rec, err := s.Load(ctx, id, created)
	if err != nil {
		return err
	}
	if rec.Revoked {
		return nil
	}
	rec.Revoked = true
	text, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("sqlstore: failed to encode key record %s: %w", id, err)
	}
	var res sql.Result
	err = s.do(ctx, "revoke", func() error {
		var err error
		res, err = s.db.ExecContext(ctx, s.q.revoke, string(text), id, s.createdArg(created))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlstore: failed to revoke %s (created %d): %w", id, created, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("sqlstore: %s (created %d): %w", id, created, envelope.ErrNotFound)
	}
	return nil
}

// List returns the records whose id starts with idPrefix, sorted by id and
// created time, with ID set. The created time comes from each record's
// JSON (which repeats the row's created).
func (s *Store) List(ctx context.Context, idPrefix string) ([]*envelope.EnvelopeKeyRecord, error) {
	var out []*envelope.EnvelopeKeyRecord
	err := s.do(ctx, "list", func() error {
		var err error
		out, err = s.list(ctx, idPrefix)
		return err
	})
	return out, err
}

func (s *Store) list(ctx context.Context, idPrefix string) ([]*envelope.EnvelopeKeyRecord, error) {
	rows, err := s.db.QueryContext(ctx, s.q.list, likePrefix(idPrefix))
	if err != nil {
		return nil, fmt.Errorf("sqlstore: failed to list keys: %w", err)
	}
	defer rows.Close()
	var out []*envelope.EnvelopeKeyRecord
	for rows.Next() {
		var id string
		var text []byte
		if err := rows.Scan(&id, &text); err != nil {
			return nil, fmt.Errorf("sqlstore: failed to list keys: %w", err)
		}
		if !strings.HasPrefix(id, idPrefix) { // collations may match more than LIKE should
			continue
		}
		rec, err := parseRecord(id, text)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlstore: failed to list keys: %w", err)
	}
	return out, nil
}

// likePrefix escapes the LIKE wildcards of prefix ("_" is in every key id)
// with "!" and appends "%".
func likePrefix(prefix string) string {
	r := strings.NewReplacer("!", "!!", "%", "!%", "_", "!_")
	return r.Replace(prefix) + "%"
}

// Delete removes every row of id and returns how many it removed.
func (s *Store) Delete(ctx context.Context, id string) (int, error) {
	var res sql.Result
	err := s.do(ctx, "delete", func() error {
		var err error
		res, err = s.db.ExecContext(ctx, s.q.delete, id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sqlstore: failed to delete %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlstore: deleted %s, but the driver cannot count rows: %w", id, err)
	}
	return int(n), nil
}
