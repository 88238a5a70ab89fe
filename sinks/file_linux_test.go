package sinks_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// On Linux the bytes go to an unnamed file (O_TMPFILE): until Close, no
// directory entry exists that a crash or SIGKILL could leave behind; the
// only trace is the process's file descriptor. Close links it into place,
// over an existing file too, and leaves no other name.
func TestFileUnnamedUntilClose(t *testing.T) {
	for _, existing := range []bool{false, true} {
		dir := t.TempDir()
		dst := filepath.Join(dir, "out")
		if existing {
			if err := os.WriteFile(dst, []byte("old"), 0o640); err != nil {
				t.Fatal(err)
			}
		}
		s, err := sinks.CreateFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Unnamed() {
			s.CloseWithError(nil)
			testenv.Missing(t, "no O_TMPFILE in "+dir)
		}
		if _, err := s.Write([]byte("new content")); err != nil {
			t.Fatal(err)
		}
		want := 0
		if existing {
			want = 1
		}
		if names := listDir(t, dir); len(names) != want || s.TempName() != "" {
			t.Fatalf("existing=%v: before Close the directory holds %v (temporary %q)", existing, names, s.TempName())
		}
		if !openFDInDir(t, dir) {
			t.Errorf("existing=%v: no open file descriptor of this process is in %s", existing, dir)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if names := listDir(t, dir); len(names) != 1 || names[0] != "out" {
			t.Errorf("existing=%v: after Close the directory holds %v", existing, names)
		}
		if got, _ := os.ReadFile(dst); string(got) != "new content" {
			t.Errorf("existing=%v: content %q", existing, got)
		}
	}
}

// openFDInDir reports whether a file descriptor of this process refers to
// an (unnamed, "#INODE (deleted)") file in dir.
func openFDInDir(t *testing.T, dir string) bool {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if to, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(to, dir+"/") {
			return true
		}
	}
	return false
}
