package sqlstore

import (
	"reflect"
	"strings"
)

// SQLite extended result codes for a violated primary key or unique
// constraint.
const (
	sqliteConstraintPrimaryKey = 1555
	sqliteConstraintUnique     = 2067
	oracleUniqueViolation      = 1    // ORA-00001
	mysqlDuplicateEntry        = 1062 // ER_DUP_ENTRY
	postgresUniqueViolation    = "23505"
)

// isDuplicate reports whether err says that the inserted (id, created)
// already exists. It looks through the error chain for the drivers' own
// error types by their methods and fields, so that this package need not
// import any driver:
//
//   - SQLite (modernc.org/sqlite *Error, mattn/go-sqlite3 via Code()):
//     Code() int equal to 1555 or 2067;
//   - PostgreSQL (pgx *pgconn.PgError, lib/pq *Error): SQLState() string
//     equal to "23505";
//   - MySQL/MariaDB (go-sql-driver *MySQLError): field Number uint16
//     equal to 1062;
//   - Oracle (godror): Code() int equal to 1, or "ORA-00001" in the
//     message.
func isDuplicate(d Dialect, err error) bool {
	for _, e := range chain(err) {
		if c, ok := e.(interface{ Code() int }); ok {
			code := c.Code()
			switch d {
			case Oracle:
				if code == oracleUniqueViolation {
					return true
				}
			default:
				if code == sqliteConstraintPrimaryKey || code == sqliteConstraintUnique {
					return true
				}
			}
		}
		if s, ok := e.(interface{ SQLState() string }); ok && s.SQLState() == postgresUniqueViolation {
			return true
		}
		if n, ok := mysqlNumber(e); ok && n == mysqlDuplicateEntry {
			return true
		}
		if d == Oracle && strings.Contains(e.Error(), "ORA-00001") {
			return true
		}
	}
	return false
}

// chain returns err and every error it wraps, depth first.
func chain(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil || len(out) > 64 {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		}
	}
	walk(err)
	return out
}

// mysqlNumber returns the Number field of a go-sql-driver/mysql
// *MySQLError (a struct with a uint16 field named Number), found by
// reflection.
func mysqlNumber(e error) (uint16, bool) {
	v := reflect.ValueOf(e)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return 0, false
	}
	v = v.Elem()
	if v.Kind() != reflect.Struct || v.Type().Name() != "MySQLError" {
		return 0, false
	}
	f := v.FieldByName("Number")
	if !f.IsValid() || f.Kind() != reflect.Uint16 {
		return 0, false
	}
	return uint16(f.Uint()), true
}
