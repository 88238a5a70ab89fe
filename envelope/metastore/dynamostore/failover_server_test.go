package dynamostore_test

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestServerReplicaFailover stands two private dynalite servers in for two
// regions of a global table (dynalite has no replication, so the test
// writes the "replicated" items to both itself) and stops them in turn.
func TestServerReplicaFailover(t *testing.T) {
	west := testenv.StartPrivate(t, testenv.ServiceDynamoDB)
	east := testenv.StartPrivate(t, testenv.ServiceDynamoDB)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const table = "EncryptionKey"
	cw := client("us-west-2", west.URL(testenv.ServiceDynamoDB))
	ce := client("us-east-1", east.URL(testenv.ServiceDynamoDB))
	for _, c := range []dynamostore.TableAPI{cw, ce} {
		if err := dynamostore.CreateTable(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	s, err := dynamostore.Open(ctx, dynamostore.Config{
		Region:    "us-west-2",
		Endpoint:  west.URL(testenv.ServiceDynamoDB),
		Replicas:  []dynamostore.Replica{{Region: "us-east-1", Endpoint: east.URL(testenv.ServiceDynamoDB)}},
		AWSConfig: ptr(testAWSConfig()),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.TableName() != table {
		t.Fatalf("default table = %q", s.TableName())
	}
	eastOnly, err := dynamostore.New(ce, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}

	// Both regions hold the SK; the IK has reached only us-east-1.
	if err := s.Store(ctx, "_SK_svc_prod", 60, sk(60, "sk")); err != nil {
		t.Fatal(err)
	}
	if err := eastOnly.Store(ctx, "_SK_svc_prod", 60, sk(60, "sk")); err != nil {
		t.Fatal(err)
	}
	if err := eastOnly.Store(ctx, "_IK_p_svc_prod", 60, ik(60, "ik", 60)); err != nil {
		t.Fatal(err)
	}
	// An exact Load not yet replicated to the preferred region is found in
	// the replica; LoadLatest does not fail over on absence.
	if got, err := s.Load(ctx, "_IK_p_svc_prod", 60); err != nil || string(got.EncryptedKey) != "ik" {
		t.Fatalf("Load of a key only in the replica = %+v, %v", got, err)
	}
	if _, err := s.LoadLatest(ctx, "_IK_p_svc_prod"); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("LoadLatest of a key only in the replica = %v, want ErrNotFound", err)
	}

	west.Stop(t, testenv.ServiceDynamoDB)
	if got, err := s.Load(ctx, "_SK_svc_prod", 60); err != nil || string(got.EncryptedKey) != "sk" {
		t.Fatalf("us-west-2 down: Load = %+v, %v", got, err)
	}
	if got, err := s.LoadLatest(ctx, "_SK_svc_prod"); err != nil || got.Created != 60 {
		t.Fatalf("us-west-2 down: LoadLatest = %+v, %v", got, err)
	}
	if _, err := s.Load(ctx, "_SK_svc_prod", 61); !errors.Is(err, envelope.ErrNotFound) || !strings.Contains(err.Error(), "region us-west-2") {
		t.Fatalf("us-west-2 down: Load of a missing key = %v, want ErrNotFound from the replica, naming the failed region", err)
	}
	// Writes never fail over.
	err = s.Store(ctx, "_SK_svc_prod", 120, sk(120, "new"))
	if err == nil || errors.Is(err, envelope.ErrKeyExists) || !strings.Contains(err.Error(), "region us-west-2") {
		t.Fatalf("us-west-2 down: Store = %v, want a us-west-2 error", err)
	}
	if _, err := eastOnly.Load(ctx, "_SK_svc_prod", 120); !errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("Store wrote to the replica: %v", err)
	}

	east.Stop(t, testenv.ServiceDynamoDB)
	_, err = s.LoadLatest(ctx, "_SK_svc_prod")
	if err == nil || errors.Is(err, envelope.ErrNotFound) {
		t.Fatalf("both down: LoadLatest = %v", err)
	}
	for _, r := range []string{"region us-west-2", "region us-east-1"} {
		if !strings.Contains(err.Error(), r) {
			t.Errorf("both down: error %q does not name %s", err, r)
		}
	}
	if strings.Contains(err.Error(), "\n") || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("both down: error %q: want one line, with the causes reachable", err)
	}

	west.Start(t, testenv.ServiceDynamoDB)
	east.Start(t, testenv.ServiceDynamoDB)
	// dynalite keeps its tables on disk: everything is still there.
	if got, err := s.LoadLatest(ctx, "_SK_svc_prod"); err != nil || got.Created != 60 {
		t.Fatalf("after restart: LoadLatest = %+v, %v", got, err)
	}
	if err := s.Store(ctx, "_SK_svc_prod", 120, sk(120, "new")); err != nil {
		t.Fatalf("after restart: Store = %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
