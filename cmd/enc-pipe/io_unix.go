//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// descriptorName reports whether path names one of this process's file
// descriptors: /dev/stdin, /dev/stdout, /dev/stderr, /dev/fd/N,
// /proc/self/fd/N, /proc/thread-self/fd/N or /proc/PID/fd/N with this
// process's PID.
func descriptorName(path string) (int, bool) {
	p := filepath.Clean(path)
	switch p {
	case "/dev/stdin":
		return 0, true
	case "/dev/stdout":
		return 1, true
	case "/dev/stderr":
		return 2, true
	}
	for _, dir := range []string{"/dev/fd/", "/proc/self/fd/", "/proc/thread-self/fd/", "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"} {
		if rest, ok := strings.CutPrefix(p, dir); ok {
			if n, err := strconv.Atoi(rest); err == nil && n >= 0 {
				return n, true
			}
		}
	}
	return 0, false
}

// dupDescriptor returns a duplicate of fd that may be written to.
func dupDescriptor(fd int, name string) (*os.File, error) {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return nil, err
	}
	if acc := flags & unix.O_ACCMODE; acc != unix.O_WRONLY && acc != unix.O_RDWR {
		return nil, unix.EBADF
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), name), nil
}

// closedDescriptor reports whether f is what a closed standard stream
// becomes: at start-up the Go runtime opens /dev/null read-write for each
// of descriptors 0 to 2 that is closed. A shell's "> /dev/null" opens it
// write-only, and "-o /dev/null" is always accepted.
func closedDescriptor(f *os.File) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var st, null unix.Stat_t
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = unix.Fstat(int(fd), &st)
		if ferr == nil {
			flags, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0)
		}
	}); err != nil || ferr != nil {
		return false
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || flags&unix.O_ACCMODE != unix.O_RDWR {
		return false
	}
	return unix.Stat(os.DevNull, &null) == nil && null.Rdev == st.Rdev
}
