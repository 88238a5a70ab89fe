package dynamostore_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/dynamostore"
)

// TestServerConformance runs envelope's Metastore suite against dynalite,
// one fresh table per subtest.
func TestServerConformance(t *testing.T) {
	c := client("us-west-2", dynamoEndpoint(t))
	envelopetest.TestMetastore(t, func(t *testing.T) envelope.Metastore {
		s, err := dynamostore.New(c, dynamostore.WithTableName(newTable(t, c)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
