//go:build !unix

package sinks

import (
	"io/fs"
	"os"
)

// keepModeAndOwner gives f the permission bits of the file old that it
// replaces (on Windows only the read-only attribute means anything).
func keepModeAndOwner(f *os.File, old fs.FileInfo) error {
	return f.Chmod(old.Mode().Perm())
}
