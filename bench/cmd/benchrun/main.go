// Command benchrun runs the benchmark suite of bench/internal/scenarios and
// writes results.json for cmd/benchreport. It follows
// streaming-design.md §4: the machine and its load are recorded; inputs
// live on tmpfs; every tool's output is checked to round-trip (and a
// tampered ciphertext to fail) before anything is timed; a warm-up round
// runs every command once under /usr/bin/time -v for its peak RSS; then
// every round runs every command once through hyperfine (interleaved, in
// an order rotated by one each round) plus the in-process work; a last
// pass measures peak RSS against input size.
//
//	benchrun [-quick] [-rounds N] [-size 1G] [-scenarios id,id] [-out DIR]
//
// ROUNDS, SIZE and QUICK in the environment set the defaults of -rounds,
// -size and -quick (make bench-report passes them through).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
	"github.com/enc-pipe/enc-pipe/bench/internal/scenarios"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
}

type options struct {
	rounds   int
	size     int64
	quick    bool
	dir, out string
	only     []string
	pause    time.Duration
	memSizes []int64
	keep     bool
	recTime  time.Duration
}

func parseFlags() (*options, error) {
	quick, _ := strconv.ParseBool(os.Getenv("QUICK"))
	fs := flag.NewFlagSet("benchrun", flag.ContinueOnError)
	q := fs.Bool("quick", quick, "smoke-check mode: small inputs, 2 rounds, short sweeps")
	rounds := fs.Int("rounds", 0, "interleaved rounds (default 7, quick 2; env ROUNDS)")
	size := fs.String("size", "", "size of the input file: 1G, 256M, ... (default 1G, quick 64M; env SIZE)")
	dir := fs.String("dir", "/dev/shm/encpipe-bench", "work directory for inputs and outputs (tmpfs)")
	out := fs.String("out", "results/tmp", "results directory (results.json, raw hyperfine and recbench output)")
	only := fs.String("scenarios", "", "comma-separated scenario ids to run (default all)")
	pause := fs.Duration("pause", -1, "pause before each round (default 1s, quick 0)")
	mem := fs.String("mem-sizes", "", "input sizes of the memory pass (default 64M,256M,1G,4G; quick 8M,32M)")
	recTime := fs.Duration("record-time", 0, "time per record cell and round (default 100ms, quick 20ms)")
	keep := fs.Bool("keep", false, "keep the work directory")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return nil, err
	}
	o := &options{quick: *q, dir: *dir, out: *out, keep: *keep, pause: *pause, recTime: *recTime}
	def := func(s, full, quick string) string {
		if s != "" {
			return s
		}
		if o.quick {
			return quick
		}
		return full
	}
	o.rounds = *rounds
	if o.rounds == 0 {
		n, err := strconv.Atoi(def(os.Getenv("ROUNDS"), "7", "2"))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("ROUNDS=%q: want a positive number", os.Getenv("ROUNDS"))
		}
		o.rounds = n
	}
	if *size == "" {
		*size = def(os.Getenv("SIZE"), "1G", "64M")
	}
	var err error
	if o.size, err = parseSize(*size); err != nil {
		return nil, fmt.Errorf("-size %q: %v", *size, err)
	}
	for _, s := range strings.Split(def(*mem, "64M,256M,1G,4G", "8M,32M"), ",") {
		n, err := parseSize(s)
		if err != nil {
			return nil, fmt.Errorf("-mem-sizes: %q: %v", s, err)
		}
		o.memSizes = append(o.memSizes, n)
	}
	if o.pause < 0 {
		o.pause = map[bool]time.Duration{false: time.Second, true: 0}[o.quick]
	}
	if o.recTime == 0 {
		o.recTime = map[bool]time.Duration{false: 100 * time.Millisecond, true: 20 * time.Millisecond}[o.quick]
	}
	if *only != "" {
		o.only = strings.Split(*only, ",")
	}
	return o, nil
}

