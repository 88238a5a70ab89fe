//go:build unix

package sources_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/sources"
)

func TestFIFOIsNotSeekable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	testenv.Mkfifo(t, p)
	go func() {
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err == nil {
			w.Write([]byte("piped"))
			w.Close()
		}
	}()
	s, err := sources.OpenFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Seekable() || s.Size() != -1 {
		t.Errorf("fifo: Seekable=%v Size=%d", s.Seekable(), s.Size())
	}
	if _, err := s.ReadAt(make([]byte, 1), 0); !errors.Is(err, sources.ErrNotRegular) {
		t.Errorf("ReadAt on a fifo: %v", err)
	}
	got, _ := io.ReadAll(s)
	if string(got) != "piped" {
		t.Errorf("got %q", got)
	}
}
