package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/testenv"
)

// The CLI turns core dumps off before it touches a key: RLIMIT_CORE 0
// (soft and hard, so it cannot be raised again) and not dumpable (which
// also keeps debuggers of the same user out, and makes the kernel give the
// process's /proc files to root). --allow-core-dumps, or
// ENC_PIPE_ALLOW_CORE_DUMPS=1, keeps both for debugging. Seen from
// outside: /proc/PID/limits and the owner of /proc/PID/status of a running
// encrypt. As root the child runs as nobody, so that the owner tells.
func TestCoreDumpsDisabled(t *testing.T) {
	dir, err := os.MkdirTemp("", "enc-pipe-coredump-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	uid := uint32(os.Geteuid())
	var cred *syscall.Credential
	if uid == 0 {
		uid = 65534
		cred = &syscall.Credential{Uid: uid, Gid: uid}
		if err := os.Chown(dir, int(uid), int(uid)); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		name    string
		args    []string
		env     string
		allowed bool
	}{
		{"default", nil, "", false},
		{"--allow-core-dumps", []string{"--allow-core-dumps"}, "", true},
		{"ENC_PIPE_ALLOW_CORE_DUMPS=1", nil, "ENC_PIPE_ALLOW_CORE_DUMPS=1", true},
		{"ENC_PIPE_ALLOW_CORE_DUMPS=0", nil, "ENC_PIPE_ALLOW_CORE_DUMPS=0", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			// The shell raises the soft limit to the hard one, so that a
			// limit of 0 is the command's doing.
			args := append([]string{"-c", `ulimit -S -c "$(ulimit -H -c)" && exec "$0" "$@"`, binPath, "encrypt", "--chunk-size", "4KiB"}, c.args...)
			cmd := exec.Command("/bin/sh", args...)
			cmd.Env = append(cleanEnv(), "ENC_PIPE_HOME="+filepath.Join(dir, "home"+string(rune('a'+i))))
			if c.env != "" {
				cmd.Env = append(cmd.Env, c.env)
			}
			cmd.Dir = dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			// Once the header and the first chunk are out, the command has
			// its keys: whatever it does about core dumps is done.
			stdin.Write(pseudoRandom(4097))
			if _, err := io.ReadFull(stdout, make([]byte, 100+4112)); err != nil {
				t.Fatalf("no ciphertext: %v; stderr %q", err, stderr.String())
			}
			soft, hard := coreLimit(t, cmd.Process.Pid)
			var st syscall.Stat_t
			if err := syscall.Stat(filepath.Join("/proc", itoa(cmd.Process.Pid), "status"), &st); err != nil {
				t.Fatal(err)
			}
			stdin.Close()
			io.Copy(io.Discard, stdout)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("encrypt: %v; stderr %q", err, stderr.String())
			}
			if c.allowed {
				if soft == "0" {
					testenv.Missing(t, "the hard core size limit is 0: a kept limit cannot be told from a lowered one")
				}
				if soft != hard || st.Uid != uid {
					t.Errorf("core dumps allowed: limits %s/%s, /proc/PID owned by %d; want the inherited limits and owner %d", soft, hard, st.Uid, uid)
				}
			} else if soft != "0" || hard != "0" || st.Uid != 0 {
				t.Errorf("core dumps not turned off: limits %s/%s, /proc/PID owned by %d; want 0/0 and root (not dumpable)", soft, hard, st.Uid)
			}
		})
	}
}

// coreLimit returns the soft and hard "Max core file size" of pid.
func coreLimit(t *testing.T, pid int) (soft, hard string) {
	f, err := os.Open(filepath.Join("/proc", itoa(pid), "limits"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max core file size"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 2 {
				return fields[0], fields[1]
			}
		}
	}
	t.Fatalf("no core size limit in /proc/%d/limits", pid)
	return "", ""
}

func itoa(n int) string { return strconv.Itoa(n) }
