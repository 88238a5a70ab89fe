//go:build unix

package main

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// umask returns the test process's umask, which the children inherit.
func umask() fs.FileMode {
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return fs.FileMode(m)
}

// filesFixture is a home with keys, a plaintext file and its encryption.
type filesFixture struct {
	dir, home, plain, ct, recs string
	data                       []byte
}

func newFilesFixture(t *testing.T) *filesFixture {
	t.Helper()
	dir := t.TempDir()
	f := &filesFixture{dir: dir, home: filepath.Join(dir, "home"), plain: filepath.Join(dir, "plain"),
		ct: filepath.Join(dir, "plain.ep"), recs: filepath.Join(dir, "recs.drr"), data: pseudoRandom(200000)}
	if err := os.WriteFile(f.plain, f.data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, command(t, f.home, "encrypt", "-i", f.plain, "-o", f.ct))
	rec := command(t, f.home, "records", "encrypt", "-o", f.recs)
	rec.Stdin = strings.NewReader(`{"secret":"plaintext"}` + "\n")
	mustRun(t, rec)
	return f
}

// Plaintext outputs (decrypt, records) are created 0600 and ciphertext
// (encrypt) 0666 less the umask, as cp or gzip would; replacing a file
// keeps its mode, so a 0600 file stays 0600 and a 0640 one 0640.
func TestOutputModes(t *testing.T) {
	f := newFilesFixture(t)
	cases := []struct {
		name string
		args []string
		new  fs.FileMode
	}{
		{"decrypt", []string{"decrypt", "-i", f.ct}, 0o600},
		{"records decrypt", []string{"records", "decrypt", "-i", f.recs}, 0o600},
		{"records encrypt", []string{"records", "encrypt", "-i", f.recs}, 0o600},
		{"encrypt", []string{"encrypt", "-i", f.plain}, 0o666 &^ umask()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			mustRun(t, command(t, f.home, append(c.args, "-o", out)...))
			if got := mode(t, out); got != c.new {
				t.Errorf("new output has mode %v, want %v", got, c.new)
			}
			for _, old := range []fs.FileMode{0o600, 0o640, 0o644, 0o400} {
				if err := os.Chmod(out, old); err != nil {
					t.Fatal(err)
				}
				mustRun(t, command(t, f.home, append(c.args, "-o", out)...))
				if got := mode(t, out); got != old {
					t.Errorf("replacing a %v file left %v", old, got)
				}
			}
		})
	}
}

func mode(t *testing.T, p string) fs.FileMode {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode()
}

