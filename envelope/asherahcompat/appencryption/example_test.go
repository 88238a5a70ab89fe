package appencryption_test

import (
	"context"
	"fmt"

	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/crypto/aead"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/kms"
	"github.com/enc-pipe/enc-pipe/envelope/asherahcompat/appencryption/pkg/persistence"
)

// Asherah Go's README example, with only the import paths changed.
func Example() {
	ctx := context.Background()

	crypto := aead.NewAES256GCM()
	config := &appencryption.Config{
		Service: "reference_app",
		Product: "productId",
		Policy:  appencryption.NewCryptoPolicy(),
	}
	metastore := persistence.NewMemoryMetastore()
	key, err := kms.NewStatic("thisIsAStaticMasterKeyForTesting", crypto)
	if err != nil {
		panic(err)
	}
	defer key.Close()

	factory := appencryption.NewSessionFactory(config, metastore, key, crypto)
	defer factory.Close()

	sess, err := factory.GetSession("shopper123")
	if err != nil {
		panic(err)
	}
	defer sess.Close()

	dataRow, err := sess.Encrypt(ctx, []byte("mysupersecretpayload"))
	if err != nil {
		panic(err)
	}
	data, err := sess.Decrypt(ctx, *dataRow)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(data))
	// Output: mysupersecretpayload
}
