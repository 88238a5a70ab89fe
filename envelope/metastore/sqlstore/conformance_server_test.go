package sqlstore_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
)

// TestServerConformance runs envelope's Metastore suite against the real
// PostgreSQL and MariaDB servers, one fresh database per subtest.
func TestServerConformance(t *testing.T) {
	forEachServer(t, func(t *testing.T, d serverDialect) {
		envelopetest.TestMetastore(t, func(t *testing.T) envelope.Metastore {
			_, s := d.freshStore(t)
			return s
		})
	})
}
