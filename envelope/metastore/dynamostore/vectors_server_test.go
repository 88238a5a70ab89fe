package dynamostore_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
)

// putAsherahItem writes one metastore.json row with a raw PutItem, building
// Asherah's item from the row's JSON directly (not through this package), to
// prove that the store reads what Asherah writes.
func putAsherahItem(t *testing.T, c *dynamodb.Client, table string, row asherahvectors.Row) {
	t.Helper()
	var rec struct {
		Revoked       bool
		Created       int64
		Key           string
		ParentKeyMeta *struct {
			KeyId   string
			Created int64
		}
	}
	if err := json.Unmarshal([]byte(row.KeyRecordText), &rec); err != nil {
		t.Fatal(err)
	}
	kr := map[string]types.AttributeValue{
		"Created": &types.AttributeValueMemberN{Value: strconv.FormatInt(rec.Created, 10)},
		"Key":     &types.AttributeValueMemberS{Value: rec.Key},
	}
	if rec.Revoked {
		kr["Revoked"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	if p := rec.ParentKeyMeta; p != nil {
		kr["ParentKeyMeta"] = &types.AttributeValueMemberM{Value: map[string]types.AttributeValue{
			"KeyId":   &types.AttributeValueMemberS{Value: p.KeyId},
			"Created": &types.AttributeValueMemberN{Value: strconv.FormatInt(p.Created, 10)},
		}}
	}
	_, err := c.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
		"Id":        &types.AttributeValueMemberS{Value: row.ID},
		"Created":   &types.AttributeValueMemberN{Value: strconv.FormatInt(row.Created, 10)},
		"KeyRecord": &types.AttributeValueMemberM{Value: kr},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestServerAsherahVectors decrypts every positive vector and rejects every
// negative one through a DynamoDB metastore filled in Asherah's layout.
// The region-suffix records are read through a store made
// WithRegionSuffix in us-west-2, so the suffix comes from the store as it
// does in Asherah.
func TestServerAsherahVectors(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	table := newTable(t, c)
	rows := asherahvectors.MustLoad(t).Rows
	for _, row := range rows {
		putAsherahItem(t, c, table, row)
	}
	plain, err := dynamostore.New(c, dynamostore.WithTableName(table))
	if err != nil {
		t.Fatal(err)
	}
	suffixed, err := dynamostore.New(c, dynamostore.WithTableName(table), dynamostore.WithRegionSuffix(true))
	if err != nil {
		t.Fatal(err)
	}
	// Every row reads back as Asherah's record JSON, field for field.
	for _, row := range rows {
		got, err := plain.Load(context.Background(), row.ID, row.Created)
		if err != nil {
			t.Fatalf("Load %s %d: %v", row.ID, row.Created, err)
		}
		js, _ := json.Marshal(got)
		var a, b any
		json.Unmarshal(js, &a)
		json.Unmarshal([]byte(row.KeyRecordText), &b)
		if !jsonEqual(a, b) {
			t.Errorf("row %s %d reads back as %s, want %s", row.ID, row.Created, js, row.KeyRecordText)
		}
	}

	asherahvectors.Check(t, func(s asherahvectors.Session) envelope.Metastore {
		if s.RegionSuffix != "" {
			return suffixed
		}
		return plain
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}
