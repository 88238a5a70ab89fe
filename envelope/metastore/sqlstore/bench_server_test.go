package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/sqlstore/sqlitedb"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// BenchmarkServerEncrypt encrypts 1 KiB through each real backend, all
// with the two-region AWS KMS (local-kms), in one run so the ratios
// compare like with like:
//
//   - cold: a policy without caches (envelope.WithNoCache), so every
//     Encrypt loads the intermediate and system keys from the metastore
//     and has KMS decrypt the system key, as after a restart or on a cache
//     miss;
//   - warm: the default policy and one long-lived session, so keys come
//     from the caches and the backend should not matter.
//
// memstore is the in-process reference.
func BenchmarkServerEncrypt(b *testing.B) {
	awsCfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", "")}
	k := testKMS(b, awsCfg)
	backends := []struct {
		name string
		open func(b *testing.B) envelope.Metastore
	}{
		{"memstore", func(*testing.B) envelope.Metastore { return memstore.New() }},
		{"sqlite", func(b *testing.B) envelope.Metastore {
			db, s, err := sqlitedb.Open(context.Background(), filepath.Join(b.TempDir(), "keys.db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { db.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) envelope.Metastore { _, s := serverDialects[0].freshStore(b); return s }},
		{"mysql", func(b *testing.B) envelope.Metastore { _, s := serverDialects[1].freshStore(b); return s }},
		{"dynamodb", func(b *testing.B) envelope.Metastore {
			c := dynamostore.NewClient(awsCfg, "us-west-2", testenv.Var(b, testenv.DynamoDB))
			r := make([]byte, 6)
			rand.Read(r)
			table := "EncryptionKey-bench-" + hex.EncodeToString(r)
			if err := dynamostore.CreateTable(context.Background(), c, table); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)}) })
			s, err := dynamostore.New(c, dynamostore.WithTableName(table))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	payload := make([]byte, 1024)
	ctx := context.Background()
	for _, be := range backends {
		for _, mode := range []string{"cold", "warm"} {
			b.Run(be.name+"/"+mode, func(b *testing.B) {
				store := be.open(b)
				var opts []envelope.PolicyOption
				if mode == "cold" {
					opts = append(opts, envelope.WithNoCache())
				}
				f, err := envelope.NewSessionFactory(&envelope.Config{Service: "bench", Product: "prod", Policy: envelope.NewCryptoPolicy(opts...)}, store, k, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				sess, err := f.GetSession("partition")
				if err != nil {
					b.Fatal(err)
				}
				defer sess.Close()
				if _, err := sess.Encrypt(ctx, payload); err != nil { // creates the keys
					b.Fatal(err)
				}
				b.SetBytes(int64(len(payload)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := sess.Encrypt(ctx, payload); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
