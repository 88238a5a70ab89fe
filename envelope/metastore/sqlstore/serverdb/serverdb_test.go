package serverdb_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/serverdb"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct {
		d         sqlstore.Dialect
		in, want  string
		mustNotIn string
	}{
		{sqlstore.Postgres, "postgres://u:s3cret@db:5432/keys?sslmode=require", "postgres://u:xxxxx@db:5432/keys?sslmode=require", "s3cret"},
		{sqlstore.Postgres, "host=db user=u password=s3cret dbname=keys", "host=db user=u password=xxxxx dbname=keys", "s3cret"},
		{sqlstore.Postgres, "host=db password='s3 cret' dbname=keys", "host=db password=xxxxx dbname=keys", "s3 cret"},
		{sqlstore.MySQL, "u:s3cret@tcp(db:3306)/keys?parseTime=true", "u:xxxxx@tcp(db:3306)/keys?parseTime=true", "s3cret"},
		{sqlstore.MySQL, "u@tcp(db:3306)/keys", "u@tcp(db:3306)/keys", ""},
		{sqlstore.Postgres, "postgres://u@db/keys?password=s3cret&sslmode=require", "postgres://u@db/keys?password=xxxxx&sslmode=require", "s3cret"},
		{sqlstore.Postgres, "postgres://u@db/keys?sslpassword=k3ypass", "postgres://u@db/keys?sslpassword=xxxxx", "k3ypass"},
		{sqlstore.MySQL, "u:s3cret@tcp(db:3306)/keys?parseTime=true&token=t0ken", "u:xxxxx@tcp(db:3306)/keys?parseTime=true&token=xxxxx", "t0ken"},
	} {
		got := serverdb.Redact(tc.d, tc.in)
		if got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if tc.mustNotIn != "" && strings.Contains(got, tc.mustNotIn) {
			t.Errorf("Redact(%q) leaks the password", tc.in)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	closed := func(d sqlstore.Dialect) string {
		if d == sqlstore.Postgres {
			return "postgres://u:s3cret@127.0.0.1:" + itoa(port) + "/keys?sslmode=disable"
		}
		return "u:s3cret@tcp(127.0.0.1:" + itoa(port) + ")/keys"
	}
	for _, tc := range []struct {
		name string
		d    sqlstore.Dialect
		dsn  string
		want string
	}{
		{"sqlite is not a server", sqlstore.SQLite, "x.db", "not a server database dialect"},
		{"bad postgres DSN", sqlstore.Postgres, "postgres://u:s3cret@[::1/keys", "bad PostgreSQL DSN"},
		{"bad mysql DSN", sqlstore.MySQL, "u:s3cret@tcp(127.0.0.1:1/keys", "bad MySQL DSN"},
		{"postgres refused", sqlstore.Postgres, closed(sqlstore.Postgres), "cannot connect to postgres://u:xxxxx@127.0.0.1:"},
		{"mysql refused", sqlstore.MySQL, closed(sqlstore.MySQL), "cannot connect to u:xxxxx@tcp(127.0.0.1:"},
	} {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		db, store, err := serverdb.Open(ctx, tc.d, tc.dsn, serverdb.Options{ConnectTimeout: 2 * time.Second})
		cancel()
		if err == nil || db != nil || store != nil {
			t.Errorf("%s: Open = %v, %v, %v; want an error", tc.name, db, store, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) || strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q: want one line containing %q and no password", tc.name, msg, tc.want)
		}
		if tc.name == "sqlite is not a server" && !errors.Is(err, serverdb.ErrNotServerDialect) {
			t.Errorf("%s: %v is not ErrNotServerDialect", tc.name, err)
		}
	}
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}
