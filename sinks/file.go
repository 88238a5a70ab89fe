package sinks

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// File is a [Sink] that writes a file atomically: the bytes go to a
// temporary file in the destination's directory, which Close fsyncs and
// moves into place, then fsyncs the directory. CloseWithError, or a failing
// Close, discards the temporary, so a failed or interrupted run never
// leaves a partial or truncated file, and an existing destination stays as
// it was.
//
// The temporary file. On Linux it is an unnamed file (O_TMPFILE) that has
// no name in any directory until Close links it: a run killed by SIGKILL
// leaves nothing behind. Close links it as the destination directly when
// no destination exists; to replace an existing file it links it as
// ".NAME.tmp-RANDOM" and renames that over NAME (no system call links a
// file over an existing name), so a complete, fsynced copy can remain under
// that name only if the process dies between those two calls. Elsewhere,
// and on Linux file systems without O_TMPFILE, the temporary is created as
// ".NAME.tmp-RANDOM" from the start and renamed on Close; a run killed by
// SIGKILL leaves it behind. [File.Unnamed] tells which is in use.
//
// Modes. A new file gets the mode of [WithPerm] (default 0600), reduced by
// the umask. A replaced file's permission bits are kept, and so are its
// owner and group where the process may set them (as root, or a group the
// user belongs to); if the group cannot be kept, the group bits are
// cleared rather than granted to another group. Set-id and sticky bits are
// never carried over. The temporary is never more accessible than the
// final file: it is created with the new file's mode, or with the
// intersection of that and the replaced file's mode.
//
// Links and special files. CreateFile refuses a destination that is a
// symbolic link (it would replace the link, not write to its target), a
// directory, or any other file that is not a regular file (see
// [OpenDevice]); Close refuses again if one of these took the
// destination's place meanwhile.
//
// Write-behind. Write copies into buffers of [DefaultFileBuffer] bytes
// (see [WithBuffer]) and hands each full one to a goroutine that writes
// it to the temporary file, so the caller, typically the goroutine that
// seals a stream's chunks, goes on while write(2) runs. At most
// [DefaultFileBuffers] buffers exist per File (see [WithWriteBehind]): 1
// MiB by default; a file smaller than one buffer uses one and starts no
// goroutine. The first error of a background write is sticky: the next
// Write returns it, or else Close, which then discards the temporary.
// Close writes what is buffered and waits for the goroutine before it
// fsyncs; CloseWithError stops it (after the write(2) in progress, if
// any) without writing the rest. The goroutine runs from the first full
// buffer until Close or CloseWithError, one of which must be called.
type File struct {
	mu      sync.Mutex
	f       *os.File
	wb      *writeBehind // nil when unbuffered
	path    string
	dir     string
	base    string
	tmp     string // the named temporary; "" while the file is unnamed
	unnamed bool
	fclosed bool // f was closed by place (a named temporary, before its rename)
	state   fileState
	err     error // sticky write error, or the result of Close/CloseWithError
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
	buffers int
}

// DefaultFileBuffer is the size of each write buffer of a File: writes
// reach the temporary file in pieces of this size, page-aligned, which
// costs the kernel less than many small writes (a 64 KiB chunk plus its
// tag is not page-aligned). Four buffers of a quarter MiB cost the same
// CPU as three of 1 MiB in a measurement of the sink alone (1 GiB to
// tmpfs: docs/PERFORMANCE.md, "The file sink alone") and hold less memory.
const DefaultFileBuffer = 256 << 10

// DefaultFileBuffers is the number of write buffers of a File: one being
// filled, one being written, and two that absorb an uneven pace on either
// side. With DefaultFileBuffer, a File holds at most 1 MiB.
const DefaultFileBuffers = 4

// DefaultFilePerm is the mode of a new file unless WithPerm says otherwise:
// only the owner may read it, as suits a file that may hold plaintext.
const DefaultFilePerm fs.FileMode = 0o600

