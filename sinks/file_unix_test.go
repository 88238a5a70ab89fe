//go:build unix

package sinks_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// umask returns the process's umask (the tests of this package do not run
// in parallel, so setting it back at once races with nothing).
func umask() fs.FileMode {
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return fs.FileMode(m)
}

// eachTempKind runs f with the unnamed temporary (where the system has it)
// and with the named one that other systems use.
func eachTempKind(t *testing.T, f func(t *testing.T)) {
	t.Run("default", f)
	t.Run("named", func(t *testing.T) {
		sinks.ForceNamedTemp(t)
		f(t)
	})
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

func writeAndClose(t *testing.T, s *sinks.File, data string) {
	t.Helper()
	if _, err := s.Write([]byte(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A new file is private (0600 less the umask) unless WithPerm says
// otherwise, and a named temporary is never more accessible than the file
// it becomes.
func TestFileNewFileMode(t *testing.T) {
	eachTempKind(t, func(t *testing.T) {
		for _, perm := range []fs.FileMode{0, 0o600, 0o644, 0o666} {
			dst := filepath.Join(t.TempDir(), "out")
			var opts []sinks.FileOption
			want := sinks.DefaultFilePerm &^ umask()
			if perm != 0 {
				opts = append(opts, sinks.WithPerm(perm))
				want = perm &^ umask()
			}
			s, err := sinks.CreateFile(dst, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if tmp := s.TempName(); tmp != "" {
				if got := mode(t, tmp).Perm(); got&^want != 0 {
					t.Errorf("WithPerm(%#o): temporary has mode %#o, more than the file's %#o", perm, got, want)
				}
			}
			writeAndClose(t, s, "x")
			if got := mode(t, dst); got != want {
				t.Errorf("WithPerm(%#o): new file has mode %v, want %v", perm, got, want)
			}
		}
	})
}

// Replacing a file keeps its permission bits, whatever WithPerm says,
// drops set-id bits, and the temporary is never more accessible than
// either the old file or the new file's mode.
func TestFileReplaceKeepsMode(t *testing.T) {
	eachTempKind(t, func(t *testing.T) {
		for _, old := range []fs.FileMode{0o600, 0o640, 0o644, 0o604, 0o400, 0o755 | fs.ModeSetuid} {
			for _, perm := range []fs.FileMode{0o600, 0o666} {
				dir := t.TempDir()
				dst := filepath.Join(dir, "out")
				if err := os.WriteFile(dst, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dst, old); err != nil {
					t.Fatal(err)
				}
				old = mode(t, dst) // what the file system kept
				s, err := sinks.CreateFile(dst, sinks.WithPerm(perm))
				if err != nil {
					t.Fatal(err)
				}
				if tmp := s.TempName(); tmp != "" {
					if got := mode(t, tmp).Perm(); got&^(old.Perm()&perm) != 0 {
						t.Errorf("old %v, WithPerm(%#o): temporary has mode %#o", old, perm, got)
					}
				}
				writeAndClose(t, s, "new")
				if got, want := mode(t, dst), old.Perm(); got != want {
					t.Errorf("old %v, WithPerm(%#o): replaced file has mode %v, want %v", old, perm, got, want)
				}
				if got, _ := os.ReadFile(dst); string(got) != "new" {
					t.Errorf("content %q", got)
				}
				if names := listDir(t, dir); len(names) != 1 {
					t.Errorf("left behind: %v", names)
				}
			}
		}
	})
}

// As root, a replaced file keeps its owner and group (the mode alone would
// hand the group bits to root's group).
func TestFileReplaceKeepsOwnerAndGroup(t *testing.T) {
	testenv.Root(t, "to give the file to another user")
	const uid, gid = 65534, 65534
	eachTempKind(t, func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "out")
		if err := os.WriteFile(dst, []byte("old"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dst, uid, gid); err != nil {
			t.Fatal(err)
		}
		s, err := sinks.CreateFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		writeAndClose(t, s, "new")
		st, err := os.Stat(dst)
		if err != nil {
			t.Fatal(err)
		}
		sys := st.Sys().(*syscall.Stat_t)
		if sys.Uid != uid || sys.Gid != gid || st.Mode().Perm() != 0o640 {
			t.Errorf("replaced file: uid %d gid %d mode %v, want %d %d 0640", sys.Uid, sys.Gid, st.Mode(), uid, gid)
		}
	})
}

// A destination that is a symbolic link is refused: the link and its
// target stay as they were. One that becomes a link before Close is refused
// by Close.
func TestFileRefusesSymlink(t *testing.T) {
	eachTempKind(t, func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(dir, "target")
		if err := os.WriteFile(target, []byte("target"), 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink("target", link); err != nil {
			t.Fatal(err)
		}
		dangling := filepath.Join(dir, "dangling")
		if err := os.Symlink("missing", dangling); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{link, dangling} {
			if _, err := sinks.CreateFile(p); !errors.Is(err, sinks.ErrNotRegular) {
				t.Errorf("CreateFile(%s) = %v, want ErrNotRegular", filepath.Base(p), err)
			}
		}

		late := filepath.Join(dir, "late")
		s, err := sinks.CreateFile(late)
		if err != nil {
			t.Fatal(err)
		}
		s.Write([]byte("new"))
		if err := os.Symlink("target", late); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); !errors.Is(err, sinks.ErrNotRegular) {
			t.Errorf("Close over a new symlink = %v, want ErrNotRegular", err)
		}
		for _, p := range []string{link, late} {
			if to, err := os.Readlink(p); err != nil || to != "target" {
				t.Errorf("%s: readlink %q, %v", filepath.Base(p), to, err)
			}
		}
		if got, _ := os.ReadFile(target); string(got) != "target" {
			t.Errorf("the link's target was written: %q", got)
		}
		if names := listDir(t, dir); len(names) != 4 {
			t.Errorf("directory holds %v, want link, dangling, late and target", names)
		}
	})
}