func run(ctx context.Context) error {
	o, err := parseFlags()
	if err != nil {
		return err
	}
	for _, tool := range []string{"hyperfine", "/usr/bin/time", "go", "cat"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (apt-get install -y hyperfine time)", tool)
		}
	}
	benchDir, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(benchDir, "cmd", "benchrun")); err != nil {
		return errors.New("run from the bench/ directory of the repository")
	}
	outDir, err := filepath.Abs(o.out)
	if err != nil {
		return err
	}
	// A new run replaces the raw files of the last one.
	os.RemoveAll(filepath.Join(outDir, "hyperfine"))
	os.Remove(filepath.Join(outDir, "records.txt"))
	if err := os.MkdirAll(filepath.Join(outDir, "hyperfine"), 0o755); err != nil {
		return err
	}
	nproc := cpuCount()
	e := &scenarios.Env{
		Dir: o.dir, Bin: filepath.Join(o.dir, "bin"), Repo: filepath.Dir(benchDir), Out: outDir,
		Input: filepath.Join(o.dir, "input"), Size: o.size, NProc: nproc, Flags: cpuFlags(),
		Workers: uniq(1, nproc, 2*nproc), RecordTime: o.recTime, Quick: o.quick, MemSizes: o.memSizes,
		Chunks:      []int{4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20},
		RecordSizes: []int{64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20},
	}
	if o.quick {
		e.Workers = uniq(1, nproc)
		e.Chunks = []int{4 << 10, 64 << 10, 1 << 20}
		e.RecordSizes = []int{64, 1 << 10, 64 << 10, 1 << 20}
	}
	x := &executor{dir: o.dir}
	run := &results.Run{
		Env: environment(ctx, e),
		Config: results.Config{Rounds: o.rounds, SizeBytes: o.size, Quick: o.quick, Dir: o.dir,
			Command: fmt.Sprintf("make bench-report ROUNDS=%d SIZE=%s%s", o.rounds, sizeArg(o.size), map[bool]string{true: " QUICK=1"}[o.quick])},
	}
	logf("machine: %s, %d CPUs, flags %s; loadavg %s", run.Env.CPU, nproc, flagList(e.Flags), run.Env.LoadBefore)

	if err := prepare(ctx, e, x); err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(o.dir)
	}

	var ready []scenarios.Def
	for _, d := range scenarios.All() {
		if o.only != nil && !slices.Contains(o.only, d.ID) {
			continue
		}
		s := results.Scenario{ID: d.ID, Group: d.Group, Title: d.Title, About: d.About, Todo: d.Todo, Figures: d.Figures, Pivot: d.Pivot}
		if d.Todo == "" && d.Available != nil {
			s.Skipped = d.Available(e)
		}
		if d.Todo == "" && s.Skipped == "" {
			if d.Teardown != nil {
				// Servers outlive the run: remove what the setup made
				// even if it or a round fails.
				defer func() {
					tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
					defer cancel()
					if err := d.Teardown(tctx, e, x); err != nil {
						logf("teardown %s: %v", d.ID, err)
					}
				}()
			}
			if d.Setup != nil {
				logf("setup %s: round-trip and tamper checks", d.ID)
				if err := d.Setup(ctx, e, x); err != nil {
					return fmt.Errorf("scenario %s: %w", d.ID, err)
				}
			}
			if d.Ratios != nil {
				s.Ratios = d.Ratios(e)
			}
			ready = append(ready, d)
		}
		run.Scenarios = append(run.Scenarios, s)
	}
	scenarioOf := func(id string) *results.Scenario {
		for i := range run.Scenarios {
			if run.Scenarios[i].ID == id {
				return &run.Scenarios[i]
			}
		}
		panic("benchrun: no scenario " + id)
	}

	// Every hyperfine command of every ready scenario, in one list.
	type timed struct {
		cmd scenarios.Command
		s   *results.Scenario
	}
	var cmds []timed
	names := map[string]bool{}
	for _, d := range ready {
		if d.Commands == nil {
			continue
		}
		s := scenarioOf(d.ID)
		for _, c := range d.Commands(e) {
			if names[c.Name] {
				return fmt.Errorf("scenario %s: measurement name %q used twice", d.ID, c.Name)
			}
			names[c.Name] = true
			s.Measurements = append(s.Measurements, results.Measurement{Name: c.Name, Label: c.Label, Params: c.Params, Bytes: c.Bytes, Records: c.Records})
			cmds = append(cmds, timed{c, s})
		}
	}

	logf("warm-up round: %d commands once each under /usr/bin/time -v", len(cmds))
	for _, t := range cmds {
		rss, err := x.peakRSS(ctx, t.cmd)
		if err != nil {
			return fmt.Errorf("%s: %w", t.cmd.Name, err)
		}
		t.s.Measurement(t.cmd.Name).RSSKiB = rss
	}

	for r := 1; r <= o.rounds; r++ {
		if o.pause > 0 {
			time.Sleep(o.pause)
		}
		logf("round %d/%d, loadavg %s", r, o.rounds, loadavg())
		for i := range cmds {
			t := cmds[(i+r)%len(cmds)]
			smp, err := x.hyperfine(ctx, t.cmd, filepath.Join(outDir, "hyperfine", fmt.Sprintf("r%02d-%s.json", r, t.cmd.Name)))
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r, t.cmd.Name, err)
			}
			smp.Round = r
			m := t.s.Measurement(t.cmd.Name)
			m.Samples = append(m.Samples, smp)
		}
		for _, d := range ready {
			if d.PerRound == nil {
				continue
			}
			ms, err := d.PerRound(ctx, e, x, r)
			if err != nil {
				return fmt.Errorf("round %d, scenario %s: %w", r, d.ID, err)
			}
			s := scenarioOf(d.ID)
			for _, m := range ms {
				if have := s.Measurement(m.Name); have != nil {
					have.Samples = append(have.Samples, m.Samples...)
					continue
				}
				if names[m.Name] {
					return fmt.Errorf("scenario %s: measurement name %q used twice", d.ID, m.Name)
				}
				names[m.Name] = true
				s.Measurements = append(s.Measurements, m)
			}
		}
	}

	for _, d := range ready {
		if d.Memory == nil {
			continue
		}
		s := scenarioOf(d.ID)
		for _, size := range o.memSizes {
			logf("memory pass %s: %s input", d.ID, sizeArg(size))
			for _, c := range d.Memory(e) {
				rss, err := x.pipeRSS(ctx, c, size)
				if err != nil {
					return fmt.Errorf("memory %s at %d bytes: %w", c.Name, size, err)
				}
				s.Measurements = append(s.Measurements, results.Measurement{
					Name: c.Name + "-" + sizeArg(size), Label: c.Label, Bytes: float64(size), RSSKiB: rss,
					Params: map[string]string{"series": c.Label, "input": strconv.FormatInt(size, 10), "input_name": sizeArg(size)},
				})
			}
		}
	}

	run.Env.LoadAfter = loadavg()
	run.Env.End = time.Now().UTC()
	logf("done, loadavg %s", run.Env.LoadAfter)
	path := filepath.Join(outDir, "results.json")
	if err := run.Save(path); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

