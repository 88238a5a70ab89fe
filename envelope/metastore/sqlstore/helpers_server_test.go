package sqlstore_test

// Helpers of the tests against real PostgreSQL and MariaDB servers
// (*_server_test.go). Each test gets a database of its own, dropped at
// the end, so tests can run side by side on the shared servers.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, for administration

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/serverdb"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// serverDialect is one SQL server the tests run against.
type serverDialect struct {
	name    string
	dialect sqlstore.Dialect
	envVar  string // testenv variable with the shared server's DSN
	service string // .ci/services.sh name, for private instances
}

var serverDialects = []serverDialect{
	{"postgres", sqlstore.Postgres, testenv.PostgresDSN, testenv.ServicePostgres},
	{"mysql", sqlstore.MySQL, testenv.MySQLDSN, testenv.ServiceMySQL},
}

// forEachServer runs fn as a subtest per server dialect.
func forEachServer(t *testing.T, fn func(t *testing.T, d serverDialect)) {
	for _, d := range serverDialects {
		t.Run(d.name, func(t *testing.T) { fn(t, d) })
	}
}

// driverName is the database/sql driver used for administration.
func (d serverDialect) driverName() string {
	if d.dialect == sqlstore.Postgres {
		return "pgx"
	}
	return "mysql"
}

// withDatabase returns dsn with its database replaced by name.
func (d serverDialect) withDatabase(t testing.TB, dsn, name string) string {
	t.Helper()
	if d.dialect == sqlstore.Postgres {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}

// freshDatabase creates an empty database on the server of baseDSN and
// returns a DSN for it; the database is dropped when the test ends.
func (d serverDialect) freshDatabase(t testing.TB, baseDSN string) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "encpipe_t_" + hex.EncodeToString(b)
	admin, err := sql.Open(d.driverName(), baseDSN)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		admin.Close()
		t.Fatalf("CREATE DATABASE on %s: %v", serverdb.Redact(d.dialect, baseDSN), err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		q := "DROP DATABASE IF EXISTS " + name
		if d.dialect == sqlstore.Postgres {
			q += " WITH (FORCE)"
		}
		admin.ExecContext(ctx, q) // a private server may be gone already
	})
	return d.withDatabase(t, baseDSN, name)
}

// open opens dsn through serverdb with the table created; db is closed
// when the test ends.
func (d serverDialect) open(t testing.TB, dsn string, opts ...sqlstore.Option) (*sql.DB, *sqlstore.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, store, err := serverdb.Open(ctx, d.dialect, dsn, serverdb.Options{CreateSchema: true, StoreOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, store
}

// freshStore returns a Store on a new database of the shared server.
func (d serverDialect) freshStore(t testing.TB, opts ...sqlstore.Option) (*sql.DB, *sqlstore.Store) {
	t.Helper()
	return d.open(t, d.freshDatabase(t, testenv.Var(t, d.envVar)), opts...)
}

// rewrite turns "?" placeholders into "$n" for PostgreSQL, as Asherah does.
func (d serverDialect) rewrite(q string) string {
	if d.dialect != sqlstore.Postgres {
		return q
	}
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = append(out, []byte(itoa(n))...)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

const testMasterKey = "sqlstore-server-test-master-key!" // 32 bytes

// newFactory returns a session factory over store with a static KMS.
func newFactory(t testing.TB, store envelope.Metastore, service string, opts ...envelope.FactoryOption) *envelope.SessionFactory {
	t.Helper()
	return newFactoryWith(t, store, &envelope.Config{Service: service, Product: "prod"}, opts...)
}

func newFactoryWith(t testing.TB, store envelope.Metastore, cfg *envelope.Config, opts ...envelope.FactoryOption) *envelope.SessionFactory {
	t.Helper()
	kms, err := statickms.New([]byte(testMasterKey))
	if err != nil {
		t.Fatal(err)
	}
	f, err := envelope.NewSessionFactory(cfg, store, kms, nil, opts...)
	if err != nil {
		kms.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); kms.Close() })
	return f
}
