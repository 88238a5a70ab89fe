package sinks

import "testing"

// ForceNamedTemp makes CreateFile use a named temporary, as it does where
// O_TMPFILE is unavailable, until the test ends.
func ForceNamedTemp(t testing.TB) {
	old := unnamedEnabled
	unnamedEnabled = false
	t.Cleanup(func() { unnamedEnabled = old })
}
