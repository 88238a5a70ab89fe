package sqlstore

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect selects the SQL text, the placeholder style, how created times
// are bound and how duplicate-key errors are recognised.
type Dialect string

// Supported dialects.
const (
	// MySQL is Asherah's default: "?" placeholders, created bound as a
	// time.Time (the driver converts it to its connection time zone).
	MySQL Dialect = "mysql"
	// Postgres uses "$n" placeholders; created is bound as Asherah binds
	// it, time.Unix(created, 0) in the store's location (time.Local by
	// default), because pgx writes a TIMESTAMP column with the wall clock
	// of the time.Time it is given.
	Postgres Dialect = "postgres"
	// Oracle uses ":n" placeholders. Like Asherah we keep "LIMIT 1" in
	// LoadLatest, which older Oracle versions reject; the Oracle dialect is
	// query text only and has not been run against a server.
	Oracle Dialect = "oracle"
	// SQLite (the embedded default, see package sqlitedb) uses "?"
	// placeholders. created is bound as the text "YYYY-MM-DD HH:MM:SS" in
	// UTC, SQLite's own date-time format, so rows sort by time and every
	// process agrees on the key whatever its time zone or driver settings.
	SQLite Dialect = "sqlite"
)

// ParseDialect returns the dialect named s (case-insensitive; "postgresql"
// and "pgx" mean postgres, "sqlite3" means sqlite).
func ParseDialect(s string) (Dialect, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "mysql", "mariadb":
		return MySQL, nil
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	case "oracle":
		return Oracle, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	}
	return "", fmt.Errorf("sqlstore: unknown SQL dialect %q (want sqlite, postgres, mysql or oracle)", s)
}

func (d Dialect) valid() bool {
	switch d {
	case MySQL, Postgres, Oracle, SQLite:
		return true
	}
	return false
}

// Asherah's queries (go/appencryption/pkg/persistence/sql.go), MySQL form.
// The other dialects rewrite each "?" to "$n" or ":n", as Asherah does.
const (
	loadKeyQuery    = "SELECT key_record FROM encryption_key WHERE id = ? AND created = ?"
	storeKeyQuery   = "INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)"
	loadLatestQuery = "SELECT key_record from encryption_key WHERE id = ? ORDER BY created DESC LIMIT 1"

	// Ours, for the optional Revoker, Lister and Deleter interfaces. "!" is
	// the LIKE escape character because it needs no escaping in the string
	// literals of any dialect (a backslash does in MySQL).
	revokeQuery = "UPDATE encryption_key SET key_record = ? WHERE id = ? AND created = ?"
	listQuery   = "SELECT id, key_record FROM encryption_key WHERE id LIKE ? ESCAPE '!' ORDER BY id, created"
	deleteQuery = "DELETE FROM encryption_key WHERE id = ?"
)

// queries holds the SQL text of one dialect.
type queries struct {
	load, store, loadLatest, revoke, list, delete string
}

func queriesFor(d Dialect) queries {
	return queries{
		load:       rewrite(d, loadKeyQuery),
		store:      rewrite(d, storeKeyQuery),
		loadLatest: rewrite(d, loadLatestQuery),
		revoke:     rewrite(d, revokeQuery),
		list:       rewrite(d, listQuery),
		delete:     rewrite(d, deleteQuery),
	}
}

// rewrite replaces the i-th "?" by "$i" (postgres) or ":i" (oracle).
func rewrite(d Dialect, q string) string {
	var prefix string
	switch d {
	case Postgres:
		prefix = "$"
	case Oracle:
		prefix = ":"
	default:
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString(prefix)
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Schema returns the statements that create Asherah's table (and its index
// on created) if they do not exist yet, for dialect d. The table is the one
// of Asherah's docs/Metastore.md:
//
//	encryption_key (id VARCHAR(255), created TIMESTAMP, key_record TEXT, PRIMARY KEY (id, created))
//
// MySQL's TIMESTAMP ends in January 2038, as in Asherah; existing tables
// with a DATETIME column work too. The Oracle statements need Oracle 23 or
// later (IF NOT EXISTS).
func Schema(d Dialect) ([]string, error) {
	switch d {
	case MySQL:
		return []string{
			"CREATE TABLE IF NOT EXISTS encryption_key (" +
				"id VARCHAR(255) NOT NULL, " +
				"created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, " +
				"key_record TEXT NOT NULL, " +
				"PRIMARY KEY (id, created), " +
				"INDEX (created))",
		}, nil
	case Postgres:
		return []string{
			"CREATE TABLE IF NOT EXISTS encryption_key (" +
				"id VARCHAR(255) NOT NULL, " +
				"created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, " +
				"key_record TEXT NOT NULL, " +
				"PRIMARY KEY (id, created))",
			"CREATE INDEX IF NOT EXISTS encryption_key_created ON encryption_key (created)",
		}, nil
	case SQLite:
		return []string{
			"CREATE TABLE IF NOT EXISTS encryption_key (" +
				"id VARCHAR(255) NOT NULL, " +
				"created TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, " +
				"key_record TEXT NOT NULL, " +
				"PRIMARY KEY (id, created))",
			"CREATE INDEX IF NOT EXISTS encryption_key_created ON encryption_key (created)",
		}, nil
	case Oracle:
		return []string{
			"CREATE TABLE IF NOT EXISTS encryption_key (" +
				"id VARCHAR2(255) NOT NULL, " +
				"created TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL, " +
				"key_record CLOB NOT NULL, " +
				"PRIMARY KEY (id, created))",
			"CREATE INDEX IF NOT EXISTS encryption_key_created ON encryption_key (created)",
		}, nil
	}
	return nil, fmt.Errorf("sqlstore: unknown SQL dialect %q", d)
}
