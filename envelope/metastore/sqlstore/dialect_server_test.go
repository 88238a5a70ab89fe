package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore"
)

// TestServerDuplicateAndOtherErrors checks that only the driver's own
// duplicate-key error (PostgreSQL SQLSTATE 23505, MySQL error 1062) becomes
// ErrKeyExists, with the driver error still reachable, and that other
// failures are returned as themselves, neither ErrKeyExists nor
// ErrNotFound.
func TestServerDuplicateAndOtherErrors(t *testing.T) {
	forEachServer(t, func(t *testing.T, d serverDialect) {
		var logs bytes.Buffer
		db, s := d.freshStore(t, sqlstore.WithLogger(slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))))
		ctx := context.Background()
		rec := &envelope.EnvelopeKeyRecord{Created: 1795749120, EncryptedKey: []byte("k")}
		if err := s.Store(ctx, "_SK_svc_prod", 1795749120, rec); err != nil {
			t.Fatal(err)
		}
		err := s.Store(ctx, "_SK_svc_prod", 1795749120, rec)
		if !errors.Is(err, envelope.ErrKeyExists) {
			t.Fatalf("duplicate = %v, want ErrKeyExists", err)
		}
		switch d.dialect {
		case sqlstore.Postgres:
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "23505" {
				t.Errorf("duplicate does not carry SQLSTATE 23505: %v", err)
			}
		case sqlstore.MySQL:
			var me *mysql.MySQLError
			if !errors.As(err, &me) || me.Number != 1062 {
				t.Errorf("duplicate does not carry MySQL error 1062: %v", err)
			}
		}
		if strings.Contains(logs.String(), "retrying") || strings.Contains(err.Error(), "gave up") {
			t.Errorf("a duplicate was retried: %s %v", logs.String(), err)
		}

		notKeyError := func(what string, err error) {
			t.Helper()
			if err == nil || errors.Is(err, envelope.ErrKeyExists) || errors.Is(err, envelope.ErrNotFound) {
				t.Errorf("%s: %v, want an error that is neither ErrKeyExists nor ErrNotFound", what, err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "sqlstore: ") {
				t.Errorf("%s: message %q does not say what failed", what, err)
			}
		}
		// An id longer than the column (strict mode on both servers).
		long := "_IK_" + strings.Repeat("x", 300)
		notKeyError("too long id", s.Store(ctx, long, 1795749120, rec))
		// Key record that is not Asherah's JSON.
		if _, err := db.ExecContext(ctx, d.rewrite("INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)"),
			"_IK_bad", time.Unix(60, 0), "not json"); err != nil {
			t.Fatal(err)
		}
		_, err = s.Load(ctx, "_IK_bad", 60)
		notKeyError("malformed key_record", err)
		// No table at all.
		if _, err := db.ExecContext(ctx, "DROP TABLE encryption_key"); err != nil {
			t.Fatal(err)
		}
		notKeyError("Store without a table", s.Store(ctx, "_SK_svc_prod", 1795749180, rec))
		_, err = s.Load(ctx, "_SK_svc_prod", 1795749120)
		notKeyError("Load without a table", err)
		_, err = s.LoadLatest(ctx, "_SK_svc_prod")
		notKeyError("LoadLatest without a table", err)
		if strings.Contains(logs.String(), "retrying") {
			t.Errorf("a non-transient error was retried: %s", logs.String())
		}
	})
}

// TestServerCreatedSecondPrecision stores keys whose created times are not
// minute-aligned and checks that the created column holds exactly what
// Asherah binds, time.Unix(created, 0), and that Load finds the row by it.
func TestServerCreatedSecondPrecision(t *testing.T) {
	forEachServer(t, func(t *testing.T, d serverDialect) {
		db, s := d.freshStore(t)
		ctx := context.Background()
		createds := []int64{1795749121, 1795749122, 1795749179, 1700000000, 2000000001}
		stored := map[int64]bool{}
		for _, c := range createds {
			if err := s.Store(ctx, "_SK_svc_prod", c, &envelope.EnvelopeKeyRecord{Created: c, EncryptedKey: []byte{byte(c)}}); err != nil {
				t.Fatal(err)
			}
			stored[c] = true
		}
		for _, c := range createds {
			got, err := s.Load(ctx, "_SK_svc_prod", c)
			if err != nil || got.Created != c || !bytes.Equal(got.EncryptedKey, []byte{byte(c)}) {
				t.Fatalf("Load(%d) = %+v, %v", c, got, err)
			}
			if !stored[c+1] {
				if _, err := s.Load(ctx, "_SK_svc_prod", c+1); !errors.Is(err, envelope.ErrNotFound) {
					t.Fatalf("Load(%d) = %v, want ErrNotFound (second precision)", c+1, err)
				}
			}
			// The row is found by Asherah's own binding, time.Unix(created, 0),
			// and the column holds that time to the second: PostgreSQL's
			// TIMESTAMP keeps its wall clock (pgx sends the wall clock of the
			// time.Time it is given), MariaDB's the instant (the driver
			// converts to the DSN's zone, UTC here, on the way in and out).
			var col time.Time
			if err := db.QueryRowContext(ctx, d.rewrite("SELECT created FROM encryption_key WHERE id = ? AND created = ?"),
				"_SK_svc_prod", time.Unix(c, 0)).Scan(&col); err != nil {
				t.Fatalf("row %d not found by Asherah's binding: %v", c, err)
			}
			want := time.Unix(c, 0)
			switch d.dialect {
			case sqlstore.Postgres:
				if col.Format(time.DateTime) != want.Format(time.DateTime) || col.Nanosecond() != 0 {
					t.Errorf("created column = %s, want the wall clock %s", col.Format(time.RFC3339Nano), want.Format(time.DateTime))
				}
			case sqlstore.MySQL:
				if !col.Equal(want) {
					t.Errorf("created column = %s, want the instant %s", col.Format(time.RFC3339Nano), want.UTC().Format(time.RFC3339))
				}
			}
		}
		latest, err := s.LoadLatest(ctx, "_SK_svc_prod")
		if err != nil || latest.Created != 2000000001 {
			t.Fatalf("LoadLatest = %+v, %v; want created 2000000001", latest, err)
		}
	})
}

// syncWriter makes a bytes.Buffer safe for a logger used from several
// goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}
