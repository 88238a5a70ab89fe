//go:build !unix

package main

import (
	"io/fs"
	"os"
)

// fileOwner is unknown where files have no Unix owner.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }

// openNoFollow opens path for reading (the caller has checked with Lstat
// that it is not a link).
func openNoFollow(path string) (*os.File, error) { return os.Open(path) }
