// Package sources holds the inputs enc-pipe reads from: files and standard
// input.
//
// A Source is an io.ReadCloser with a name for messages. Sources that can be
// read at any offset (regular files) also implement [RandomAccess], which
// lets a caller decrypt a byte range without reading what comes before it.
//
// The package imports nothing but the standard library and knows nothing
// about encryption: it moves bytes.
package sources

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Source is an input. Close releases it; it never closes a reader that the
// caller passed in (such as os.Stdin). A Source is used by one goroutine at a
// time, except that the ReadAt of a [RandomAccess] source is safe for
// concurrent use.
type Source interface {
	io.ReadCloser
	// Name is a human-readable name of the input for messages.
	Name() string
}

// RandomAccess is implemented by sources that can be read at any offset.
type RandomAccess interface {
	io.ReaderAt
	// Size is the length of the input in bytes.
	Size() int64
}

// ErrNotRegular is returned (wrapped) by OpenFile for directories and
// other inputs that are not files, pipes or devices.
var ErrNotRegular = errors.New("sources: not a file")

// File is a [Source] over a file. A regular file is also a [RandomAccess].
type File struct {
	f    *os.File
	info fs.FileInfo
}

var (
	_ Source       = (*File)(nil)
	_ RandomAccess = (*File)(nil)
)

// OpenFile opens path for reading. Named pipes and character devices (such
// as /dev/stdin) are accepted, but only regular files report a Size and
// serve ReadAt. Directories are refused with ErrNotRegular.
func OpenFile(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if info.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%w: %s is a directory", ErrNotRegular, path)
	}
	return &File{f: f, info: info}, nil
}

// Read reads from the file.
func (s *File) Read(p []byte) (int, error) { return s.f.Read(p) }

// ReadAt reads from the file at off. It fails for files that are not
// regular (pipes, devices).
func (s *File) ReadAt(p []byte, off int64) (int, error) {
	if !s.info.Mode().IsRegular() {
		return 0, fmt.Errorf("%w: %s cannot be read at an offset", ErrNotRegular, s.f.Name())
	}
	return s.f.ReadAt(p, off)
}

// Size is the file's length, or -1 if it is not a regular file.
func (s *File) Size() int64 {
	if !s.info.Mode().IsRegular() {
		return -1
	}
	return s.info.Size()
}

// Seekable reports whether the file is a regular file, i.e. ReadAt and
// Size work.
func (s *File) Seekable() bool { return s.info.Mode().IsRegular() }

// Stat returns the file's information as it was when it was opened, for
// instance to compare it with an output with os.SameFile.
func (s *File) Stat() fs.FileInfo { return s.info }

// Name returns the path the file was opened with.
func (s *File) Name() string { return s.f.Name() }

// Close closes the file.
func (s *File) Close() error { return s.f.Close() }

// Reader is a [Source] over an io.Reader the caller owns, such as os.Stdin.
// Close does not close the reader.
type Reader struct {
	r    io.Reader
	name string
}

var _ Source = (*Reader)(nil)

// NewReader returns a Source that reads from r and never closes it.
func NewReader(r io.Reader, name string) *Reader { return &Reader{r: r, name: name} }

// Read reads from the underlying reader.
func (s *Reader) Read(p []byte) (int, error) { return s.r.Read(p) }

// Close does nothing: the underlying reader belongs to the caller.
func (s *Reader) Close() error { return nil }

// Name returns the name given to NewReader.
func (s *Reader) Name() string { return s.name }
