package sinks

import (
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// openUnnamed opens an unnamed file in dir (O_TMPFILE) with mode perm. It
// fails, and the caller falls back to a named temporary, where the kernel
// or the file system lacks O_TMPFILE, or where /proc/self/fd, through
// which linkUnnamed names the file, is not mounted.
func openUnnamed(dir string, perm fs.FileMode) (*os.File, error) {
	if !unnamedEnabled {
		return nil, errUnnamedOff
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm))
	if err != nil {
		return nil, &os.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	var viaProc, direct unix.Stat_t
	if err := unix.Stat(procFD(fd), &viaProc); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: procFD(fd), Err: err}
	}
	if err := unix.Fstat(fd, &direct); err != nil || viaProc.Ino != direct.Ino || viaProc.Dev != direct.Dev {
		unix.Close(fd)
		return nil, fmt.Errorf("sinks: %s does not lead to the unnamed file", procFD(fd))
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// linkUnnamed gives the unnamed file f the name target, which must not
// exist (an existing target fails with an error matching fs.ErrExist).
func linkUnnamed(f *os.File, target string) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		lerr = unix.Linkat(unix.AT_FDCWD, procFD(int(fd)), unix.AT_FDCWD, target, unix.AT_SYMLINK_FOLLOW)
	}); err != nil {
		return err
	}
	if lerr != nil {
		return &os.LinkError{Op: "link", Old: "(unnamed)", New: target, Err: lerr}
	}
	return nil
}

func procFD(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }
