//go:build unix

package testenv

import (
	"syscall"
	"testing"
)

// Mkfifo creates a named pipe at path with mode 0600. When the file system
// cannot hold one the test is skipped, or fails under CI.
func Mkfifo(t testing.TB, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		Missing(t, "mkfifo "+path+": "+err.Error())
	}
}

// Root skips the test, or fails it under CI, unless the process runs as
// root; why says what the test needs root for (giving files to another
// user, for example).
func Root(t testing.TB, why string) {
	t.Helper()
	if syscall.Geteuid() != 0 {
		Missing(t, "needs root: "+why)
	}
}
