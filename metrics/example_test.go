package metrics_test

import (
	"fmt"

	"github.com/enc-pipe/enc-pipe/metrics"
)

// A package asks for its instruments once and then only uses them; the
// caller reads the figures from its Provider (here the in-memory one).
func Example() {
	m := metrics.NewMemory()
	errs := m.Counter("stream.errors", metrics.Label{Name: "op", Value: "decrypt"}, metrics.Label{Name: "kind", Value: "auth"})
	inUse := m.Gauge("secret.inuse")

	errs.Add(1)
	inUse.Add(3)
	inUse.Add(-1)

	for _, p := range m.Points() {
		fmt.Println(p)
	}
	// Output:
	// secret.inuse 2
	// stream.errors{kind="auth",op="decrypt"} 1
}
