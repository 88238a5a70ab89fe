package serverdb_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/serverdb"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestServerOpen opens the shared PostgreSQL and MariaDB through Open:
// pool limits are applied, the store works, and a wrong password gives a
// one-line error without the password.
func TestServerOpen(t *testing.T) {
	for _, tc := range []struct {
		d      sqlstore.Dialect
		envVar string
	}{{sqlstore.Postgres, testenv.PostgresDSN}, {sqlstore.MySQL, testenv.MySQLDSN}} {
		t.Run(string(tc.d), func(t *testing.T) {
			dsn := testenv.Var(t, tc.envVar)
			ctx := context.Background()
			db, store, err := serverdb.Open(ctx, tc.d, dsn, serverdb.Options{MaxOpenConns: 3, MaxIdleConns: 7, CreateSchema: true})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := db.Stats().MaxOpenConnections; got != 3 {
				t.Errorf("MaxOpenConnections = %d, want 3", got)
			}
			if store.Dialect() != tc.d {
				t.Errorf("dialect %s", store.Dialect())
			}
			if _, err := store.Load(ctx, "_SK_serverdb_nothing", 1); err == nil || !strings.Contains(err.Error(), "not found") {
				t.Errorf("Load of a missing key = %v", err)
			}
			var _ envelope.Metastore = store

			bad := wrongPassword(t, tc.d, dsn)
			_, _, err = serverdb.Open(ctx, tc.d, bad, serverdb.Options{})
			if err == nil || strings.Contains(err.Error(), "wrong-password") || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "cannot connect") {
				t.Errorf("wrong password: %v", err)
			}
		})
	}
}

func wrongPassword(t *testing.T, d sqlstore.Dialect, dsn string) string {
	if d == sqlstore.Postgres {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(u.User.Username(), "wrong-password")
		return u.String()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passwd = "wrong-password"
	return cfg.FormatDSN()
}
