package awskms_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
)

// TestServerConformance runs envelope's KMS suite against the two
// local-kms regions.
func TestServerConformance(t *testing.T) {
	eps := kmsEndpoints(t)
	k, _ := twoRegionKMS(t, eps)
	envelopetest.TestKMS(t, func(t *testing.T) envelope.KMS { return k })
}