// Outputs that name a file descriptor (/dev/stdout, /dev/stderr, /dev/fd/N,
// /proc/self/fd/N), devices and named pipes are written in place, through
// the descriptor the command was given (so ">>" appends); the names are
// never replaced by a regular file, also as root, who could replace them.
func TestOutputsWrittenInPlace(t *testing.T) {
	f := newFilesFixture(t)
	runTo := func(t *testing.T, out string, stdout, stderr, extra *os.File) result {
		t.Helper()
		cmd := command(t, f.home, "decrypt", "-i", f.ct, "-o", out)
		if stdout != nil {
			cmd.Stdout = stdout
		}
		if stderr != nil {
			cmd.Stderr = stderr
		}
		if extra != nil {
			cmd.ExtraFiles = []*os.File{extra}
		}
		return runCmd(t, cmd, nil)
	}
	fdNames := []string{"/dev/stdout", "/dev/stderr", "/dev/fd/3"}
	if runtime.GOOS == "linux" {
		fdNames = append(fdNames, "/proc/self/fd/3", "/proc/self/fd/1")
	}
	for _, name := range fdNames {
		for _, appendTo := range []bool{false, true} {
			sink := filepath.Join(t.TempDir(), "sink")
			prefix := []byte("already here\n")
			if err := os.WriteFile(sink, prefix, 0o600); err != nil {
				t.Fatal(err)
			}
			flags := os.O_WRONLY | os.O_TRUNC
			want := f.data
			if appendTo {
				flags = os.O_WRONLY | os.O_APPEND
				want = append(append([]byte{}, prefix...), f.data...)
			}
			sf, err := os.OpenFile(sink, flags, 0)
			if err != nil {
				t.Fatal(err)
			}
			var r result
			switch {
			case strings.HasSuffix(name, "stdout"), strings.HasSuffix(name, "/1"):
				r = runTo(t, name, sf, nil, nil)
			case strings.HasSuffix(name, "stderr"):
				r = runTo(t, name, nil, sf, nil)
			default:
				r = runTo(t, name, nil, nil, sf)
			}
			sf.Close()
			got, _ := os.ReadFile(sink)
			if r.code != 0 || !bytes.Equal(got, want) {
				t.Errorf("-o %s (append %v): exit %d, %d bytes in the file, want %d; stderr %q", name, appendTo, r.code, len(got), len(want), r.stderr)
			}
		}
		if st, err := os.Lstat(name); err == nil && st.Mode().IsRegular() {
			t.Errorf("%s became a regular file", name)
		}
	}

	// /dev/null and a named pipe: written in place, still what they were.
	if r := runTo(t, os.DevNull, nil, nil, nil); r.code != 0 {
		t.Errorf("-o %s: exit %d: %s", os.DevNull, r.code, r.stderr)
	}
	if st, err := os.Stat(os.DevNull); err != nil || st.Mode()&fs.ModeCharDevice == 0 {
		t.Errorf("%s is no longer a device: %v", os.DevNull, err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	testenv.Mkfifo(t, fifo)
	got := make(chan []byte, 1)
	go func() {
		r, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(r)
		r.Close()
		got <- b
	}()
	if r := runTo(t, fifo, nil, nil, nil); r.code != 0 {
		t.Errorf("-o FIFO: exit %d: %s", r.code, r.stderr)
	}
	if b := <-got; !bytes.Equal(b, f.data) {
		t.Errorf("the FIFO's reader got %d bytes, want %d", len(b), len(f.data))
	}
	if st, err := os.Lstat(fifo); err != nil || st.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v %v", st.Mode(), err)
	}

	// A link of one's own to /dev/stdout is written through, like the name.
	link := filepath.Join(t.TempDir(), "to-stdout")
	if err := os.Symlink("/dev/stdout", link); err != nil {
		t.Fatal(err)
	}
	cmd := command(t, f.home, "decrypt", "-i", f.ct, "-o", link)
	if r := runCmd(t, cmd, nil); r.code != 0 || r.stdout != string(f.data) {
		t.Errorf("-o link to /dev/stdout: exit %d, %d bytes on stdout: %s", r.code, len(r.stdout), r.stderr)
	}
}

// A symbolic link to a regular file is refused (exit 2) before anything is
// written: enc-pipe replaces files atomically, which would replace the
// link, and writing through links invites the classic symlink attack in
// shared directories. The link and its target stay as they were.
func TestSymlinkOutputRefused(t *testing.T) {
	f := newFilesFixture(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("target"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("target", link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink("nowhere", dangling); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{link, dangling} {
		for _, args := range [][]string{{"decrypt", "-i", f.ct}, {"encrypt", "-i", f.plain}, {"records", "decrypt", "-i", f.recs}} {
			r := runCmd(t, command(t, f.home, append(args, "-o", out)...), nil)
			if r.code != 2 || !strings.Contains(r.stderr, "symbolic link") || strings.Count(r.stderr, "\n") > 2 {
				t.Errorf("%v -o %s: exit %d, stderr %q; want 2 and a message about the link", args, filepath.Base(out), r.code, r.stderr)
			}
		}
	}
	if got, _ := os.ReadFile(target); string(got) != "target" {
		t.Errorf("the target was written: %q", got)
	}
	if to, err := os.Readlink(link); err != nil || to != "target" {
		t.Errorf("the link was replaced: %q %v", to, err)
	}
	if names := dirNames(t, dir); len(names) != 3 {
		t.Errorf("directory holds %v", names)
	}
}

// A closed standard output (">&-", which the Go runtime turns into
// /dev/null opened read-write) is an error before anything is read, not a
// silent exit 0; so is a standard output that is the input file
// ("encrypt -i f >> f", "< f >> f"), which would otherwise grow f for ever.
// Both exit 2 and leave f as it was.
func TestUnusableStdoutRefused(t *testing.T) {
	f := newFilesFixture(t)
	for _, c := range []struct{ name, script string }{
		{"closed stdout/decrypt", `"$0" decrypt -i "$1" >&-`},
		{"closed stdout/encrypt", `"$0" encrypt -i "$2" >&-`},
		{"closed stdout/records", `"$0" records decrypt -i "$3" >&-`},
		{"closed stdout/-o /dev/stdout", `"$0" decrypt -i "$1" -o /dev/stdout >&-`},
		{"closed stdout/inspect", `"$0" inspect "$1" >&-`},
		{"closed stdout/keys list", `"$0" keys list >&-`},
		{"closed stdout/version", `"$0" version >&-`},
		{"stdout is input/-i", `"$0" encrypt -i "$2" >> "$2"`},
		{"stdout is input/stdin", `"$0" encrypt < "$2" >> "$2"`},
		{"stdout is input/decrypt", `"$0" decrypt -i "$1" >> "$1"`},
		{"stdout is input/-o /dev/stdout", `"$0" encrypt -i "$2" -o /dev/stdout >> "$2"`},
		{"stdout is input/records", `"$0" records encrypt -i "$3" >> "$3"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := map[string][]byte{}
			for _, p := range []string{f.ct, f.plain, f.recs} {
				before[p], _ = os.ReadFile(p)
			}
			sh := command(t, f.home)
			sh.Path, sh.Args = "/bin/sh", []string{"sh", "-c", c.script, binPath, f.ct, f.plain, f.recs}
			r := runCmd(t, sh, nil)
			if r.code != 2 || strings.Count(r.stderr, "enc-pipe: error:") != 1 {
				t.Errorf("exit %d, stderr %q; want 2 and one error", r.code, r.stderr)
			}
			for p, b := range before {
				if got, _ := os.ReadFile(p); !bytes.Equal(got, b) {
					t.Errorf("%s changed from %d to %d bytes", filepath.Base(p), len(b), len(got))
				}
			}
		})
	}
}
