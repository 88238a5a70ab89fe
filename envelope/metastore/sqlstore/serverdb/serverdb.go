// Package serverdb opens a PostgreSQL or MySQL/MariaDB database for an
// Asherah-compatible sqlstore metastore, with the drivers, connection pool
// limits and timeouts a long-running service needs.
//
// PostgreSQL goes through github.com/jackc/pgx/v5 (database/sql adapter)
// and MySQL/MariaDB through github.com/go-sql-driver/mysql. It is a
// package of its own so that importing sqlstore links no database driver.
//
// # Pool and timeouts
//
// Every setting has a default (see Options); the DSN's own settings win
// where a driver reads one (connect_timeout for PostgreSQL; timeout,
// readTimeout and writeTimeout for MySQL). database/sql pools connections:
// at most MaxOpenConns per process, so a burst of cold-cache encryptions
// waits for a free connection rather than overrunning the server's
// max_connections. Each metastore call is bounded by the caller's context,
// and transient failures are retried by the Store (sqlstore.RetryPolicy).
//
// Error messages never contain the DSN's password.
package serverdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"github.com/enc-pipe/enc-pipe/internal/redact"
	"log/slog"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
)

// Options configures Open. Zero fields take the defaults given.
type Options struct {
	// MaxOpenConns caps the connections this process opens. Default 10.
	MaxOpenConns int
	// MaxIdleConns is how many idle connections are kept. Default 5
	// (never more than MaxOpenConns).
	MaxIdleConns int
	// ConnMaxLifetime closes connections older than this, so that a
	// fail-over or DNS change is picked up. Default 30 minutes.
	ConnMaxLifetime time.Duration
	// ConnMaxIdleTime closes connections idle for this long. Default 5
	// minutes.
	ConnMaxIdleTime time.Duration
	// ConnectTimeout bounds dialing and authenticating one connection,
	// unless the DSN sets its own. Default 10 seconds.
	ConnectTimeout time.Duration
	// IOTimeout bounds each network read and write of a MySQL connection,
	// unless the DSN sets readTimeout or writeTimeout. PostgreSQL calls
	// are bounded by the context only. Default 30 seconds.
	IOTimeout time.Duration
	// Logger receives the MySQL driver's own messages (such as "closing
	// bad idle connection"), which it would otherwise print to stderr.
	// Its errors reach the caller through the Store anyway. Default: none.
	Logger *slog.Logger
	// CreateSchema creates the encryption_key table (and its index) when
	// missing. Default false: the table is expected to exist, as in
	// Asherah, and the database user needs no DDL rights.
	CreateSchema bool
	// StoreOptions are passed to sqlstore.New after the dialect (for
	// example sqlstore.WithRetry, WithLocation, WithLogger).
	StoreOptions []sqlstore.Option
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = 10
	}
	if o.MaxIdleConns <= 0 {
		o.MaxIdleConns = 5
	}
	o.MaxIdleConns = min(o.MaxIdleConns, o.MaxOpenConns)
	if o.ConnMaxLifetime <= 0 {
		o.ConnMaxLifetime = 30 * time.Minute
	}
	if o.ConnMaxIdleTime <= 0 {
		o.ConnMaxIdleTime = 5 * time.Minute
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 10 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 30 * time.Second
	}
	return o
}

// Open opens the database named by dsn for dialect (sqlstore.Postgres or
// sqlstore.MySQL), checks that it answers (ping, bounded by ctx), creates
// the table when o.CreateSchema is set, and returns the database and a
// Store on it. The caller closes db when done (after the SessionFactory
// using the store).
//
// A PostgreSQL dsn is a URL (postgres://USER:PASS@HOST:PORT/DB?sslmode=…)
// or key=value pairs; a MySQL dsn is go-sql-driver's form
// (USER:PASS@tcp(HOST:PORT)/DB?…).
func Open(ctx context.Context, dialect sqlstore.Dialect, dsn string, o Options) (*sql.DB, *sqlstore.Store, error) {
	o = o.withDefaults()
	var db *sql.DB
	switch dialect {
	case sqlstore.Postgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("serverdb: bad PostgreSQL DSN %s: %s", Redact(dialect, dsn), redact.Text(err.Error()))
		}
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = o.ConnectTimeout
		}
		db = stdlib.OpenDB(*cfg)
	case sqlstore.MySQL:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, nil, fmt.Errorf("serverdb: bad MySQL DSN %s: %s", Redact(dialect, dsn), redact.Text(err.Error()))
		}
		if cfg.Timeout == 0 {
			cfg.Timeout = o.ConnectTimeout
		}
		if cfg.ReadTimeout == 0 {
			cfg.ReadTimeout = o.IOTimeout
		}
		if cfg.WriteTimeout == 0 {
			cfg.WriteTimeout = o.IOTimeout
		}
		cfg.Logger = mysqlLogger{o.Logger}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("serverdb: bad MySQL DSN %s: %s", Redact(dialect, dsn), redact.Text(err.Error()))
		}
		db = sql.OpenDB(conn)
	default:
		return nil, nil, fmt.Errorf("%w: %q (want postgres or mysql)", ErrNotServerDialect, dialect)
	}
	db.SetMaxOpenConns(o.MaxOpenConns)
	db.SetMaxIdleConns(o.MaxIdleConns)
	db.SetConnMaxLifetime(o.ConnMaxLifetime)
	db.SetConnMaxIdleTime(o.ConnMaxIdleTime)

	fail := func(what string, err error) (*sql.DB, *sqlstore.Store, error) {
		db.Close()
		return nil, nil, fmt.Errorf("serverdb: %s %s: %w", what, Redact(dialect, dsn), err)
	}
	if err := db.PingContext(ctx); err != nil {
		return fail("cannot connect to", err)
	}
	store, err := sqlstore.New(db, append([]sqlstore.Option{sqlstore.WithDialect(dialect)}, o.StoreOptions...)...)
	if err != nil {
		return fail("cannot set up the metastore on", err)
	}
	if o.CreateSchema {
		if err := store.CreateSchema(ctx); err != nil {
			return fail("cannot create the table in", err)
		}
	}
	return db, store, nil
}

// Redact returns dsn with its password replaced by "xxxxx", for messages.
func Redact(_ sqlstore.Dialect, dsn string) string { return redact.DSN(dsn) }

// ErrNotServerDialect is returned by Open for a dialect other than
// postgres and mysql.
var ErrNotServerDialect = errors.New("serverdb: not a server database dialect")

// mysqlLogger sends go-sql-driver/mysql's messages to a slog.Logger at
// level Warn, or nowhere.
type mysqlLogger struct{ l *slog.Logger }

func (m mysqlLogger) Print(v ...any) {
	if m.l != nil {
		m.l.Warn("mysql driver: " + redact.Text(fmt.Sprint(v...)))
	}
}
