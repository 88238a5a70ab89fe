//go:build unix

package sinks

import (
	"io/fs"
	"os"
	"syscall"
)

// keepModeAndOwner gives f the permission bits, owner and group of the
// file old that it replaces. The owner is kept only where the process may
// give files away (root); the group where it may (root, or a member of
// it). When the group cannot be kept, the group bits are cleared: they
// would grant old's group's access to another group.
func keepModeAndOwner(f *os.File, old fs.FileInfo) error {
	perm := old.Mode().Perm()
	want, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return f.Chmod(perm)
	}
	cur, err := f.Stat()
	if err != nil {
		return err
	}
	have, ok := cur.Sys().(*syscall.Stat_t)
	if !ok {
		return f.Chmod(perm)
	}
	if have.Uid != want.Uid {
		f.Chown(int(want.Uid), -1) // only root may; otherwise the file stays ours
	}
	if have.Gid != want.Gid && f.Chown(-1, int(want.Gid)) != nil {
		perm &^= 0o070
	}
	return f.Chmod(perm)
}
