//go:build unix

package sinks

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A directory fsync that fails with an I/O error makes Close fail with
// ErrNotDurable (the file is in place, but a crash may lose it); EINVAL and
// ENOTSUP, with which file systems that cannot fsync a directory answer,
// are not errors.
func TestCloseReportsDirectoryFsyncFailure(t *testing.T) {
	for _, c := range []struct {
		errno   syscall.Errno
		durable bool
	}{
		{syscall.EIO, false},
		{syscall.ENOSPC, false},
		{syscall.EINVAL, true},
		{syscall.ENOTSUP, true},
	} {
		t.Run(c.errno.Error(), func(t *testing.T) {
			old := fsyncDir
			t.Cleanup(func() { fsyncDir = old })
			calls := 0
			fsyncDir = func(d *os.File) error {
				calls++
				return &os.PathError{Op: "sync", Path: d.Name(), Err: c.errno}
			}
			dst := filepath.Join(t.TempDir(), "out")
			s, err := CreateFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			s.Write([]byte("data"))
			err = s.Close()
			if calls != 1 {
				t.Fatalf("the directory was fsynced %d times, want 1", calls)
			}
			if c.durable {
				if err != nil {
					t.Errorf("Close = %v, want nil for %v", err, c.errno)
				}
			} else if !errors.Is(err, ErrNotDurable) || !errors.Is(err, c.errno) {
				t.Errorf("Close = %v, want ErrNotDurable wrapping %v", err, c.errno)
			}
			if again := s.Close(); !errors.Is(again, err) && again != err {
				t.Errorf("second Close = %v, want the first result %v", again, err)
			}
			if got, rerr := os.ReadFile(dst); rerr != nil || string(got) != "data" {
				t.Errorf("destination: %q, %v", got, rerr)
			}
			if c.durable {
				if err := SyncDir(filepath.Dir(dst)); err != nil {
					t.Errorf("SyncDir = %v, want nil for %v", err, c.errno)
				}
			}
		})
	}
}
