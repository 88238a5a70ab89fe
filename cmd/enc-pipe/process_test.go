package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// command returns an enc-pipe command with its own ENC_PIPE_HOME.
func command(t *testing.T, home string, args ...string) *exec.Cmd {
	cmd := exec.Command(binPath, args...)
	cmd.Env = append(cleanEnv(), "ENC_PIPE_HOME="+home)
	return cmd
}

// cleanEnv is the environment without ENC_PIPE_* settings of the caller.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENC_PIPE_") {
			env = append(env, kv)
		}
	}
	return env
}

func mustRun(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", cmd.Args, err, out)
	}
}

// waitFor polls cond until it holds. It bounds the wait only to turn a hang
// into a failure; nothing is measured.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func exitCodeOf(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if err == nil {
		return 0
	}
	if !errors.As(err, &ee) {
		t.Fatalf("not an exit error: %v", err)
	}
	return ee.ExitCode()
}

func dirNames(t *testing.T, dir string) []string {
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

// A run reading a slow pipe is interrupted by SIGINT, SIGTERM, SIGHUP or
// SIGQUIT while it writes a file: it exits with 128 + the signal's number,
// says so in at most one line (no goroutine dump for SIGQUIT), and leaves
// neither the output nor a temporary file behind.
func TestInterruptedRunLeavesNoOutput(t *testing.T) {
	for _, c := range []struct {
		name string
		sig  syscall.Signal
		code int
		verb string
	}{
		{"SIGINT/encrypt", syscall.SIGINT, 130, "encrypt"},
		{"SIGTERM/encrypt", syscall.SIGTERM, 143, "encrypt"},
		{"SIGINT/decrypt", syscall.SIGINT, 130, "decrypt"},
		{"SIGTERM/records", syscall.SIGTERM, 143, "records encrypt"},
		{"SIGHUP/decrypt", syscall.SIGHUP, 129, "decrypt"},
		{"SIGHUP/encrypt", syscall.SIGHUP, 129, "encrypt"},
		{"SIGQUIT/decrypt", syscall.SIGQUIT, 131, "decrypt"},
		{"SIGQUIT/records", syscall.SIGQUIT, 131, "records decrypt"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			mustRun(t, command(t, home, "init"))
			out := filepath.Join(dir, "out", "result")
			if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			// What the slow writer sends first: for decrypt, the start of a
			// real stream (header and some chunks); otherwise plaintext.
			first := pseudoRandom(inFlight + 1)
			if c.verb == "decrypt" {
				enc := command(t, home, "encrypt", "--chunk-size", "4KiB", "--partition", "p")
				enc.Stdin = bytes.NewReader(pseudoRandom(2 * inFlight))
				ct, err := enc.Output()
				if err != nil {
					t.Fatal(err)
				}
				first = ct[:inFlight+1]
			}
			if c.verb == "records encrypt" {
				first = []byte(strings.Repeat(`{"a":1}`+"\n", inFlight/8+1))
			}
			if c.verb == "records decrypt" {
				enc := command(t, home, "records", "encrypt", "--partition", "p")
				enc.Stdin = strings.NewReader(strings.Repeat(`{"a":1}`+"\n", inFlight/100))
				recs, err := enc.Output()
				if err != nil {
					t.Fatal(err)
				}
				first = recs
			}
			args := append(strings.Fields(c.verb), "--partition", "p", "-o", out)
			cmd := command(t, home, args...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if _, err := stdin.Write(first); err != nil {
				t.Fatal(err)
			}
			// The pipe stays open: the command now waits for more input.
			waitForOutput(t, cmd.Process.Pid, filepath.Dir(out))
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			code := exitCodeOf(t, cmd.Wait())
			if code != c.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, c.code, stderr.String())
			}
			if names := dirNames(t, filepath.Dir(out)); len(names) != 0 {
				t.Errorf("left behind: %v", names)
			}
			if strings.Count(stderr.String(), "\n") > 1 || strings.Contains(stderr.String(), "goroutine") {
				t.Errorf("stderr: %q", stderr.String())
			}
		})
	}
}

