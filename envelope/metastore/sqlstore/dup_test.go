package sqlstore

import (
	"errors"
	"fmt"
	"testing"
)

// Fakes with the shapes of the drivers' error types (this package imports
// no driver, so neither does its test).
type sqliteErr struct{ code int }

func (e *sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", e.code) }
func (e *sqliteErr) Code() int     { return e.code }

type pgErr struct{ state string }

func (e *pgErr) Error() string    { return "ERROR: duplicate key (SQLSTATE " + e.state + ")" }
func (e *pgErr) SQLState() string { return e.state }

// MySQLError mirrors go-sql-driver/mysql's *MySQLError.
type MySQLError struct {
	Number   uint16
	SQLState [5]byte
	Message  string
}

func (e *MySQLError) Error() string { return fmt.Sprintf("Error %d: %s", e.Number, e.Message) }

type oraErr struct{ code int }

func (e *oraErr) Error() string { return fmt.Sprintf("ORA-%05d: unique constraint violated", e.code) }
func (e *oraErr) Code() int     { return e.code }

func TestIsDuplicate(t *testing.T) {
	cases := []struct {
		name    string
		dialect Dialect
		err     error
		want    bool
	}{
		{"sqlite primary key", SQLite, &sqliteErr{1555}, true},
		{"sqlite unique", SQLite, &sqliteErr{2067}, true},
		{"sqlite busy", SQLite, &sqliteErr{5}, false},
		{"sqlite generic error", SQLite, &sqliteErr{1}, false},
		{"sqlite not null", SQLite, &sqliteErr{1299}, false},
		{"postgres unique", Postgres, &pgErr{"23505"}, true},
		{"postgres not null", Postgres, &pgErr{"23502"}, false},
		{"postgres serialization", Postgres, &pgErr{"40001"}, false},
		{"mysql duplicate", MySQL, &MySQLError{Number: 1062}, true},
		{"mysql null column", MySQL, &MySQLError{Number: 1048}, false},
		{"mysql deadlock", MySQL, &MySQLError{Number: 1213}, false},
		{"oracle unique", Oracle, &oraErr{1}, true},
		{"oracle other", Oracle, &oraErr{942}, false},
		{"oracle by message", Oracle, errors.New("ORA-00001: unique constraint (X.PK) violated"), true},
		{"wrapped twice", Postgres, fmt.Errorf("exec: %w", fmt.Errorf("driver: %w", &pgErr{"23505"})), true},
		{"joined", MySQL, errors.Join(errors.New("other"), &MySQLError{Number: 1062}), true},
		{"plain error", MySQL, errors.New("Error 1062: looks like a duplicate but is a string"), false},
		{"nil", SQLite, nil, false},
	}
	for _, c := range cases {
		if got := isDuplicate(c.dialect, c.err); got != c.want {
			t.Errorf("%s: isDuplicate = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestQueriesPerDialect(t *testing.T) {
	want := map[Dialect]queries{
		MySQL: {
			load:       "SELECT key_record FROM encryption_key WHERE id = ? AND created = ?",
			store:      "INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)",
			loadLatest: "SELECT key_record from encryption_key WHERE id = ? ORDER BY created DESC LIMIT 1",
		},
		Postgres: {
			load:       "SELECT key_record FROM encryption_key WHERE id = $1 AND created = $2",
			store:      "INSERT INTO encryption_key (id, created, key_record) VALUES ($1, $2, $3)",
			loadLatest: "SELECT key_record from encryption_key WHERE id = $1 ORDER BY created DESC LIMIT 1",
		},
		Oracle: {
			load:       "SELECT key_record FROM encryption_key WHERE id = :1 AND created = :2",
			store:      "INSERT INTO encryption_key (id, created, key_record) VALUES (:1, :2, :3)",
			loadLatest: "SELECT key_record from encryption_key WHERE id = :1 ORDER BY created DESC LIMIT 1",
		},
		SQLite: {
			load:       "SELECT key_record FROM encryption_key WHERE id = ? AND created = ?",
			store:      "INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)",
			loadLatest: "SELECT key_record from encryption_key WHERE id = ? ORDER BY created DESC LIMIT 1",
		},
	}
	for d, w := range want {
		q := queriesFor(d)
		if q.load != w.load || q.store != w.store || q.loadLatest != w.loadLatest {
			t.Errorf("%s queries:\n%q\n%q\n%q", d, q.load, q.store, q.loadLatest)
		}
		if d == Postgres && q.revoke != "UPDATE encryption_key SET key_record = $1 WHERE id = $2 AND created = $3" {
			t.Errorf("postgres revoke query %q", q.revoke)
		}
		stmts, err := Schema(d)
		if err != nil || len(stmts) == 0 {
			t.Errorf("Schema(%s) = %v, %v", d, stmts, err)
		}
	}
	if _, err := Schema("db2"); err == nil {
		t.Error("Schema of an unknown dialect succeeded")
	}
	if _, err := ParseDialect("sqlserver"); err == nil {
		t.Error("ParseDialect(sqlserver) succeeded")
	}
	for s, d := range map[string]Dialect{"PostgreSQL": Postgres, "pgx": Postgres, "mariadb": MySQL, "sqlite3": SQLite, "oracle": Oracle} {
		if got, err := ParseDialect(s); err != nil || got != d {
			t.Errorf("ParseDialect(%q) = %v, %v", s, got, err)
		}
	}
}

func TestLikePrefixEscapes(t *testing.T) {
	if got := likePrefix("_IK_a%b!c"); got != "!_IK!_a!%b!!c%" {
		t.Errorf("likePrefix = %q", got)
	}
}
