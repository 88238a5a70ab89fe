package memstore_test

import (
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/envelope/envelopetest"
	"github.com/enc-pipe/enc-pipe/envelope/metastore/memstore"
)

func TestConformance(t *testing.T) {
	envelopetest.TestMetastore(t, func(*testing.T) envelope.Metastore { return memstore.New() })
}

func TestRegionSuffix(t *testing.T) {
	if got := memstore.New().GetRegionSuffix(); got != "" {
		t.Errorf("GetRegionSuffix() = %q, want empty", got)
	}
	if got := memstore.New(memstore.WithRegionSuffix("us-west-2")).GetRegionSuffix(); got != "us-west-2" {
		t.Errorf("GetRegionSuffix() = %q, want us-west-2", got)
	}
}