// WithBuffer sets the size of each write buffer (default
// DefaultFileBuffer); 0 writes every Write straight through, in the
// caller's goroutine.
func WithBuffer(size int) FileOption {
	return func(o *fileOptions) { o.bufSize = max(size, 0) }
}

// WithWriteBehind sets the number of write buffers (default
// DefaultFileBuffers). With 2 or more, full buffers are written by a
// goroutine of the File while Write fills the next; with 1, Write writes
// each full buffer itself, as a bufio.Writer does. A File holds at most
// buffers × the buffer size (WithBuffer) of memory.
func WithWriteBehind(buffers int) FileOption {
	return func(o *fileOptions) { o.buffers = max(buffers, 1) }
}

// WithPerm sets the permission bits of a new file, before the umask
// (default DefaultFilePerm, 0600). It does not apply when an existing file
// is replaced: that file's mode is kept.
func WithPerm(perm fs.FileMode) FileOption {
	return func(o *fileOptions) { o.perm = perm & fs.ModePerm }
}

// ErrNotRegular is returned (wrapped) by CreateFile and Close when the
// destination exists and is not a regular file: a symbolic link, a
// directory, a device or a named pipe.
var ErrNotRegular = errors.New("sinks: not a regular file")

// CreateFile creates the temporary file for path and returns a File that
// commits to path on Close. path itself is not touched until Close. It
// fails if the directory of path does not exist or is not writable, and,
// with an error matching ErrNotRegular, if path exists and is not a regular
// file (see OpenDevice for devices and named pipes).
func CreateFile(path string, opts ...FileOption) (*File, error) {
	o := fileOptions{perm: DefaultFilePerm, bufSize: DefaultFileBuffer, buffers: DefaultFileBuffers}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("sinks: empty file name")
	}
	perm := o.perm
	old, err := existingRegular(path)
	if err != nil {
		return nil, err
	}
	if old != nil {
		perm &= old.Mode().Perm()
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	s := &File{path: path, dir: dir, base: base}
	if f, err := openUnnamed(dir, perm); err == nil {
		s.f, s.unnamed = f, true
	} else {
		f, tmp, err := createNamed(dir, base, perm)
		if err != nil {
			return nil, err
		}
		s.f, s.tmp = f, tmp
	}
	if o.bufSize > 0 {
		s.wb = newWriteBehind(s.f, o.bufSize, o.buffers)
	}
	return s, nil
}

// existingRegular returns the destination's information if it exists and
// is a regular file, nil if it does not exist, and an error otherwise.
func existingRegular(path string) (fs.FileInfo, error) {
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("sinks: %w", err)
	case st.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%w: %s is a symbolic link (it would be replaced, not written through)", ErrNotRegular, path)
	case st.IsDir():
		return nil, fmt.Errorf("%w: %s is a directory", ErrNotRegular, path)
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%w: %s is a device, pipe or socket (use OpenDevice)", ErrNotRegular, path)
	}
	return st, nil
}

// tempName returns a fresh ".BASE.tmp-RANDOM" path in dir.
func tempName(dir, base string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	return filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(rnd[:])), nil
}

// createNamed creates the named temporary file with mode perm.
func createNamed(dir, base string, perm fs.FileMode) (*os.File, string, error) {
	for range 100 {
		tmp, err := tempName(dir, base)
		if err != nil {
			return nil, "", err
		}
		f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("sinks: cannot create output in %s: %w", dir, err)
		}
		return f, tmp, nil
	}
	return nil, "", fmt.Errorf("sinks: cannot create a temporary file in %s", dir)
}

// Write writes to the temporary file, through the write buffers (see
// File). The first error, of this Write or of an earlier buffer's
// background write, is sticky. Write returns once p is copied; it waits
// only when every buffer is full or being written.
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
	if s.wb != nil {
		n, err = s.wb.Write(p)
	} else {
		n, err = s.f.Write(p)
	}
	if err != nil {
		s.err = err
	}
	return n, err
}

