package sinks_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/enc-pipe/enc-pipe/sinks"
	"go.uber.org/goleak"
)

// Every test leaves no goroutine behind: Close and CloseWithError stop a
// File's write-behind goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestFileCommit(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	s, err := sinks.CreateFile(dst, sinks.WithPerm(0o600))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("destination exists before Close: %v", err)
	}
	if s.Unnamed() {
		if names := listDir(t, dir); len(names) != 0 {
			t.Fatalf("an unnamed temporary shows up as %v", names)
		}
	} else if _, err := os.Stat(s.TempName()); err != nil {
		t.Fatalf("temporary missing: %v", err)
	}
	for _, p := range []string{"hello ", "world"} {
		if _, err := s.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(dst)
	if err != nil || string(got) != "hello world" {
		t.Fatalf("got %q, %v", got, err)
	}
	st, _ := os.Stat(dst)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("directory holds %v, want only out", names)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
	if err := s.CloseWithError(nil); err != nil {
		t.Errorf("CloseWithError after Close: %v", err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "hello world" {
		t.Errorf("abort after commit changed the file: %q", got)
	}
}

func TestFileAbortKeepsExistingDestination(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	if err := os.WriteFile(dst, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sinks.CreateFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("partial new content")); err != nil {
		t.Fatal(err)
	}
	cause := errors.New("interrupted")
	if err := s.CloseWithError(cause); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "old" {
		t.Errorf("destination = %q, want the old content", got)
	}
	if names := listDir(t, dir); len(names) != 1 {
		t.Errorf("temporary left behind: %v", names)
	}
	if err := s.Close(); !errors.Is(err, cause) {
		t.Errorf("Close after abort = %v, want the abort cause", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Write after abort: %v", err)
	}
}

// Writes larger and smaller than the buffer, buffered and not, with and
// without write-behind, arrive whole and in order; nothing reaches the
// destination before Close.
func TestFileBuffering(t *testing.T) {
	type config struct{ size, buffers int }
	var configs []config
	for _, size := range []int{0, 7, sinks.DefaultFileBuffer} {
		for _, buffers := range []int{1, 2, sinks.DefaultFileBuffers} {
			configs = append(configs, config{size, buffers})
		}
	}
	for _, c := range configs {
		size := c.size
		dst := filepath.Join(t.TempDir(), "out")
		s, err := sinks.CreateFile(dst, sinks.WithBuffer(c.size), sinks.WithWriteBehind(c.buffers))
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		for i, n := range []int{1, 3, 65552, 2 << 20, 5, 100000} {
			p := bytes.Repeat([]byte{byte(i + 'a')}, n)
			want.Write(p)
			if _, err := s.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("buffer %d × %d: destination exists before Close", size, c.buffers)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(dst)
		if !bytes.Equal(got, want.Bytes()) {
			t.Errorf("buffer %d × %d: got %d bytes, want %d", size, c.buffers, len(got), want.Len())
		}
	}
}

func TestFileReplacesExisting(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	os.WriteFile(dst, []byte("old content that is longer"), 0o644)
	s, err := sinks.CreateFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("new"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); string(got) != "new" {
		t.Errorf("got %q", got)
	}
}

func TestFileCreateErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := sinks.CreateFile(filepath.Join(dir, "missing", "out")); err == nil {
		t.Error("CreateFile in a missing directory succeeded")
	}
	if _, err := sinks.CreateFile(dir); err == nil {
		t.Error("CreateFile over a directory succeeded")
	}
	if _, err := sinks.CreateFile(""); err == nil {
		t.Error("CreateFile(\"\") succeeded")
	}
}

// A failing Close (the rename target is a non-empty directory created after
// CreateFile) removes the temporary and reports the error.
func TestFileCommitFailureRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "out")
	s, err := sinks.CreateFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("data"))
	if err := os.MkdirAll(filepath.Join(dst, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close over a directory succeeded")
	}
	if names := listDir(t, dir); len(names) != 1 || names[0] != "out" {
		t.Errorf("temporary left after failed Close: %v", names)
	}
}

// CloseWithError may run concurrently with writers (as a signal handler
// does); run under -race.
func TestFileConcurrentAbort(t *testing.T) {
	dir := t.TempDir()
	s, err := sinks.CreateFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	}()
	if err := s.CloseWithError(nil); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
}

// Devices are written in place, never replaced by a regular file.
func TestDevice(t *testing.T) {
	if _, err := sinks.CreateFile(os.DevNull); err == nil {
		t.Fatal("CreateFile accepted a device")
	}
	s, err := sinks.OpenDevice(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("discarded")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(os.DevNull); err != nil || st.Mode().IsRegular() {
		t.Fatalf("%s: %v, %v", os.DevNull, st.Mode(), err)
	}
	p := filepath.Join(t.TempDir(), "regular")
	os.WriteFile(p, nil, 0o644)
	if _, err := sinks.OpenDevice(p); err == nil {
		t.Error("OpenDevice accepted a regular file")
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestWriter(t *testing.T) {
	var buf bytes.Buffer
	s := sinks.NewWriter(&buf, "stdout")
	if s.Name() != "stdout" {
		t.Errorf("Name = %q", s.Name())
	}
	s.Write([]byte("abc"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("d")); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if buf.String() != "abc" {
		t.Errorf("got %q", buf.String())
	}

	fw := &failWriter{n: 1}
	s = sinks.NewWriter(fw, "pipe")
	if _, err := s.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	_, err1 := s.Write([]byte("fails"))
	fw.n = 10 // the writer would work again: the error must stay
	_, err2 := s.Write([]byte("again"))
	if err1 == nil || err2 != err1 {
		t.Errorf("errors not sticky: %v, %v", err1, err2)
	}
	if err := s.Close(); err != err1 {
		t.Errorf("Close = %v, want the write error", err)
	}

	s = sinks.NewWriter(&buf, "x")
	cause := errors.New("stop")
	s.CloseWithError(cause)
	if _, err := s.Write([]byte("x")); !errors.Is(err, cause) || !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("Write after CloseWithError = %v", err)
	}
}
