package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sources"
)

// DirStore is a local directory tree. Objects are its regular files (other
// kinds, such as symbolic links, are not listed). Files are written
// atomically by sinks.CreateFile (parent directories are created), and a
// committed file takes the modification time of its source, as
// `aws s3 sync` does; Done compares that time.
type DirStore struct {
	Root string
	// FileOptions are passed to sinks.CreateFile.
	FileOptions []sinks.FileOption
	// Track, if set, is given every sink that Create returns, with the
	// object's name (so that an interruption can abort it).
	Track func(name string, s sinks.Sink)
}

var _ Store = (*DirStore)(nil)

// ErrUnsafeName is returned for an object name that is not a local path
// below the root (an S3 key such as "../x", "/x" or "a//b").
var ErrUnsafeName = errors.New("transfer: name cannot be a file below the destination directory")

// tempName matches the temporaries of sinks.File, which are never listed.
var tempName = regexp.MustCompile(`^\..+\.tmp-[0-9a-f]{12}$`)

func (d *DirStore) String() string { return d.Root }

// Location returns the path of name.
func (d *DirStore) Location(name string) string {
	return filepath.Join(d.Root, filepath.FromSlash(name))
}

func (d *DirStore) path(name string) (string, error) {
	p := filepath.FromSlash(name)
	if name == "" || name == "." || strings.Contains(name, "//") || strings.ContainsRune(name, 0) || !filepath.IsLocal(p) ||
		filepath.ToSlash(filepath.Clean(p)) != name {
		return "", fmt.Errorf("%w: %q", ErrUnsafeName, name)
	}
	return filepath.Join(d.Root, p), nil
}

// List walks the tree.
func (d *DirStore) List(ctx context.Context, fn func(Entry) error) error {
	return filepath.WalkDir(d.Root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !de.Type().IsRegular() || tempName.MatchString(de.Name()) {
			return nil
		}
		info, err := de.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(d.Root, p)
		if err != nil {
			return err
		}
		return fn(Entry{Name: filepath.ToSlash(rel), Size: info.Size(), ModTime: info.ModTime(), Version: fileVersion(info)})
	})
}

// Open opens a file.
func (d *DirStore) Open(_ context.Context, name string) (sources.Source, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return sources.OpenFile(p)
}

// Create creates the parent directories and an atomic file sink.
func (d *DirStore) Create(_ context.Context, name string, src Entry) (sinks.Sink, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o777); err != nil {
		return nil, err
	}
	f, err := sinks.CreateFile(p, d.FileOptions...)
	if err != nil {
		return nil, err
	}
	s := &stampedFile{File: f, mod: src}
	if d.Track != nil {
		d.Track(name, s)
	}
	return s, nil
}

// Done reports whether the file exists with the source's modification time.
func (d *DirStore) Done(_ context.Context, name string, src Entry) (bool, error) {
	p, err := d.path(name)
	if err != nil {
		return false, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Mode().IsRegular() && st.ModTime().Equal(src.ModTime), nil
}

// stampedFile gives a committed file its source's modification time.
type stampedFile struct {
	*sinks.File
	mod Entry
}

func (s *stampedFile) Close() error {
	if err := s.File.Close(); err != nil {
		return err
	}
	if err := os.Chtimes(s.Name(), s.mod.ModTime, s.mod.ModTime); err != nil {
		return fmt.Errorf("transfer: cannot set the modification time of %s: %w", s.Name(), err)
	}
	return nil
}
