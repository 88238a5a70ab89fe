package dynamostore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// testAWSConfig has static credentials and two attempts per call, so that
// tests against a stopped server fail over quickly. Every client gets an
// endpoint on loopback.
func testAWSConfig() aws.Config {
	return aws.Config{
		Credentials:      credentials.NewStaticCredentialsProvider("encpipe", "encpipe-secret", ""),
		RetryMaxAttempts: 2,
	}
}

func client(region, endpoint string) *dynamodb.Client {
	return dynamostore.NewClient(testAWSConfig(), region, endpoint)
}

// dynamoEndpoint is the shared dynalite of .ci/services.sh.
func dynamoEndpoint(t testing.TB) string {
	return testenv.Var(t, testenv.DynamoDB)
}

// newTable creates a table with a unique name on the server at endpoint
// and deletes it when the test ends.
func newTable(t testing.TB, c *dynamodb.Client) string {
	t.Helper()
	b := make([]byte, 6)
	rand.Read(b)
	name := "EncryptionKey-test-" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dynamostore.CreateTable(ctx, c, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)})
	})
	return name
}
