package dynamostore_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
	"github.com/enc-pipe/enc-pipe/internal/keyrace"
	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// TestServerTwoProcessRace has two processes create the keys of new
// partitions at the same moment, through the session factory, on one
// table. The conditional put must let exactly one system key and one
// intermediate key per partition in, and both processes must end up using
// them: each decrypts what the other wrote.
func TestServerTwoProcessRace(t *testing.T) {
	open := func(t *testing.T, getenv func(string) string) keyrace.Store {
		s, err := dynamostore.New(client("us-west-2", getenv("RACE_ENDPOINT")), dynamostore.WithTableName(getenv("RACE_TABLE")))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if _, ok := testenv.IsChild(); ok {
		keyrace.Run(t, keyrace.Setup{Open: open})
		return
	}
	endpoint := dynamoEndpoint(t)
	table := newTable(t, client("us-west-2", endpoint))
	keyrace.Run(t, keyrace.Setup{
		Name: "dynamodb",
		Env:  []string{"RACE_TABLE=" + table, "RACE_ENDPOINT=" + endpoint},
		Open: open,
	})
}
