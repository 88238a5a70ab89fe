package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
	"github.com/enc-pipe/enc-pipe/bench/internal/scenarios"
)

// executor runs commands for the scenarios (scenarios.Exec) and for the
// timing and memory passes.
type executor struct {
	dir string // scratch files for /usr/bin/time output
}

var _ scenarios.Exec = (*executor)(nil)

func (x *executor) Run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, cmdError(argv, err, stderr.Bytes())
	}
	return out, nil
}

func (x *executor) Sum(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	h := sha256.New()
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = h, &stderr
	if err := cmd.Run(); err != nil {
		return "", cmdError(argv, err, stderr.Bytes())
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (x *executor) Fails(ctx context.Context, code int, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return fmt.Errorf("%s succeeded on a tampered input", strings.Join(argv, " "))
	case !errors.As(err, &ee):
		return fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
	case code != 0 && ee.ExitCode() != code:
		return fmt.Errorf("%s: exit code %d on a tampered input, want %d", strings.Join(argv, " "), ee.ExitCode(), code)
	}
	return nil
}

func cmdError(argv []string, err error, stderr []byte) error {
	msg := strings.TrimSpace(string(stderr))
	if len(msg) > 2000 {
		msg = msg[:2000] + "…"
	}
	return fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, msg)
}

// peakRSS runs c once (its Prepare first) under /usr/bin/time -v and
// returns the maximum resident set size in KiB.
func (x *executor) peakRSS(ctx context.Context, c scenarios.Command) (int64, error) {
	if c.Prepare != "" {
		if _, err := x.Run(ctx, strings.Fields(c.Prepare)...); err != nil {
			return 0, err
		}
	}
	report := filepath.Join(x.dir, "time-v.txt")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", "-o", report}, c.Argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if c.Stdout != "" {
		f, err := os.Create(c.Stdout)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return 0, cmdError(c.Argv, err, stderr.Bytes())
	}
	return readMaxRSS(report)
}

// pipeRSS feeds n zero bytes to c (through c.Producer if set) and returns
// c's maximum resident set size in KiB.
func (x *executor) pipeRSS(ctx context.Context, c scenarios.MemCommand, n int64) (int64, error) {
	report := filepath.Join(x.dir, "time-v.txt")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", "-o", report}, c.Argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	zeros := io.LimitReader(zeroReader{}, n)
	var prod *exec.Cmd
	if c.Producer != nil {
		prod = exec.CommandContext(ctx, c.Producer[0], c.Producer[1:]...)
		prod.Stdin = zeros
		prod.Stderr = &stderr
		pipe, err := prod.StdoutPipe()
		if err != nil {
			return 0, err
		}
		cmd.Stdin = pipe
		if err := prod.Start(); err != nil {
			return 0, err
		}
	} else {
		cmd.Stdin = zeros
	}
	err := cmd.Run()
	if prod != nil {
		if perr := prod.Wait(); err == nil && perr != nil {
			err = perr
		}
	}
	if err != nil {
		return 0, cmdError(c.Argv, err, stderr.Bytes())
	}
	return readMaxRSS(report)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// readMaxRSS reads "Maximum resident set size (kbytes): N" from the
// report of /usr/bin/time -v.
func readMaxRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Maximum resident set size (kbytes):"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no maximum resident set size", path)
}

// environment records the machine.
func environment(ctx context.Context, e *scenarios.Env) results.Env {
	env := results.Env{
		CPU: cpuModel(), NProc: e.NProc, Flags: e.Flags, MemTotal: memTotal(),
		LoadBefore: loadavg(), Start: time.Now().UTC(), Go: runtime.Version(),
	}
	if out, err := exec.CommandContext(ctx, "go", "version").Output(); err == nil {
		env.Go = strings.TrimSpace(strings.TrimPrefix(string(out), "go version "))
	}
	if out, err := exec.CommandContext(ctx, "uname", "-r").Output(); err == nil {
		env.Kernel = strings.TrimSpace(string(out))
	}
	if out, err := exec.CommandContext(ctx, "hyperfine", "--version").Output(); err == nil {
		env.Tools = append(env.Tools, strings.TrimSpace(string(out)))
	}
	git := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty")
	git.Dir = e.Repo
	if out, err := git.Output(); err == nil {
		env.Tools = append(env.Tools, "enc-pipe "+strings.TrimSpace(string(out)))
	}
	// The peer libraries' versions, from the bench module's go.mod.
	if out, err := exec.CommandContext(ctx, "go", "list", "-m", "filippo.io/age", "github.com/tink-crypto/tink-go/v2").Output(); err == nil {
		for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
			env.Tools = append(env.Tools, l)
		}
	}
	return env
}

func cpuInfo() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return string(b)
}

func cpuField(key string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuInfo()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func cpuModel() string { return cpuField("model name") }

// cpuFlags reports, for every flag the report names, whether the first
// CPU in /proc/cpuinfo has it.
func cpuFlags() map[string]bool {
	have := map[string]bool{}
	for _, f := range strings.Fields(cpuField("flags")) {
		have[f] = true
	}
	out := map[string]bool{}
	for _, f := range results.ReportedFlags {
		out[f] = have[f]
	}
	return out
}

func flagList(flags map[string]bool) string {
	var s []string
	for _, f := range results.ReportedFlags {
		if flags[f] {
			s = append(s, f)
		} else {
			s = append(s, "no "+f)
		}
	}
	return strings.Join(s, " ")
}

func cpuCount() int { return runtime.NumCPU() }

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(v)
			if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
				return fmt.Sprintf("%.0f GiB", kb/(1<<20))
			}
		}
	}
	return ""
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func writeRandom(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(f, io.LimitReader(rand.Reader, n), make([]byte, 1<<20)); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// parseSize parses 1G, 256M, 64K, 4096 (binary multiples).
func parseSize(s string) (int64, error) {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1<<10, t[:n-1]
		case 'M':
			mult, t = 1<<20, t[:n-1]
		case 'G':
			mult, t = 1<<30, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v <= 0 {
		return 0, errors.New("want a size such as 1G, 256M or 65536")
	}
	return v * mult, nil
}

// sizeArg is the inverse of parseSize: 1G, 256M, 64K or a byte count.
func sizeArg(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + "G"
	case n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "M"
	case n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// Time runs argv once under /usr/bin/time -v with standard output to
// /dev/null: the wall time is measured here around the run, user and
// system time come from the process's rusage (its children included),
// the peak RSS from time's report.
func (x *executor) Time(ctx context.Context, argv ...string) (results.Sample, int64, error) {
	report := filepath.Join(x.dir, "time-v.txt")
	cmd := exec.CommandContext(ctx, "/usr/bin/time", append([]string{"-v", "-o", report}, argv...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return results.Sample{}, 0, cmdError(argv, err, stderr.Bytes())
	}
	rss, err := readMaxRSS(report)
	if err != nil {
		return results.Sample{}, 0, err
	}
	st := cmd.ProcessState
	return results.Sample{Wall: wall.Seconds(), User: st.UserTime().Seconds(), Sys: st.SystemTime().Seconds()}, rss, nil
}
