package sinks

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File is a [Sink] that writes a file atomically: bytes go to a temporary
// file in the destination's directory, which Close fsyncs and renames over
// the destination (replacing an existing file), then fsyncs the directory.
// CloseWithError, or a failing Close, removes the temporary, so a failed or
// interrupted run never leaves a partial or truncated file, and an existing
// destination stays as it was.
//
// The temporary is named ".NAME.tmp-RANDOM" and is created with the mode
// given by [WithPerm] (default 0666, reduced by the umask as for any new
// file).
type File struct {
	mu    sync.Mutex
	f     *os.File
	bw    *bufio.Writer // nil when unbuffered
	path  string
	tmp   string
	state fileState
	err   error // sticky write error, or the result of Close/CloseWithError
}

type fileState int

const (
	fileOpen fileState = iota
	fileCommitted
	fileAborted
)

var _ Sink = (*File)(nil)

// FileOption configures [CreateFile].
type FileOption func(*fileOptions)

type fileOptions struct {
	perm    fs.FileMode
	bufSize int
}

// DefaultFileBuffer is the write buffer of a File: writes reach the
// temporary file in pieces of this size, which costs the kernel less than
// many small writes (a 64 KiB chunk plus its tag is not page-aligned).
const DefaultFileBuffer = 1 << 20

// WithBuffer sets the size of the write buffer (default DefaultFileBuffer);
// 0 writes every Write straight through.
func WithBuffer(size int) FileOption {
	return func(o *fileOptions) { o.bufSize = max(size, 0) }
}

// WithPerm sets the permission bits of the new file (before the umask).
// The default is 0666; use 0600 for files that only the owner may read.
func WithPerm(perm fs.FileMode) FileOption {
	return func(o *fileOptions) { o.perm = perm & fs.ModePerm }
}

// CreateFile creates the temporary file for path and returns a File that
// commits to path on Close. path itself is not touched until Close. It fails
// if the directory of path does not exist or is not writable, and if path
// exists and is not a regular file (a directory, a device, a named pipe:
// see OpenDevice).
func CreateFile(path string, opts ...FileOption) (*File, error) {
	o := fileOptions{perm: 0o666, bufSize: DefaultFileBuffer}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("sinks: empty file name")
	}
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		if st.IsDir() {
			return nil, fmt.Errorf("sinks: %s is a directory", path)
		}
		return nil, fmt.Errorf("sinks: %s is not a regular file (use OpenDevice)", path)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	for range 100 {
		var rnd [6]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, o.perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sinks: cannot create output in %s: %w", dir, err)
		}
		s := &File{f: f, path: path, tmp: tmp}
		if o.bufSize > 0 {
			s.bw = bufio.NewWriterSize(f, o.bufSize)
		}
		return s, nil
	}
	return nil, fmt.Errorf("sinks: cannot create a temporary file in %s", dir)
}

// Write writes to the temporary file, through the write buffer. The first
// error is sticky.
func (s *File) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != fileOpen {
		return 0, fmt.Errorf("%w: %s", ErrClosed, s.path)
	}
	if s.err != nil {
		return 0, s.err
	}
	var n int
	var err error
	if s.bw != nil {
		n, err = s.bw.Write(p)
	} else {
		n, err = s.f.Write(p)
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// Close commits: it fsyncs the temporary, renames it to the destination and
// fsyncs the directory. If a Write failed earlier, or any step fails, the
// temporary is removed and the error is returned. Close after Close or
// CloseWithError returns the first result.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != fileOpen {
		return s.closeResult()
	}
	err := s.err
	if err == nil && s.bw != nil {
		err = s.bw.Flush()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(s.tmp, s.path)
	}
	if err != nil {
		os.Remove(s.tmp)
		s.state, s.err = fileAborted, err
		return err
	}
	s.state, s.err = fileCommitted, nil
	syncDir(filepath.Dir(s.path))
	return nil
}

// CloseWithError aborts: it closes and removes the temporary file; the
// destination is left as it was. It is safe to call while another goroutine
// is in Write (it waits for that Write to return) and after Close (then it
// does nothing). It returns an error only if the temporary could not be
// removed.
func (s *File) CloseWithError(cause error) error {
	if cause == nil {
		cause = ErrAborted
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != fileOpen {
		return nil
	}
	s.f.Close()
	s.state, s.err = fileAborted, cause
	if err := os.Remove(s.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sinks: cannot remove temporary file: %w", err)
	}
	return nil
}

func (s *File) closeResult() error {
	if s.state == fileCommitted {
		return nil
	}
	return s.err
}

// Name returns the destination path.
func (s *File) Name() string { return s.path }

// TempName returns the path of the temporary file the bytes go to until
// Close. It exists between CreateFile and Close or CloseWithError.
func (s *File) TempName() string { return s.tmp }

// syncDir makes a rename durable. Errors are ignored: some file systems
// cannot fsync a directory, and the rename itself already succeeded.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
