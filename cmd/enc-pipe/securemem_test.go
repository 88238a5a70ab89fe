package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
	"github.com/enc-pipe/enc-pipe/securebuf"
)

// --secure-memory pkey works where memory protection keys do (streams and
// records round-trip, version says pkey), and is a one-line usage error
// that writes nothing where they do not; auto uses them exactly when they
// are available. The test checks whichever the machine offers.
func TestSecureMemoryPKey(t *testing.T) {
	avail := securebuf.PKeyAvailable()
	if avail != nil && cpuHasPKU() && testenv.InCI() {
		t.Fatalf("the CPU has pku but memory protection keys do not work: %v", avail)
	}
	dir := t.TempDir()
	runCLI := func(args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(binPath, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "ENC_PIPE_HOME="+filepath.Join(dir, "home"), "ENC_PIPE_SECURE_MEMORY=")
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			code = ee.ExitCode()
		case err != nil:
			t.Fatal(err)
		}
		return o.String(), e.String(), code
	}
	out, _, code := runCLI("version")
	want := "secure memory: mprotect (--secure-memory auto); " + securebuf.ErrNoPKey.Error()
	if avail == nil {
		want = "secure memory: pkey (--secure-memory auto)\n"
	}
	if code != 0 || !strings.Contains(out, want) {
		t.Errorf("version (auto) exited %d with %q, want a line starting %q", code, out, want)
	}

	plain := []byte("records and streams under memory protection keys\n")
	if err := os.WriteFile(filepath.Join(dir, "plain.txt"), plain, 0o600); err != nil {
		t.Fatal(err)
	}
	if avail != nil {
		// Without protection keys, pkey is a usage error that says why,
		// given before anything is written: no home, no output.
		for _, args := range [][]string{
			{"encrypt", "--secure-memory", "pkey", "-i", "plain.txt", "-o", "p.ep"},
			{"records", "encrypt", "--secure-memory", "pkey", "-i", "plain.txt", "-o", "p.drr"},
			{"init", "--secure-memory", "pkey"},
			{"keys", "rotate", "--secure-memory", "pkey"},
			{"version", "--secure-memory", "pkey"},
		} {
			_, stderr, code := runCLI(args...)
			if code != 2 || !strings.Contains(stderr, "--secure-memory pkey: "+securebuf.ErrNoPKey.Error()) ||
				strings.Count(stderr, "enc-pipe: error:") != 1 || strings.Count(stderr, "\n") != 2 {
				t.Errorf("%v without protection keys: exit %d, stderr %q", args, code, stderr)
			}
		}
		if names := dirNames(t, dir); len(names) != 1 || names[0] != "plain.txt" {
			t.Errorf("refused runs wrote %v", names)
		}
		return
	}
	_, stderr, code := runCLI("encrypt", "--secure-memory", "pkey", "-i", "plain.txt", "-o", "p.ep")
	if code != 0 {
		t.Fatalf("encrypt --secure-memory pkey: exit %d: %s", code, stderr)
	}
	out, stderr, code = runCLI("decrypt", "--secure-memory", "pkey", "-i", "p.ep")
	if code != 0 || out != string(plain) {
		t.Fatalf("decrypt --secure-memory pkey: exit %d, %d bytes out: %s", code, len(out), stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte("{\"a\":1}\n{\"b\":\"two\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code = runCLI("records", "encrypt", "--secure-memory", "pkey", "-i", "in.jsonl", "-o", "r.drr"); code != 0 {
		t.Fatalf("records encrypt: exit %d: %s", code, stderr)
	}
	out, stderr, code = runCLI("records", "decrypt", "--secure-memory", "pkey", "-i", "r.drr")
	if code != 0 || out != "{\"a\":1}\n{\"b\":\"two\"}\n" {
		t.Fatalf("records decrypt: exit %d, %q: %s", code, out, stderr)
	}
	if out, _, _ = runCLI("version", "--secure-memory", "pkey"); !strings.Contains(out, "secure memory: pkey (--secure-memory pkey)\n") {
		t.Errorf("version --secure-memory pkey: %q", out)
	}
}

// cpuHasPKU reports whether /proc/cpuinfo lists the pku flag.
func cpuHasPKU() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			return strings.Contains(" "+v+" ", " pku ")
		}
	}
	return false
}
