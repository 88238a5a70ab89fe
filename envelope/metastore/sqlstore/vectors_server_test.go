package sqlstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
)

// insertAsherahRows writes metastore.json the way Asherah's SQL metastore
// does: its INSERT, created bound as time.Unix(created, 0), key_record the
// exact JSON text Asherah produced.
func insertAsherahRows(t *testing.T, d serverDialect, db *sql.DB) []asherahvectors.Row {
	t.Helper()
	rows := asherahvectors.MustLoad(t).Rows
	q := d.rewrite("INSERT INTO encryption_key (id, created, key_record) VALUES (?, ?, ?)")
	for _, r := range rows {
		if _, err := db.ExecContext(context.Background(), q, r.ID, time.Unix(r.Created, 0), r.KeyRecordText); err != nil {
			t.Fatal(err)
		}
	}
	return rows
}

// checkVectors decrypts every positive vector and rejects every negative
// one through store.
func checkVectors(t *testing.T, store envelope.Metastore) {
	asherahvectors.Check(t, func(asherahvectors.Session) envelope.Metastore { return store })
}

// TestServerAsherahVectors loads Asherah's key rows into PostgreSQL and
// MariaDB exactly as Asherah writes them, then decrypts the vectors through
// the store. It also checks that every row reads back as Asherah's record.
func TestServerAsherahVectors(t *testing.T) {
	forEachServer(t, func(t *testing.T, d serverDialect) {
		db, store := d.freshStore(t)
		rows := insertAsherahRows(t, d, db)
		for _, r := range rows {
			got, err := store.Load(context.Background(), r.ID, r.Created)
			if err != nil {
				t.Fatalf("Load %s %d: %v", r.ID, r.Created, err)
			}
			js, _ := json.Marshal(got)
			if string(js) != r.KeyRecordText {
				t.Errorf("row %s %d reads back as %s, want %s", r.ID, r.Created, js, r.KeyRecordText)
			}
		}
		checkVectors(t, store)
	})
}
