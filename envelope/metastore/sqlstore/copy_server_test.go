package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/kms/awskms"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestServerCopyAcrossBackends writes keys through DynamoDB (with the
// region suffix, as on a global table) under a two-region AWS KMS, copies
// the key rows to PostgreSQL, from there to MariaDB, and from there to a
// new DynamoDB table, and decrypts the same records through each copy.
// The system key rows carry the KMS envelope JSON, not a 60-byte blob.
func TestServerCopyAcrossBackends(t *testing.T) {
	ctx := context.Background()
	awsCfg := aws.Config{Credentials: credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", "")}
	k := testKMS(t, awsCfg)

	dyn := dynamostore.NewClient(awsCfg, "us-west-2", testenv.Var(t, testenv.DynamoDB))
	newDynamo := func() *dynamostore.Store {
		b := make([]byte, 6)
		rand.Read(b)
		table := "EncryptionKey-copy-" + hex.EncodeToString(b)
		if err := dynamostore.CreateTable(ctx, dyn, table); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			dyn.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
		})
		s, err := dynamostore.New(dyn, dynamostore.WithTableName(table), dynamostore.WithRegionSuffix(true))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	source := newDynamo()

	factory := func(store envelope.Metastore) *envelope.SessionFactory {
		f, err := envelope.NewSessionFactory(&envelope.Config{Service: "copy", Product: "prod", RegionSuffix: "us-west-2"}, store, k, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	// Write records for three partitions, the third with a rotated
	// intermediate key, so there are several rows per id.
	f := factory(source)
	type rec struct {
		part string
		drr  *envelope.DataRowRecord
	}
	var recs []rec
	for i, part := range []string{"alice", "bob", "carol", "carol"} {
		if i == 3 {
			if _, err := f.RotateIntermediateKey(ctx, part); err != nil {
				t.Fatal(err)
			}
		}
		sess, err := f.GetSession(part)
		if err != nil {
			t.Fatal(err)
		}
		drr, err := sess.Encrypt(ctx, fmt.Appendf(nil, "record %d of %s", i, part))
		sess.Close()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec{part, drr})
	}

	check := func(name string, store envelope.Metastore) {
		t.Helper()
		f := factory(store) // fresh caches: every key comes from store
		for i, r := range recs {
			sess, err := f.GetSession(r.part)
			if err != nil {
				t.Fatal(err)
			}
			pt, err := sess.Decrypt(ctx, *r.drr)
			sess.Close()
			if want := fmt.Sprintf("record %d of %s", i, r.part); err != nil || string(pt) != want {
				t.Errorf("%s: record %d: %q, %v", name, i, pt, err)
			}
		}
	}
	copyRows := func(from envelope.Lister, to envelope.Metastore) int {
		t.Helper()
		rows, err := from.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := to.Store(ctx, r.ID, r.Created, r); err != nil {
				t.Fatalf("copy %s %d: %v", r.ID, r.Created, err)
			}
		}
		return len(rows)
	}

	_, pg := serverDialects[0].freshStore(t)
	_, my := serverDialects[1].freshStore(t)
	target := newDynamo()
	n := copyRows(source, pg)
	if n != 1+4 { // one SK, IKs for alice, bob and carol (twice)
		t.Fatalf("copied %d rows, want 5", n)
	}
	sk, err := pg.LoadLatest(ctx, "_SK_copy_prod_us-west-2")
	if err != nil || !strings.HasPrefix(string(sk.EncryptedKey), `{"encryptedKey":`) {
		t.Fatalf("system key row in PostgreSQL: %v (want the KMS envelope JSON)", err)
	}
	check("postgres", pg)
	copyRows(pg, my)
	check("mysql", my)
	copyRows(my, target)
	check("dynamodb copy", target)
}

// testKMS returns a two-region KMS on the local-kms servers, with a new
// master key in each region.
func testKMS(t testing.TB, awsCfg aws.Config) *awskms.KMS {
	t.Helper()
	eps := map[string]string{}
	for _, item := range strings.Split(testenv.Var(t, testenv.KMS), ",") {
		region, url, _ := strings.Cut(item, "=")
		eps[region] = url
	}
	var spec awskms.Spec
	opts := []awskms.Option{awskms.WithAWSConfig(awsCfg)}
	for _, region := range []string{"us-west-2", "us-east-1"} {
		c := kms.NewFromConfig(awsCfg, func(o *kms.Options) { o.Region = region; o.BaseEndpoint = aws.String(eps[region]) })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
		cancel()
		if err != nil {
			t.Fatalf("CreateKey in %s: %v", region, err)
		}
		spec.Regions = append(spec.Regions, awskms.Region{Name: region, KeyID: *out.KeyMetadata.Arn})
		opts = append(opts, awskms.WithEndpoint(region, eps[region]))
	}
	k, err := awskms.New(context.Background(), spec, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
