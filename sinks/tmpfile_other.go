//go:build !linux

package sinks

import (
	"io/fs"
	"os"
)

// openUnnamed fails: only Linux has O_TMPFILE; the caller uses a named
// temporary.
func openUnnamed(string, fs.FileMode) (*os.File, error) { return nil, errUnnamedOff }

func linkUnnamed(*os.File, string) error { return errUnnamedOff }
