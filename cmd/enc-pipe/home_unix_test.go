//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// master.key is refused, as ssh refuses a private key, when other users
// could read it (any group or other permission bit), when it is a symbolic
// link, or when another user owns it; the message names the fix. Nothing is
// decrypted or encrypted meanwhile (exit 4, no output).
func TestMasterKeyRefusals(t *testing.T) {
	f := newFilesFixture(t)
	key := filepath.Join(f.home, "master.key")
	try := func(t *testing.T, what, fix string, extra ...string) {
		t.Helper()
		for _, args := range [][]string{{"decrypt", "-i", f.ct}, {"encrypt", "-i", f.plain}, {"keys", "list"}} {
			out := filepath.Join(t.TempDir(), "out")
			cmdArgs := append(append(append([]string{}, args...), extra...), "-o", out)
			if args[0] == "keys" {
				cmdArgs = append(append([]string{}, args...), extra...)
			}
			r := runCmd(t, command(t, f.home, cmdArgs...), nil)
			if r.code != 4 || !strings.Contains(r.stderr, fix) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
				t.Errorf("%s: %v: exit %d, stdout %d bytes, stderr %q; want 4 and one line with %q", what, args, r.code, len(r.stdout), r.stderr, fix)
			}
			if _, err := os.Stat(out); err == nil {
				t.Errorf("%s: %v wrote its output", what, args)
			}
		}
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o666} {
		if err := os.Chmod(key, mode); err != nil {
			t.Fatal(err)
		}
		try(t, "mode "+mode.String(), "chmod 600 "+key)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}

	real := filepath.Join(f.dir, "real.key")
	if err := os.Rename(key, real); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, key); err != nil {
		t.Fatal(err)
	}
	try(t, "symlink", "symbolic link")
	os.Remove(key)
	if err := os.Rename(real, key); err != nil {
		t.Fatal(err)
	}

	// Another user's key: as root, give it away; otherwise name a file
	// root owns with --kms.
	if os.Geteuid() == 0 {
		if err := os.Chown(key, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		try(t, "owned by another user", "chown")
		if err := os.Chown(key, 0, 0); err != nil {
			t.Fatal(err)
		}
	} else {
		var st syscall.Stat_t
		if err := syscall.Stat("/etc/passwd", &st); err != nil || st.Uid != 0 {
			testenv.Missing(t, "no root-owned /etc/passwd to stand for another user's key")
		}
		try(t, "owned by another user", "chown", "--kms", "static:/etc/passwd")
	}

	// Back to 0600 and ours: everything works again.
	mustRun(t, command(t, f.home, "decrypt", "-i", f.ct, "-o", filepath.Join(t.TempDir(), "ok")))
}

// ENC_PIPE_HOME that other users can write is refused (they could replace
// master.key); one they can only read or list is used, with one warning
// line per run that says how to close it.
func TestHomePermissions(t *testing.T) {
	f := newFilesFixture(t)
	for _, mode := range []os.FileMode{0o770, 0o707, 0o777} {
		if err := os.Chmod(f.home, mode); err != nil {
			t.Fatal(err)
		}
		r := runCmd(t, command(t, f.home, "decrypt", "-i", f.ct), nil)
		if r.code != 4 || !strings.Contains(r.stderr, "chmod 700 "+f.home) || r.stdout != "" {
			t.Errorf("home %v: exit %d, stderr %q; want 4 and the fix", mode, r.code, r.stderr)
		}
	}
	for _, mode := range []os.FileMode{0o750, 0o755, 0o701} {
		if err := os.Chmod(f.home, mode); err != nil {
			t.Fatal(err)
		}
		r := runCmd(t, command(t, f.home, "decrypt", "-i", f.ct), nil)
		if r.code != 0 || r.stdout != string(f.data) || strings.Count(r.stderr, "\n") != 1 ||
			!strings.HasPrefix(r.stderr, "enc-pipe: warning: ") || !strings.Contains(r.stderr, "chmod 700 "+f.home) {
			t.Errorf("home %v: exit %d, stderr %q; want success and one warning", mode, r.code, r.stderr)
		}
	}
	if err := os.Chmod(f.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, command(t, f.home, "decrypt", "-i", f.ct), nil); r.code != 0 || r.stderr != "" {
		t.Errorf("home 0700: exit %d, stderr %q", r.code, r.stderr)
	}
	checkHomeFiles(t, f.home)
}
