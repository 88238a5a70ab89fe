package envelope_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/statickms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
)

// The main flow: a factory for a service and product, a session per
// partition, Encrypt to a DataRowRecord (store it as JSON anywhere),
// Decrypt it back.
func Example() {
	ctx := context.Background()
	// Testing only: a static master key. Use a real KMS in production.
	kms, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	if err != nil {
		log.Fatal(err)
	}
	defer kms.Close()

	factory, err := envelope.NewSessionFactory(
		&envelope.Config{Service: "billing", Product: "invoices"},
		memstore.New(), kms, envelope.NewAES256GCM())
	if err != nil {
		log.Fatal(err)
	}
	defer factory.Close()

	session, err := factory.GetSession("customer-42")
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()

	drr, err := session.Encrypt(ctx, []byte("card ending 4242"))
	if err != nil {
		log.Fatal(err)
	}
	stored, _ := json.Marshal(drr) // Asherah's DataRowRecord JSON

	var loaded envelope.DataRowRecord
	if err := json.Unmarshal(stored, &loaded); err != nil {
		log.Fatal(err)
	}
	plaintext, err := session.Decrypt(ctx, loaded)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plaintext))
	fmt.Println(drr.Key.ParentKeyMeta.ID)
	fmt.Println(len(drr.Data) - len(plaintext))
	// Output:
	// card ending 4242
	// _IK_customer-42_billing_invoices
	// 28
}

// The embedded default: keys in a SQLite file that several processes can
// share, in Asherah's encryption_key table.
func Example_sqlite() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "envelope-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, store, err := sqlitedb.Open(ctx, filepath.Join(dir, "keys.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	kms, err := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	if err != nil {
		log.Fatal(err)
	}
	defer kms.Close()
	factory, err := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, store, kms, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer factory.Close()
	session, err := factory.GetSession("p")
	if err != nil {
		log.Fatal(err)
	}
	defer session.Close()
	drr, err := session.Encrypt(ctx, []byte("hello"))
	if err != nil {
		log.Fatal(err)
	}
	keys, err := factory.ListKeys(ctx, "_")
	if err != nil {
		log.Fatal(err)
	}
	for _, k := range keys {
		fmt.Println(k.ID, k.ParentKeyMeta != nil)
	}
	pt, err := session.Decrypt(ctx, *drr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output:
	// _IK_p_svc_prod true
	// _SK_svc_prod false
	// hello
}

// Store and Load hand records to your own persistence.
func ExampleSession_Store() {
	ctx := context.Background()
	kms, _ := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	defer kms.Close()
	factory, _ := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), kms, nil)
	defer factory.Close()
	session, _ := factory.GetSession("p")
	defer session.Close()

	rows := map[string][]byte{} // stands in for a table of encrypted rows
	key, err := session.Store(ctx, []byte("row payload"), envelope.StorerFunc(
		func(_ context.Context, d envelope.DataRowRecord) (any, error) {
			b, err := json.Marshal(d)
			rows["row-1"] = b
			return "row-1", err
		}))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := session.Load(ctx, key, envelope.LoaderFunc(
		func(_ context.Context, k any) (*envelope.DataRowRecord, error) {
			var d envelope.DataRowRecord
			err := json.Unmarshal(rows[k.(string)], &d)
			return &d, err
		}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output: row payload
}

// Key administration: rotate now, revoke, and see the effect on writes.
func ExampleSessionFactory_RevokeKey() {
	ctx := context.Background()
	kms, _ := statickms.New([]byte("thisIsAStaticMasterKeyForTesting"))
	defer kms.Close()
	factory, _ := envelope.NewSessionFactory(&envelope.Config{Service: "svc", Product: "prod"}, memstore.New(), kms, nil)
	defer factory.Close()
	session, _ := factory.GetSession("p")
	defer session.Close()

	first, _ := session.Encrypt(ctx, []byte("a"))
	ik := first.Key.ParentKeyMeta
	if err := factory.RevokeKey(ctx, ik.ID, ik.Created); err != nil {
		log.Fatal(err)
	}
	second, _ := session.Encrypt(ctx, []byte("b"))
	fmt.Println(second.Key.ParentKeyMeta.Created != ik.Created)
	pt, _ := session.Decrypt(ctx, *first) // revoked keys still decrypt
	fmt.Println(string(pt))
	// Output:
	// true
	// a
}
