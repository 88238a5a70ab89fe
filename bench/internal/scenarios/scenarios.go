// Package scenarios is the benchmark suite's plug-in point: every comparison
// that `make bench-report` runs is a Def in All. A Def names external
// commands for hyperfine (timed once per round, interleaved with every
// other scenario's commands), work done in-process once per round, commands
// whose peak memory is measured against input size, and the ratios and
// figures the report draws from them.
//
// To add a scenario, write a function returning a Def in a file of this
// package and list it in All. A scenario that cannot be measured yet (its
// code is not merged) is a Def with only ID, Group, Title and Todo: the
// report lists it as "not measured yet" with that reason, and no number.
package scenarios

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// Env is what a run gives every scenario: where things are and what to
// sweep. Paths are absolute.
type Env struct {
	Dir   string // work directory on tmpfs: inputs, keys, outputs
	Bin   string // directory of the built tools
	Repo  string // root of the enc-pipe repository
	Out   string // results directory of this run
	Input string // SIZE bytes of random data
	Size  int64
	NProc int
	Flags map[string]bool // CPU flags (results.ReportedFlags)

	Workers     []int   // worker counts to sweep (always holds 1 and NProc)
	Chunks      []int   // chunk sizes to sweep
	RecordSizes []int   // record sizes to sweep
	MemSizes    []int64 // input sizes of the memory pass
	RecordTime  time.Duration
	Quick       bool

	// Set by the common setup, before any scenario's Setup.
	Key     string // 32 raw bytes: epbench's data key
	AgeID   string // age X25519 identity file
	TinkKS  string // tink cleartext keyset file
	CLIHome string // ENC_PIPE_HOME of the enc-pipe CLI (static master key, SQLite)
	// SHA256 of Input, hex.
	InputSum string
}

// Tool returns the path of a built tool.
func (e *Env) Tool(name string) string { return e.Bin + "/" + name }

// Path returns a path in the work directory.
func (e *Env) Path(name string) string { return e.Dir + "/" + name }

// Def is one scenario. Every field but ID, Group and Title is optional.
type Def struct {
	ID, Group, Title string
	About            string // a sentence the report prints under the table
	// Todo, when set, marks the scenario as not measured yet; nothing else
	// is run.
	Todo string
	// Available returns why the scenario cannot run here (a missing tool,
	// server or CPU feature), or "" if it can.
	Available func(e *Env) string
	// Setup prepares inputs and checks that every tool round-trips, once,
	// before the rounds.
	Setup func(ctx context.Context, e *Env, x Exec) error
	// Teardown, when set, removes what Setup made outside the work
	// directory (topics, buckets). It runs at the end of the run, or when
	// it fails, once Setup has been called.
	Teardown func(ctx context.Context, e *Env, x Exec) error
	// Commands are timed by hyperfine, once per round each.
	Commands func(e *Env) []Command
	// PerRound runs in-process work once per round and returns its
	// measurements for that round (one sample each, Round set).
	PerRound func(ctx context.Context, e *Env, x Exec, round int) ([]results.Measurement, error)
	// Memory commands run once per input size of e.MemSizes under
	// /usr/bin/time -v, fed that many bytes on standard input.
	Memory func(e *Env) []MemCommand
	// Ratios and Figures go to the report as they are.
	Ratios  func(e *Env) []results.Ratio
	Figures []results.Figure
	Pivot   *results.Pivot
}

// Command is one command line for hyperfine (no shell).
type Command struct {
	Name, Label string
	Params      map[string]string
	Argv        []string
	// Stdout is the file standard output goes to, created anew for every
	// run ("" = /dev/null).
	Stdout string
	// Prepare runs before every timed run, untimed (no shell: one command
	// line, split on spaces).
	Prepare string
	Bytes   float64 // input bytes one run processes
	Records float64 // records one run processes (0: not a records scenario)
}

// MemCommand is a command whose peak RSS is measured at several input
// sizes: it reads n zero bytes on standard input, through Producer first
// if set (e.g. an encryptor, for a decryptor), and writes to /dev/null.
type MemCommand struct {
	Name, Label string
	Argv        []string
	Producer    []string
}

// Exec runs helper commands for setup and per-round work.
type Exec interface {
	// Run runs argv and returns its standard output; a non-zero exit is an
	// error carrying its standard error.
	Run(ctx context.Context, argv ...string) ([]byte, error)
	// Sum runs argv and returns the SHA-256 (hex) of its standard output,
	// without keeping it.
	Sum(ctx context.Context, argv ...string) (string, error)
	// Fails runs argv and returns an error unless it exits non-zero;
	// code, if non-zero, is the exit code it must have.
	Fails(ctx context.Context, code int, argv ...string) error
	// Time runs argv once under /usr/bin/time -v, standard output to
	// /dev/null, and returns its wall, user and system time (Round unset)
	// and its peak resident set size in KiB; a non-zero exit is an error.
	Time(ctx context.Context, argv ...string) (results.Sample, int64, error)
}

// All is every scenario, in report order.
func All() []Def {
	return []Def{
		FilesToNull(),
		FilesToFile(),
		ChunkSizes(),
		CLI(),
		Records(),
		Memory(),
		JSONLines(),
		Kafka(),
		S3(),
	}
}

// itoa is strconv.Itoa.
func itoa(n int) string { return strconv.Itoa(n) }

// sizeName is 64B, 4KiB, 1MiB, 1GiB.
func sizeName(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ge and le are goals.
func ge(v float64) *results.Goal { return &results.Goal{Op: ">=", Value: v} }
func le(v float64) *results.Goal { return &results.Goal{Op: "<=", Value: v} }
