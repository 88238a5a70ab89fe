package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// firstUseRounds is how often the first-use races run: the pipeline failed
// 3 times in 5 before decrypt waited for the header, so 20 rounds miss
// such a race with a chance of about 1e-8.
const firstUseRounds = 20

// The first command a new user types, "echo hi | enc-pipe encrypt |
// enc-pipe decrypt" with a new ENC_PIPE_HOME, works every time: decrypt
// needs no key until the header has arrived, and encrypt creates the home
// before it writes the header. The same holds for records.
func TestFirstUsePipeline(t *testing.T) {
	for _, c := range []struct{ name, script, want string }{
		{"stream", `echo hi | "$0" encrypt | "$0" decrypt`, "hi\n"},
		{"records", `echo '{"a":1}' | "$0" records encrypt | "$0" records decrypt`, "{\"a\":1}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range firstUseRounds {
				home := filepath.Join(t.TempDir(), "home")
				sh := exec.Command("sh", "-c", c.script, binPath)
				sh.Env = append(cleanEnv(), "ENC_PIPE_HOME="+home)
				r := runCmd(t, sh, nil)
				if r.code != 0 || r.stdout != c.want {
					t.Fatalf("round %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
				}
				if !strings.Contains(r.stderr, "created master.key and metastore.db") {
					t.Fatalf("round %d: no first-use notice: %q", i, r.stderr)
				}
			}
		})
	}
}

// Two encrypts started together on a new home both succeed and end with
// one master key and one metastore that both of them used: each output
// decrypts afterwards, every file of the home is private, and no temporary
// or half-written file is left. Each file's creation is announced by
// exactly one of the two.
func TestFirstUseRacingEncrypts(t *testing.T) {
	for i := range firstUseRounds {
		dir := t.TempDir()
		home := filepath.Join(dir, "home")
		plain := pseudoRandom(10000)
		type run struct {
			out []byte
			res result
		}
		runs := make([]run, 2)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for j := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := command(t, home, "encrypt", "--partition", "p")
				cmd.Stdin = bytes.NewReader(plain)
				var o, e bytes.Buffer
				cmd.Stdout, cmd.Stderr = &o, &e
				<-start
				err := cmd.Run()
				code := 0
				if ee, ok := err.(*exec.ExitError); ok {
					code = ee.ExitCode()
				} else if err != nil {
					code = -2
				}
				runs[j] = run{o.Bytes(), result{"", e.String(), code}}
			}()
		}
		close(start)
		wg.Wait()
		created := map[string]int{}
		for j, r := range runs {
			if r.res.code != 0 {
				t.Fatalf("round %d: encrypt %d: exit %d: %s", i, j, r.res.code, r.res.stderr)
			}
			for _, name := range []string{"master.key", "metastore.db"} {
				if strings.Contains(r.res.stderr, "created") && strings.Contains(r.res.stderr, name) {
					created[name]++
				}
			}
		}
		if created["master.key"] != 1 || created["metastore.db"] != 1 {
			t.Errorf("round %d: creations announced %v, want each file once: %q / %q", i, created, runs[0].res.stderr, runs[1].res.stderr)
		}
		for j, r := range runs {
			dec := command(t, home, "decrypt")
			if got := runCmd(t, dec, r.out); got.code != 0 || got.stdout != string(plain) {
				t.Fatalf("round %d: the output of encrypt %d does not decrypt: exit %d: %s", i, j, got.code, got.stderr)
			}
		}
		checkHomeFiles(t, home)
	}
}

// checkHomeFiles: the home holds master.key (32 bytes) and metastore.db
// (and SQLite's -wal/-shm), all private, and nothing else.
func checkHomeFiles(t *testing.T, home string) {
	t.Helper()
	ents, err := os.ReadDir(home)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		switch e.Name() {
		case "master.key":
			if info.Size() != 32 {
				t.Errorf("master.key holds %d bytes", info.Size())
			}
		case "metastore.db", "metastore.db-wal", "metastore.db-shm":
		default:
			t.Errorf("%s is left in the home", e.Name())
		}
		if runtime.GOOS != "windows" && info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for others", e.Name(), info.Mode())
		}
	}
	if st, err := os.Stat(home); err == nil && runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		t.Errorf("the home has mode %v", st.Mode())
	}
}
