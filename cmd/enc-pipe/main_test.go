package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// binPath is the enc-pipe binary built by TestMain: the tests drive the real
// program through pipes and files, as a user would.
var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enc-pipe-test-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Reachable by every user: a test runs the binary as another one.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "enc-pipe")
	build := exec.Command("go", "build", "-o", binPath, ".")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building enc-pipe: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestScripts runs testdata/*.txtar: each is a shell-like script run in a
// fresh directory with its own ENC_PIPE_HOME.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("PATH", filepath.Dir(binPath)+string(os.PathListSeparator)+env.Getenv("PATH"))
			env.Setenv("HOME", filepath.Join(env.WorkDir, "userhome"))
			env.Setenv("ENC_PIPE_HOME", filepath.Join(env.WorkDir, "home"))
			env.Setenv("VECTORS", vectorsDir(t))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits":    cmdExits,
			"gen":      cmdGen,
			"flipbyte": cmdFlipByte,
			"truncate": cmdTruncate,
			"perm":     cmdPerm,
			"size":     cmdSize,
			"nofiles":  cmdNoFiles,
			"slice":    cmdSlice,
			"prefixof": cmdPrefixOf,
		},
	})
}

// exits CODE PROG ARGS...: run PROG and require exit code CODE; stdout and
// stderr are kept for the following stdout/stderr checks.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		got = ee.ExitCode()
	case err != nil:
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("exit code %d, want %d", got, want)
	}
}

// gen SIZE FILE: write SIZE deterministic pseudo-random bytes to FILE.
func cmdGen(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: gen SIZE FILE")
	}
	n, err := strconv.Atoi(args[0])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), pseudoRandom(n), 0o644))
}

func pseudoRandom(n int) []byte {
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// flipbyte FILE OFFSET: invert one byte (OFFSET < 0 counts from the end).
func cmdFlipByte(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: flipbyte FILE OFFSET")
	}
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0xff
	ts.Check(os.WriteFile(p, b, 0o644))
}

// truncate FILE SIZE: cut FILE to SIZE bytes (SIZE < 0: remove -SIZE bytes).
func cmdTruncate(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: truncate FILE SIZE")
	}
	p := ts.MkAbs(args[0])
	n, err := strconv.ParseInt(args[1], 10, 64)
	ts.Check(err)
	if n < 0 {
		st, err := os.Stat(p)
		ts.Check(err)
		n += st.Size()
	}
	ts.Check(os.Truncate(p, n))
}

// perm FILE MODE: FILE's permission bits are MODE (octal).
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: perm FILE MODE")
	}
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	want, err := strconv.ParseUint(args[1], 8, 32)
	ts.Check(err)
	if got := st.Mode().Perm(); (got == fs.FileMode(want)) == neg {
		ts.Fatalf("%s has mode %#o, want %s%#o", args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

// size FILE N: FILE is N bytes long.
func cmdSize(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: size FILE N")
	}
	st, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if strconv.FormatInt(st.Size(), 10) == args[1] == neg {
		ts.Fatalf("%s is %d bytes", args[0], st.Size())
	}
}

// nofiles DIR GLOB: no file in DIR matches GLOB (temporaries left behind).
func cmdNoFiles(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: nofiles DIR GLOB")
	}
	m, err := filepath.Glob(filepath.Join(ts.MkAbs(args[0]), args[1]))
	ts.Check(err)
	if (len(m) == 0) == neg {
		ts.Fatalf("files matching %s: %v", args[1], m)
	}
}

// vectorsDir is the Asherah conformance vectors directory.
func vectorsDir(t testing.TB) string {
	p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "asherah-vectors"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// slice FILE OFFSET LENGTH OUT: write LENGTH bytes of FILE from OFFSET to OUT.
func cmdSlice(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 4 {
		ts.Fatalf("usage: slice FILE OFFSET LENGTH OUT")
	}
	b, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	off, err := strconv.Atoi(args[1])
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	ts.Check(os.WriteFile(ts.MkAbs(args[3]), b[off:off+n], 0o644))
}

// prefixof GOT FILE MAX: GOT is a prefix of FILE of at most MAX bytes.
func cmdPrefixOf(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 3 {
		ts.Fatalf("usage: prefixof GOT FILE MAX")
	}
	got, err := os.ReadFile(ts.MkAbs(args[0]))
	ts.Check(err)
	all, err := os.ReadFile(ts.MkAbs(args[1]))
	ts.Check(err)
	max, err := strconv.Atoi(args[2])
	ts.Check(err)
	if !bytes.HasPrefix(all, got) {
		ts.Fatalf("%s (%d bytes) is not a prefix of %s", args[0], len(got), args[1])
	}
	if len(got) > max {
		ts.Fatalf("%s is %d bytes, more than %d", args[0], len(got), max)
	}
}
