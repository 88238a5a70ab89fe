package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"testing"
	"time"

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
	backends := benchBackends(awsCfg)
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

// BenchmarkServerEncryptWarmInterleaved encrypts 1 KiB with warm caches on
// every backend in turn within each iteration, and reports each backend's
// mean time per Encrypt as its own metric ("ns/enc-postgres", ...). On a
// shared, noisy machine, interleaving gives every backend the same load,
// so their figures can be compared with each other; ns/op is the sum.
func BenchmarkServerEncryptWarmInterleaved(b *testing.B) {
	awsCfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", "")}
	k := testKMS(b, awsCfg)
	backends := benchBackends(awsCfg)
	payload := make([]byte, 1024)
	ctx := context.Background()
	sessions := make([]*envelope.Session, len(backends))
	for i, be := range backends {
		f, err := envelope.NewSessionFactory(&envelope.Config{Service: "bench", Product: "prod"}, be.open(b), k, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if sessions[i], err = f.GetSession("partition"); err != nil {
			b.Fatal(err)
		}
		defer sessions[i].Close()
		if _, err := sessions[i].Encrypt(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
	spent := make([]time.Duration, len(backends))
	n := 0
	for b.Loop() {
		for i, s := range sessions {
			t0 := time.Now()
			if _, err := s.Encrypt(ctx, payload); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(t0)
		}
		n++
	}
	for i, be := range backends {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(n), "ns/enc-"+be.name)
	}
}

type benchBackend struct {
	name string
	open func(b *testing.B) envelope.Metastore
}

func benchBackends(awsCfg aws.Config) []benchBackend {
	return []benchBackend{
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
}
