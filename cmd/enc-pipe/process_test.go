package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
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

// A run reading a slow pipe is interrupted by SIGINT or SIGTERM while it
// writes a file: it exits 130 or 143, says so in at most one line, and
// leaves neither the output nor its temporary file behind.
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
			first := pseudoRandom(300000)
			if c.verb == "decrypt" {
				enc := command(t, home, "encrypt", "--chunk-size", "4KiB", "--partition", "p")
				enc.Stdin = bytes.NewReader(pseudoRandom(1 << 20))
				ct, err := enc.Output()
				if err != nil {
					t.Fatal(err)
				}
				first = ct[:300000]
			}
			if c.verb == "records encrypt" {
				first = []byte(strings.Repeat(`{"a":1}`+"\n", 1000))
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
			waitFor(t, "the temporary output", func() bool { return len(dirNames(t, filepath.Dir(out))) == 1 })
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
