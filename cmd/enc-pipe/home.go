package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/config"
)

// homeDir returns the embedded default's directory.
func (a *app) homeDir() (string, error) {
	if a.g.home != "" {
		return filepath.Clean(a.g.home), nil
	}
	return config.Home(a.getenv)
}

// createMasterKey writes 32 random bytes to path with mode 0600, unless the
// file exists. It never replaces an existing key, even when two processes
// race: the key is written to a temporary file and hard-linked into place.
// It reports whether it created the key.
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
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	syncDir(dir)
	return true, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// readMasterKey reads a static master key file into key, which must be
// MasterKeySize bytes of protected memory. It refuses files that are not
// exactly that size, and warns about files other users can read.
func (a *app) readMasterKey(path string, key []byte) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return keyError(err, "master key file %s is missing (run 'enc-pipe init' to create a new key, which cannot decrypt existing data)", path)
		}
		return keyError(err, "cannot read master key")
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return keyError(err, "cannot read master key")
	}
	if !st.Mode().IsRegular() || st.Size() != config.MasterKeySize || len(key) != config.MasterKeySize {
		return keyError(fmt.Errorf("it holds %d bytes", st.Size()), "master key file %s must hold exactly %d bytes", path, config.MasterKeySize)
	}
	if st.Mode().Perm()&0o077 != 0 {
		a.warnf("master key file %s is readable by other users (mode %#o): chmod 600 it", path, st.Mode().Perm())
	}
	if _, err := io.ReadFull(f, key); err != nil {
		return keyError(err, "cannot read master key %s", path)
	}
	return nil
}
