package sources_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/sources"
)

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sources.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Size() != 10 || !s.Seekable() || s.Name() != p {
		t.Errorf("Size=%d Seekable=%v Name=%q", s.Size(), s.Seekable(), s.Name())
	}
	buf := make([]byte, 3)
	if n, err := s.ReadAt(buf, 7); n != 3 || err != nil || string(buf) != "789" {
		t.Errorf("ReadAt = %d %v %q", n, err, buf)
	}
	all, err := io.ReadAll(s)
	if err != nil || string(all) != "0123456789" {
		t.Errorf("ReadAll = %q %v", all, err)
	}
	st, _ := os.Stat(p)
	if !os.SameFile(st, s.Stat()) {
		t.Error("Stat is not the opened file")
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := sources.OpenFile(dir); !errors.Is(err, sources.ErrNotRegular) {
		t.Errorf("directory: %v", err)
	}
	if _, err := sources.OpenFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestReaderDoesNotClose(t *testing.T) {
	ct := &closeTracker{Reader: strings.NewReader("abc")}
	s := sources.NewReader(ct, "stdin")
	got, _ := io.ReadAll(s)
	if err := s.Close(); err != nil || ct.closed {
		t.Errorf("Close closed the caller's reader (err %v)", err)
	}
	if string(got) != "abc" || s.Name() != "stdin" {
		t.Errorf("got %q name %q", got, s.Name())
	}
}
