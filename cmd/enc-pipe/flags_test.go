package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Every command, given a bad flag or a bad setting in the environment,
// exits 2 with one error line and writes nothing: no ENC_PIPE_HOME, no
// output, nothing in the working directory.
func TestBadFlagsWriteNothing(t *testing.T) {
	commands := [][]string{
		{"encrypt", "-i", "in", "-o", "out"},
		{"decrypt", "-i", "in", "-o", "out"},
		{"records", "encrypt", "-i", "in", "-o", "out"},
		{"records", "decrypt", "-i", "in", "-o", "out"},
		{"inspect", "in"},
		{"keys", "list"},
		{"keys", "rotate"},
		{"keys", "revoke", "--partition", "p"},
		{"keys", "shred", "--partition", "p", "--yes-destroy-data"},
		{"init"},
		{"version"},
	}
	global := [][]string{
		{"--bogus"},
		{"--secure-memory", "none"},
		{"--key-access", "sometimes"},
		{"--metastore", "redis://x"},
		{"--kms", "vault:x"},
		{"--allow-core-dumps=maybe"},
		{"--service", ""},
	}
	if securebuf.PKeyAvailable() != nil {
		global = append(global, []string{"--secure-memory", "pkey"})
	}
	envs := []string{
		"ENC_PIPE_SECURE_MEMORY=none",
		"ENC_PIPE_KEY_ACCESS=sometimes",
		"ENC_PIPE_ALLOW_CORE_DUMPS=maybe",
	}
	perCommand := map[string][][]string{
		"encrypt":         {{"--chunk-size", "3"}, {"--workers", "-1"}, {"--compress", "lz4"}, {"--meta", "novalue"}, {"--progress", "--no-progress"}, {"--partition", ""}, {"extra", "args", "here"}},
		"decrypt":         {{"--range", "x"}, {"--workers", "-1"}, {"--partition", ""}},
		"records encrypt": {{"--fields", ","}, {"--partition-field", "t", "--partition", "p"}},
		"records decrypt": {{"--base64", "--fields", "a"}},
		"keys shred":      {{"--partition", ""}},
	}
	check := func(t *testing.T, args, env []string) {
		t.Helper()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "in"), []byte("input\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := command(t, filepath.Join(dir, "home"), args...)
		cmd.Dir = dir
		cmd.Env = append(cmd.Env, env...)
		r := runCmd(t, cmd, nil)
		if r.code != 2 || strings.Count(r.stderr, "enc-pipe: error:") != 1 {
			t.Errorf("%v %v: exit %d, stderr %q; want 2 and one error", env, args, r.code, r.stderr)
		}
		if names := dirNames(t, dir); len(names) != 1 {
			t.Errorf("%v %v wrote %v", env, args, names)
		}
	}
	for _, c := range commands {
		name := strings.Join(c[:len(c)-countFlagsAndFiles(c)], " ")
		for _, bad := range append(global, perCommand[name]...) {
			check(t, append(append([]string{}, c...), bad...), nil)
		}
		for _, e := range envs {
			check(t, c, []string{e})
		}
	}
}

// countFlagsAndFiles counts the arguments of c after its command words.
func countFlagsAndFiles(c []string) int {
	for i, a := range c {
		if strings.HasPrefix(a, "-") || a == "in" {
			return len(c) - i
		}
	}
	return 0
}
