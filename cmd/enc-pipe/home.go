package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// homeDir returns the embedded default's directory.
func (a *app) homeDir() (string, error) {
	if a.g.home != "" {
		return filepath.Clean(a.g.home), nil
	}
	return config.Home(a.getenv)
}

// permsMatter reports whether Unix permission bits and owners mean
// anything here (not on Windows).
const permsMatter = runtime.GOOS != "windows"

// checkHome refuses a home directory that other users can write (they
// could replace master.key with a key of theirs, and read what is then
// encrypted) or that another user owns, and warns, once per run, about one
// they can read or search. A missing home is left to the caller.
func (a *app) checkHome(home string) error {
	st, err := os.Stat(home)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return keyError(err, "cannot use ENC_PIPE_HOME")
	}
	if !st.IsDir() {
		return keyError(errors.New("not a directory"), "ENC_PIPE_HOME %s", home)
	}
	if !permsMatter {
		return nil
	}
	if uid, ok := fileOwner(st); ok && uid != os.Geteuid() {
		return keyError(fmt.Errorf("owned by uid %d, not by you (uid %d)", uid, os.Geteuid()),
			"ENC_PIPE_HOME %s must be yours: run 'chown %d %s' or use a home of your own", home, os.Geteuid(), home)
	}
	perm := st.Mode().Perm()
	if perm&0o022 != 0 {
		return keyError(fmt.Errorf("mode %#o", perm),
			"ENC_PIPE_HOME %s is writable by other users, who could replace master.key: run 'chmod 700 %s'", home, home)
	}
	if perm&0o077 != 0 && !a.homeWarned {
		a.homeWarned = true
		a.warnf("ENC_PIPE_HOME %s can be read or searched by other users (mode %#o): run 'chmod 700 %s'", home, perm, home)
	}
	return nil
}

// createMasterKey writes 32 random bytes to path with mode 0600, unless the
// file exists. It never replaces an existing key, even when two processes
// race: the key is written and fsynced under a temporary name and
// hard-linked into place, so path is either missing or complete. It
// reports whether it created the key.
func createMasterKey(path string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".master.key.tmp-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, err
	}
	var key [config.MasterKeySize]byte
	defer clear(key[:])
	if _, err := io.ReadFull(rand.Reader, key[:]); err != nil {
		tmp.Close()
		return false, err
	}
	_, err = tmp.Write(key[:])
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	return linkIntoPlace(tmp.Name(), path)
}

// createMetastore creates the SQLite metastore at path with Asherah's
// table, unless the file exists: the database is built under a temporary
// name (mode 0600, which SQLite gives its -wal and -shm files too), closed,
// and hard-linked into place, so that racing processes all end up using
// the one that won. It reports whether it created the metastore.
func createMetastore(ctx context.Context, path string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".metastore.db.tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(tmp + suffix)
		}
	}()
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	_, closeDB, err := openSQLiteStore(ctx, tmp)
	if err != nil {
		return false, err
	}
	if err := closeDB(); err != nil {
		return false, err
	}
	// The last connection's close checkpoints the write-ahead log into
	// the database file and removes it; a log left behind would hold part
	// of the database under a name that the link does not carry over.
	if st, err := os.Stat(tmp + "-wal"); err == nil && st.Size() > 0 {
		return false, fmt.Errorf("sqlite left a write-ahead log of %d bytes behind", st.Size())
	}
	if err := syncFile(tmp); err != nil {
		return false, err
	}
	return linkIntoPlace(tmp, path)
}

// linkIntoPlace hard-links the complete file tmp to path and fsyncs the
// directory. It reports false, without error, when path exists already
// (another process won the race).
func linkIntoPlace(tmp, path string) (bool, error) {
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	if err := sinks.SyncDir(filepath.Dir(path)); err != nil {
		return true, err
	}
	return true, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// createPrivate creates an empty file with mode 0600 at path unless it
// exists, so that a database created there later keeps that mode (SQLite
// creates files 0644 otherwise).
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return f.Close()
}

// errKeyFileRefused is the cause of a refused master key file.
var errKeyFileRefused = errors.New("refused")

// readMasterKey reads a static master key file into key, which must be
// MasterKeySize bytes of protected memory. As ssh does for a private key,
// it refuses a file that is a symbolic link, that another user owns, or
// that other users may access, with the fix in the message; and one that
// does not hold exactly MasterKeySize bytes.
func (a *app) readMasterKey(path string, key []byte) error {
	lst, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return keyError(err, "master key file %s is missing (run 'enc-pipe init' to create a new key, which cannot decrypt existing data)", path)
		}
		return keyError(err, "cannot read master key")
	}
	refuse := func(format string, args ...any) error {
		return &cliError{code: exitKey, msg: fmt.Sprintf(format, args...), err: errKeyFileRefused, terse: true}
	}
	switch {
	case lst.Mode()&fs.ModeSymlink != 0:
		return refuse("master key file %s is a symbolic link: enc-pipe reads only the file itself (move the key there, or name it with --kms static:FILE)", path)
	case !lst.Mode().IsRegular():
		return refuse("master key file %s is not a regular file", path)
	}
	if permsMatter {
		if uid, ok := fileOwner(lst); ok && uid != os.Geteuid() {
			return refuse("master key file %s is owned by uid %d, not by you (uid %d): run 'chown %d %s' if it is yours to use", path, uid, os.Geteuid(), os.Geteuid(), path)
		}
		if perm := lst.Mode().Perm(); perm&0o077 != 0 {
			return refuse("master key file %s is accessible by other users (mode %#o): run 'chmod 600 %s'", path, perm, path)
		}
	}
	f, err := openNoFollow(path)
	if err != nil {
		return keyError(err, "cannot read master key")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return keyError(err, "cannot read master key")
	}
	if !os.SameFile(st, lst) {
		return refuse("master key file %s changed while it was opened", path)
	}
	if st.Size() != config.MasterKeySize || len(key) != config.MasterKeySize {
		return keyError(fmt.Errorf("it holds %d bytes", st.Size()), "master key file %s must hold exactly %d bytes", path, config.MasterKeySize)
	}
	if _, err := io.ReadFull(f, key); err != nil {
		return keyError(err, "cannot read master key %s", path)
	}
	return nil
}
