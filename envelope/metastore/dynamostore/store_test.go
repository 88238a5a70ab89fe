package dynamostore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
)

func TestNewConfigErrors(t *testing.T) {
	west := client("us-west-2", "http://127.0.0.1:1")
	noRegion := client("", "http://127.0.0.1:1")
	for name, f := range map[string]func() error{
		"nil client":            func() error { _, err := dynamostore.New(nil); return err },
		"empty table":           func() error { _, err := dynamostore.New(west, dynamostore.WithTableName("")); return err },
		"suffix without region": func() error { _, err := dynamostore.New(noRegion, dynamostore.WithRegionSuffix(true)); return err },
		"replica without region": func() error {
			_, err := dynamostore.New(noRegion, dynamostore.WithReplica("us-east-1", west))
			return err
		},
		"region twice":           func() error { _, err := dynamostore.New(west, dynamostore.WithReplica("us-west-2", west)); return err },
		"replica without client": func() error { _, err := dynamostore.New(west, dynamostore.WithReplica("us-east-1", nil)); return err },
		"Config without region":  func() error { return dynamostore.Config{}.Validate() },
		"Config region twice": func() error {
			return dynamostore.Config{Region: "us-west-2", Replicas: []dynamostore.Replica{{Region: "us-west-2"}}}.Validate()
		},
	} {
		if err := f(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	s, err := dynamostore.New(noRegion, dynamostore.WithRegion("eu-west-1"), dynamostore.WithRegionSuffix(true))
	if err != nil || s.GetRegionSuffix() != "eu-west-1" {
		t.Fatalf("WithRegion: %v %v", s, err)
	}
	s, err = dynamostore.New(west)
	if err != nil || s.GetRegionSuffix() != "" || s.Region() != "us-west-2" || s.TableName() != dynamostore.DefaultTableName {
		t.Fatalf("defaults: %+v %v", s, err)
	}
}

func TestKeyRecordRoundTrip(t *testing.T) {
	for _, rec := range []*envelope.EnvelopeKeyRecord{
		{Created: 1795749120, EncryptedKey: []byte{1, 2, 3}},
		{Revoked: true, Created: 1, EncryptedKey: []byte{0}, ParentKeyMeta: &envelope.KeyMeta{ID: "_SK_a_b_us-west-2", Created: -5}},
	} {
		m := dynamostore.EncodeKeyRecord(rec)
		got, err := dynamostore.DecodeKeyRecord(m)
		if err != nil || !sameRecord(got, rec) {
			t.Errorf("round trip of %+v = %+v, %v", rec, got, err)
		}
		if _, has := m["Revoked"]; has != rec.Revoked {
			t.Errorf("Revoked present = %v for %+v", has, rec)
		}
	}
	// Key as binary (not what Asherah writes, but readable).
	got, err := dynamostore.DecodeKeyRecord(map[string]types.AttributeValue{
		"Created": &types.AttributeValueMemberN{Value: "7"},
		"Key":     &types.AttributeValueMemberB{Value: []byte("kk")},
		"Revoked": &types.AttributeValueMemberBOOL{Value: false},
	})
	if err != nil || string(got.EncryptedKey) != "kk" || got.Created != 7 || got.Revoked {
		t.Errorf("binary Key: %+v %v", got, err)
	}
}

// noTables is an API without CreateTable.
type noTables struct{ dynamostore.API }

func TestCreateTableNeedsTableAPI(t *testing.T) {
	s, err := dynamostore.New(noTables{client("us-west-2", "http://127.0.0.1:1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTable(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot create tables") {
		t.Fatalf("CreateTable = %v", err)
	}
}