// prepare builds the tools, makes the input and the keys.
func prepare(ctx context.Context, e *scenarios.Env, x *executor) error {
	if err := os.MkdirAll(e.Bin, 0o755); err != nil {
		return err
	}
	logf("building bench tools and ./cmd/enc-pipe")
	if _, err := x.Run(ctx, "go", "build", "-o", e.Bin+"/", "./cmd/epbench", "./cmd/agebench", "./cmd/tinkbench", "./cmd/recbench",
		"./cmd/linefwd", "./cmd/kafkabench", "./cmd/s3bench"); err != nil {
		return err
	}
	cli := exec.CommandContext(ctx, "go", "build", "-o", e.Tool("enc-pipe"), "./cmd/enc-pipe")
	cli.Dir = e.Repo
	if out, err := cli.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/enc-pipe: %v: %s", err, out)
	}
	if st, err := os.Stat(e.Input); err != nil || st.Size() != e.Size {
		logf("writing %s of random data to %s", sizeArg(e.Size), e.Input)
		if err := writeRandom(e.Input, e.Size); err != nil {
			return err
		}
	}
	sum, err := x.Sum(ctx, "cat", e.Input) // also warms the page cache
	if err != nil {
		return err
	}
	e.InputSum = sum
	e.Key = e.Path("ep.key")
	e.AgeID = e.Path("age.id")
	e.TinkKS = e.Path("tink.ks")
	e.CLIHome = e.Path("cli-home")
	if err := writeRandom(e.Key, 32); err != nil {
		return err
	}
	os.RemoveAll(e.CLIHome)
	for _, argv := range [][]string{
		{e.Tool("agebench"), "-mode", "keygen", "-identity", e.AgeID},
		{e.Tool("tinkbench"), "-mode", "keygen", "-keyset", e.TinkKS},
		{e.Tool("enc-pipe"), "--home", e.CLIHome, "init"},
	} {
		if _, err := x.Run(ctx, argv...); err != nil {
			return err
		}
	}
	return nil
}

// hyperfine times one run of c.
func (x *executor) hyperfine(ctx context.Context, c scenarios.Command, jsonPath string) (results.Sample, error) {
	args := []string{"-N", "-r", "1", "-w", "0", "--style", "none", "--export-json", jsonPath, "-n", c.Name}
	if c.Prepare != "" {
		args = append(args, "--prepare", c.Prepare)
	}
	if c.Stdout != "" {
		args = append(args, "--output", c.Stdout)
	}
	args = append(args, quoteArgs(c.Argv))
	if _, err := x.Run(ctx, append([]string{"hyperfine"}, args...)...); err != nil {
		return results.Sample{}, err
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return results.Sample{}, err
	}
	var f struct {
		Results []struct {
			Times  []float64 `json:"times"`
			User   float64   `json:"user"`
			System float64   `json:"system"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return results.Sample{}, fmt.Errorf("%s: %w", jsonPath, err)
	}
	if len(f.Results) != 1 || len(f.Results[0].Times) != 1 {
		return results.Sample{}, fmt.Errorf("%s: want one result with one time", jsonPath)
	}
	res := f.Results[0]
	return results.Sample{Wall: res.Times[0], User: res.User, Sys: res.System}, nil
}

// quoteArgs joins argv for hyperfine, which splits a command line like a
// POSIX shell (without running one under -N).
func quoteArgs(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}();&|<>~#") {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchrun: "+format+"\n", args...)
}

func uniq(v ...int) []int {
	var out []int
	for _, x := range v {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