// A reader that closes standard output early ("| head") ends the run
// quietly: no message, exit code 141, as if SIGPIPE had ended it.
func TestClosedStdoutEndsQuietly(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, pseudoRandom(4<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ct := filepath.Join(dir, "plain.ep")
	mustRun(t, command(t, home, "encrypt", "-i", plain, "-o", ct))

	for _, args := range [][]string{{"decrypt", "-i", ct}, {"encrypt", "-i", plain}} {
		cmd := command(t, home, args...)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(stdout, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
		stdout.Close()
		code := exitCodeOf(t, cmd.Wait())
		if code != 141 || stderr.Len() != 0 {
			t.Errorf("%v: exit code %d, stderr %q; want 141 and nothing", args, code, stderr.String())
		}
	}

	// The same through a shell pipeline: head's output is the plaintext's
	// first bytes and nothing is printed on stderr.
	sh := exec.Command("sh", "-c", `"$0" decrypt -i "$1" | head -c 100`, binPath, ct)
	sh.Env = append(cleanEnv(), "ENC_PIPE_HOME="+home)
	var stderr bytes.Buffer
	sh.Stderr = &stderr
	got, err := sh.Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, pseudoRandom(100)) || stderr.Len() != 0 {
		t.Errorf("head got %d bytes (want the first 100), stderr %q", len(got), stderr.String())
	}
}

// result is what a finished process left.
type result struct {
	stdout, stderr string
	code           int
}

// runCmd runs cmd with stdin (nil: no input) and returns its output and
// exit code; a process killed by a signal has code -1.
func runCmd(t *testing.T, cmd *exec.Cmd, stdin []byte) result {
	t.Helper()
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var o, e bytes.Buffer
	if cmd.Stdout == nil {
		cmd.Stdout = &o
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &e
	}
	err := cmd.Run()
	return result{o.String(), e.String(), exitCodeOf(t, err)}
}

// waitForOutput waits until the process pid has its output open in dir,
// after the caller has written it more input than fits in flight (the
// pipe's buffer, 64 KiB, plus the command's read-ahead from standard input,
// 256 KiB): the command has then read input, which it does only after
// opening its output. Where this process may look (as root, or where the
// command is dumpable) it also checks that an open file descriptor of the
// command leads into dir (an unnamed temporary has no directory entry);
// on systems without unnamed temporaries, that the named one exists.
func waitForOutput(t *testing.T, pid int, dir string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		waitFor(t, "the temporary output", func() bool { return len(dirNames(t, dir)) == 1 })
		return
	}
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	if _, err := os.ReadDir(fdDir); errors.Is(err, fs.ErrPermission) {
		return // not dumpable, and we are not root
	}
	waitFor(t, "the output to be opened", func() bool {
		ents, _ := os.ReadDir(fdDir)
		for _, e := range ents {
			if to, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && strings.HasPrefix(to, dir+string(filepath.Separator)) {
				return true
			}
		}
		return false
	})
}

// inFlight is more input than fits between a writer and the command's
// reads (see waitForOutput).
const inFlight = 1 << 20

// SIGKILL, which no program can catch, while decrypt writes plaintext to a
// file: on Linux the output is an unnamed file (O_TMPFILE) until it is
// complete, so nothing at all is left next to the output, not even a
// hidden temporary.
func TestKilledRunLeavesNoPlaintext(t *testing.T) {
	if runtime.GOOS != "linux" {
		testenv.Missing(t, "unnamed temporary files (O_TMPFILE) are Linux-only; elsewhere a killed run leaves a 0600 temporary")
	}
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	mustRun(t, command(t, home, "init"))
	enc := command(t, home, "encrypt", "--chunk-size", "4KiB")
	enc.Stdin = bytes.NewReader(pseudoRandom(2 * inFlight))
	ct, err := enc.Output()
	if err != nil {
		t.Fatal(err)
	}
	recEnc := command(t, home, "records", "encrypt")
	recEnc.Stdin = strings.NewReader(strings.Repeat(`{"secret":"plaintext"}`+"\n", inFlight/100))
	recs, err := recEnc.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		verb  string
		first []byte
	}{
		{"decrypt", ct[:inFlight+1]},
		{"records decrypt", recs},
	} {
		t.Run(c.verb, func(t *testing.T) {
			outDir := filepath.Join(t.TempDir(), "out")
			if err := os.Mkdir(outDir, 0o700); err != nil {
				t.Fatal(err)
			}
			cmd := command(t, home, append(strings.Fields(c.verb), "-o", filepath.Join(outDir, "plain"))...)
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := stdin.Write(c.first); err != nil {
				t.Fatal(err)
			}
			waitForOutput(t, cmd.Process.Pid, outDir)
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			if names := dirNames(t, outDir); len(names) != 0 {
				t.Errorf("a killed %s left %v next to its output", c.verb, names)
			}
		})
	}
}
