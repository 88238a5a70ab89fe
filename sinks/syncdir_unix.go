//go:build unix

package sinks

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// fsyncDir is the fsync of an open directory; tests replace it to inject
// the errors of failing disks.
var fsyncDir = (*os.File).Sync

// SyncDir fsyncs the directory dir, so that names created, renamed or
// removed in it survive a crash. It returns the error of opening or
// syncing the directory, except EINVAL and ENOTSUP (EOPNOTSUPP), with which
// file systems that cannot fsync a directory answer (some FUSE and network
// file systems); there nothing more can be done, and nil is returned.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open directory %s to fsync it: %w", dir, err)
	}
	defer d.Close()
	err = fsyncDir(d)
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP) {
		return nil
	}
	return fmt.Errorf("cannot fsync directory %s: %w", dir, err)
}