// Close commits: it writes what is buffered, waits for the write-behind
// goroutine, fsyncs the temporary, gives it the replaced file's
// mode and owner, moves it into place and fsyncs the directory. If a Write
// failed earlier, or any step before the move fails, the temporary is
// discarded and the error is returned. If only the directory fsync fails,
// the file is in place but may not survive a crash, and the error (matching
// ErrNotDurable) says so. Close after Close or CloseWithError returns the
// first result.
func (s *File) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != fileOpen {
		return s.closeResult()
	}
	err := s.err
	switch {
	case s.wb == nil:
	case err != nil:
		s.wb.abort()
	default:
		err = s.wb.finish()
	}
	if err == nil {
		err = s.f.Sync()
	}
	if err == nil {
		err = s.place()
	}
	if !s.fclosed {
		if cerr := s.f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		if s.tmp != "" {
			os.Remove(s.tmp)
		}
		s.state, s.err = fileAborted, err
		return err
	}
	s.state = fileCommitted
	if err := SyncDir(s.dir); err != nil {
		s.err = fmt.Errorf("%w: %s was written, but %w", ErrNotDurable, s.path, err)
		return s.err
	}
	return nil
}

// ErrNotDurable is returned (wrapped) by Close when the file was moved
// into place but its directory could not be fsynced: after a crash the
// destination may be missing or hold its previous content.
var ErrNotDurable = errors.New("sinks: output may not survive a crash")

// place moves the fsynced temporary to the destination. It runs with s.f
// still open (an unnamed file exists only through it).
func (s *File) place() error {
	for range 100 {
		old, err := existingRegular(s.path)
		if err != nil {
			return err
		}
		if old != nil {
			if err := keepModeAndOwner(s.f, old); err != nil {
				return fmt.Errorf("sinks: cannot give the output the mode of %s: %w", s.path, err)
			}
		}
		if !s.unnamed {
			// Windows cannot rename an open file.
			s.fclosed = true
			if err := s.f.Close(); err != nil {
				return err
			}
			return os.Rename(s.tmp, s.path)
		}
		if old == nil {
			err := linkUnnamed(s.f, s.path)
			if !errors.Is(err, fs.ErrExist) {
				return err
			}
			continue // created meanwhile: replace it, keeping its mode
		}
		if err := s.linkAsTemp(); err != nil {
			return err
		}
		if err := os.Rename(s.tmp, s.path); err != nil {
			return err
		}
		s.tmp = ""
		return nil
	}
	return fmt.Errorf("sinks: %s keeps changing", s.path)
}

// linkAsTemp gives the unnamed file a ".BASE.tmp-RANDOM" name.
func (s *File) linkAsTemp() error {
	for range 100 {
		tmp, err := tempName(s.dir, s.base)
		if err != nil {
			return err
		}
		err = linkUnnamed(s.f, tmp)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		s.tmp = tmp
		return nil
	}
	return fmt.Errorf("sinks: cannot name a temporary file in %s", s.dir)
}

// CloseWithError aborts: it stops the write-behind goroutine without
// writing the buffers it holds, then closes and discards the temporary
// file; the destination is left as it was. It is safe to call while another goroutine
// is in Write (it waits for that Write to return) and after Close (then it
// does nothing). It returns an error only if a named temporary could not be
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
	if s.wb != nil {
		s.wb.abort()
	}
	s.f.Close()
	s.state, s.err = fileAborted, cause
	if s.tmp == "" {
		return nil
	}
	if err := os.Remove(s.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sinks: cannot remove temporary file: %w", err)
	}
	return nil
}

func (s *File) closeResult() error {
	if s.state == fileCommitted {
		if errors.Is(s.err, ErrNotDurable) {
			return s.err
		}
		return nil
	}
	return s.err
}

// Name returns the destination path.
func (s *File) Name() string { return s.path }

// Unnamed reports whether the bytes go to an unnamed temporary file
// (O_TMPFILE), which no directory lists and which vanishes if the process
// dies before Close.
func (s *File) Unnamed() bool { return s.unnamed }

// TempName returns the path of the named temporary file the bytes go to
// until Close, or "" when the temporary is unnamed. It exists between
// CreateFile and Close or CloseWithError.
func (s *File) TempName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tmp
}
