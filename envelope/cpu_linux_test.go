package envelope_test

import (
	"os"
	"strings"
	"testing"
)

// cpuHasPKU reports whether /proc/cpuinfo lists the pku flag.
func cpuHasPKU(t testing.TB) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			for _, f := range strings.Fields(v) {
				if f == "pku" {
					return true
				}
			}
			return false
		}
	}
	return false
}
