// Package persistence is the in-memory and SQL metastores and the
// Loader/Storer adapters of Asherah Go's pkg/persistence, on top of
// envelope/metastore/memstore and envelope/metastore/sqlstore (see package
// appencryption of this tree). For DynamoDB use
// envelope/metastore/dynamostore, which reads and writes Asherah's items.
//
// The metastores have Asherah's method set (a nil record when there is
// none, Store reporting a duplicate as false) and an EnvelopeMetastore
// method, which appencryption.NewSessionFactory uses instead, so that the
// factory sees envelope's errors.
package persistence

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
)

// LoaderFunc and StorerFunc adapt functions to appencryption.Loader and
// appencryption.Storer.
type (
	LoaderFunc = envelope.LoaderFunc
	StorerFunc = envelope.StorerFunc
)

// load and store give an envelope metastore's answers Asherah's shape.
func load(rec *envelope.EnvelopeKeyRecord, err error) (*envelope.EnvelopeKeyRecord, error) {
	if errors.Is(err, envelope.ErrNotFound) {
		return nil, nil
	}
	return rec, err
}

func store(err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, envelope.ErrKeyExists):
		return false, nil
	}
	return false, err
}

// MemoryMetastore is Asherah's in-memory metastore, for tests. Unlike
// Asherah's it copies records in and out. It is safe for concurrent use.
type MemoryMetastore struct{ s *memstore.Store }

var _ appencryption.Metastore = (*MemoryMetastore)(nil)

// NewMemoryMetastore returns an empty in-memory metastore.
func NewMemoryMetastore() *MemoryMetastore { return &MemoryMetastore{s: memstore.New()} }

// Load returns the key (id, created), or nil.
func (m *MemoryMetastore) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	return load(m.s.Load(ctx, id, created))
}

// LoadLatest returns the newest key of id, or nil.
func (m *MemoryMetastore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	return load(m.s.LoadLatest(ctx, id))
}

// Store inserts the key unless (id, created) exists (false, nil then).
func (m *MemoryMetastore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) (bool, error) {
	return store(m.s.Store(ctx, id, created, rec))
}

// EnvelopeMetastore returns the envelope metastore underneath.
func (m *MemoryMetastore) EnvelopeMetastore() envelope.Metastore { return m.s }

// SQLMetastoreDBType names a SQL dialect.
type SQLMetastoreDBType string

// Asherah's dialects, and SQLite (not in Asherah: see sqlstore).
const (
	Postgres      SQLMetastoreDBType = "postgres"
	Oracle        SQLMetastoreDBType = "oracle"
	MySQL         SQLMetastoreDBType = "mysql"
	SQLite        SQLMetastoreDBType = "sqlite"
	DefaultDBType                    = MySQL
)

// SQLMetastoreOption configures NewSQLMetastore.
type SQLMetastoreOption func(*sqlOptions)

type sqlOptions struct{ dbType SQLMetastoreDBType }

// WithSQLMetastoreDBType sets the dialect (default MySQL).
func WithSQLMetastoreDBType(t SQLMetastoreDBType) SQLMetastoreOption {
	return func(o *sqlOptions) { o.dbType = t }
}

// SQLMetastore is Asherah's SQL metastore: the encryption_key table and
// queries of Asherah's schema, on the caller's *sql.DB (which it does not
// close). It is safe for concurrent use.
type SQLMetastore struct{ s *sqlstore.Store }

var _ appencryption.Metastore = (*SQLMetastore)(nil)

// NewSQLMetastore returns a metastore on db. Like Asherah's it returns no
// error; it panics on a dialect that is none of the constants above
// (Asherah silently uses MySQL's queries then).
func NewSQLMetastore(db *sql.DB, opts ...SQLMetastoreOption) *SQLMetastore {
	o := sqlOptions{dbType: DefaultDBType}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := sqlstore.New(db, sqlstore.WithDialect(sqlstore.Dialect(o.dbType)))
	if err != nil {
		panic(fmt.Errorf("persistence: NewSQLMetastore: %w", err))
	}
	return &SQLMetastore{s: s}
}

// Load returns the key (id, created), or nil.
func (m *SQLMetastore) Load(ctx context.Context, id string, created int64) (*envelope.EnvelopeKeyRecord, error) {
	return load(m.s.Load(ctx, id, created))
}

// LoadLatest returns the newest key of id, or nil.
func (m *SQLMetastore) LoadLatest(ctx context.Context, id string) (*envelope.EnvelopeKeyRecord, error) {
	return load(m.s.LoadLatest(ctx, id))
}

// Store inserts the key unless (id, created) exists. A duplicate is
// (false, nil); unlike Asherah's, other failures are (false, err) and
// never look like a duplicate.
func (m *SQLMetastore) Store(ctx context.Context, id string, created int64, rec *envelope.EnvelopeKeyRecord) (bool, error) {
	return store(m.s.Store(ctx, id, created, rec))
}

// EnvelopeMetastore returns the envelope metastore underneath.
func (m *SQLMetastore) EnvelopeMetastore() envelope.Metastore { return m.s }
