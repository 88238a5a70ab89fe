// Package results is the file format between cmd/benchrun, which measures,
// and cmd/benchreport, which turns a run into Markdown tables and SVG
// figures: the machine, the scenarios (including those not measured yet),
// every sample of every round, and the ratios and figures each scenario
// asks for. It also holds the statistics both sides agree on: medians over
// rounds, and ratios taken per round before the median.
package results

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"time"
)

// Run is one run of the benchmark suite: results.json.
type Run struct {
	Env       Env        `json:"env"`
	Config    Config     `json:"config"`
	Scenarios []Scenario `json:"scenarios"`
}

// Env describes the machine and its load.
type Env struct {
	CPU        string          `json:"cpu"`         // model name
	NProc      int             `json:"nproc"`       // online CPUs
	Flags      map[string]bool `json:"flags"`       // selected /proc/cpuinfo flags, present or not
	MemTotal   string          `json:"mem_total"`   // from /proc/meminfo
	Kernel     string          `json:"kernel"`      // uname -r
	Go         string          `json:"go"`          // go version
	Tools      []string        `json:"tools"`       // "hyperfine 1.15.0", "filippo.io/age v1.3.2", ...
	LoadBefore string          `json:"load_before"` // /proc/loadavg before the first round
	LoadAfter  string          `json:"load_after"`  // and after the last
	Start      time.Time       `json:"start"`
	End        time.Time       `json:"end"`
}

// ReportedFlags are the CPU flags every figure and table names.
var ReportedFlags = []string{"aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx2", "avx512f", "pku"}

// Config is how the run was made.
type Config struct {
	Rounds    int    `json:"rounds"`
	SizeBytes int64  `json:"size_bytes"` // input file size of the file scenarios
	Quick     bool   `json:"quick"`
	Dir       string `json:"dir"`     // where inputs lived (tmpfs)
	Command   string `json:"command"` // how to reproduce
}

// Scenario is one comparison: a set of measurements taken in the same
// interleaved rounds, the ratios between them and the figures drawn from
// them. A scenario with Todo set was not measured: the report lists it as
// such, with Todo as the reason; Skipped is the same for a scenario that
// exists but could not run on this machine or in this mode.
type Scenario struct {
	ID           string        `json:"id"`
	Group        string        `json:"group"` // report section
	Title        string        `json:"title"`
	About        string        `json:"about,omitempty"` // a sentence under the table
	Todo         string        `json:"todo,omitempty"`
	Skipped      string        `json:"skipped,omitempty"`
	Measurements []Measurement `json:"measurements,omitempty"`
	Ratios       []Ratio       `json:"ratios,omitempty"`
	Figures      []Figure      `json:"figures,omitempty"`
	// Pivot, when set, shows the measurements as a table with a row per
	// value of one parameter and a column per value of another, instead
	// of a row per measurement.
	Pivot *Pivot `json:"pivot,omitempty"`
}

// Pivot lays out a scenario's table: Metric of the measurement whose
// parameters Row and Col have the row's and the column's value.
type Pivot struct {
	Row      string `json:"row"`
	RowLabel string `json:"row_label"`
	Col      string `json:"col"`
	Metric   string `json:"metric"`
}

// Measurement is one command or in-process operation.
type Measurement struct {
	Name   string            `json:"name"`
	Label  string            `json:"label"`
	Params map[string]string `json:"params,omitempty"`
	// Bytes and Records are the work one sample stands for: Wall is the
	// time per that much work.
	Bytes   float64  `json:"bytes"`
	Records float64  `json:"records,omitempty"`
	Samples []Sample `json:"samples,omitempty"`
	// RSSKiB is the peak resident set size of one run (/usr/bin/time -v),
	// 0 if not measured.
	RSSKiB int64 `json:"rss_kib,omitempty"`
	// NotAvailable says why this was not measured here (e.g. pkey on a CPU
	// without protection keys); Samples is then empty.
	NotAvailable string `json:"not_available,omitempty"`
}

// Sample is one round's timing.
type Sample struct {
	Round int     `json:"round"`
	Wall  float64 `json:"wall_s"`
	User  float64 `json:"user_s,omitempty"`
	Sys   float64 `json:"sys_s,omitempty"`
}

// Ratio compares two measurements of the run (of any scenario) round by
// round.
type Ratio struct {
	Num string `json:"num"`
	// Den names one measurement, or several: then each round uses the
	// slowest of them (a pipeline cannot beat its slowest stage).
	Den []string `json:"den"`
	// Time makes the ratio one of times (num time / den time) instead of
	// throughputs (num MB/s / den MB/s).
	Time  bool   `json:"time,omitempty"`
	Goal  *Goal  `json:"goal,omitempty"`
	Label string `json:"label,omitempty"`
}

// Goal is a target for a ratio's median.
type Goal struct {
	Op    string  `json:"op"` // ">=" or "<="
	Value float64 `json:"value"`
}

// Met reports whether v meets the goal.
func (g Goal) Met(v float64) bool {
	if g.Op == "<=" {
		return v <= g.Value
	}
	return v >= g.Value
}

func (g Goal) String() string {
	op := "≥"
	if g.Op == "<=" {
		op = "≤"
	}
	return op + " " + strconv.FormatFloat(g.Value, 'f', -1, 64)
}

// Metric names what a figure plots.
const (
	MetricMBps     = "MB/s"      // Bytes / Wall / 1e6, median over rounds
	MetricRecordsS = "records/s" // Records / Wall, median over rounds
	MetricRSSMiB   = "RSS MiB"   // RSSKiB / 1024
	MetricMicros   = "µs/op"     // Wall * 1e6, median over rounds
)

// Figure is a line plot of one metric against a numeric parameter, one line
// per value of the Series parameter, over the scenario's measurements that
// have every Where parameter.
type Figure struct {
	File   string            `json:"file"` // base name, .svg
	Title  string            `json:"title"`
	X      string            `json:"x"` // parameter holding x (a number)
	XLabel string            `json:"x_label"`
	Series string            `json:"series"` // parameter naming the line
	Where  map[string]string `json:"where,omitempty"`
	Metric string            `json:"metric"`
	LogX   bool              `json:"log_x,omitempty"`
	LogY   bool              `json:"log_y,omitempty"`
}

// Load reads a results.json.
func Load(path string) (*Run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Run
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Save writes r as indented JSON.
func (r *Run) Save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Measurement returns the measurement called name, in any scenario
// (names are unique in a run), or nil.
func (r *Run) Measurement(name string) *Measurement {
	for i := range r.Scenarios {
		if m := r.Scenarios[i].Measurement(name); m != nil {
			return m
		}
	}
	return nil
}

// Measurement returns the scenario's measurement called name, or nil.
func (s *Scenario) Measurement(name string) *Measurement {
	for i := range s.Measurements {
		if s.Measurements[i].Name == name {
			return &s.Measurements[i]
		}
	}
	return nil
}

// Measured reports whether the scenario holds any sample or RSS figure.
func (s *Scenario) Measured() bool {
	for _, m := range s.Measurements {
		if len(m.Samples) > 0 || m.RSSKiB > 0 {
			return true
		}
	}
	return false
}

// Stat is a median with its range over rounds.
type Stat struct {
	Median, Min, Max float64
	N                int
}

// Summarize returns the median, min and max of v (N = 0 for no values).
func Summarize(v []float64) Stat {
	if len(v) == 0 {
		return Stat{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: med, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// MBps is the throughput of each sample in MB/s (10^6 bytes per second).
func (m *Measurement) MBps() []float64 {
	return m.per(func(s Sample) float64 { return m.Bytes / s.Wall / 1e6 })
}

// CPUMBps is the throughput per CPU-second (user + system) of each sample
// that has CPU times.
func (m *Measurement) CPUMBps() []float64 {
	var out []float64
	for _, s := range m.Samples {
		if c := s.User + s.Sys; c > 0 {
			out = append(out, m.Bytes/c/1e6)
		}
	}
	return out
}

// RecordsPerSec is the records per second of each sample.
func (m *Measurement) RecordsPerSec() []float64 {
	return m.per(func(s Sample) float64 { return m.Records / s.Wall })
}

// Walls is the time of each sample, in seconds.
func (m *Measurement) Walls() []float64 {
	return m.per(func(s Sample) float64 { return s.Wall })
}

func (m *Measurement) per(f func(Sample) float64) []float64 {
	var out []float64
	for _, s := range m.Samples {
		if s.Wall > 0 {
			out = append(out, f(s))
		}
	}
	return out
}

// valueIn returns the measurement's work per second in round r, or with
// time set its time in round r.
func (m *Measurement) valueIn(r int, time bool) (float64, bool) {
	for _, s := range m.Samples {
		if s.Round == r && s.Wall > 0 {
			if time {
				return s.Wall, true
			}
			return m.Bytes / s.Wall, true
		}
	}
	return 0, false
}

// PerRound returns the ratio's value in every round where all of its
// measurements have a sample, in round order.
func (r *Run) PerRound(q Ratio) ([]float64, error) {
	num := r.Measurement(q.Num)
	if num == nil {
		return nil, fmt.Errorf("ratio %s: no measurement %q", q.Num, q.Num)
	}
	var dens []*Measurement
	for _, d := range q.Den {
		m := r.Measurement(d)
		if m == nil {
			return nil, fmt.Errorf("ratio %s: no measurement %q", q.Num, d)
		}
		dens = append(dens, m)
	}
	if len(dens) == 0 {
		return nil, fmt.Errorf("ratio %s: no denominator", q.Num)
	}
	var rounds []int
	for _, smp := range num.Samples {
		if !slices.Contains(rounds, smp.Round) {
			rounds = append(rounds, smp.Round)
		}
	}
	slices.Sort(rounds)
	var out []float64
	for _, rd := range rounds {
		a, ok := num.valueIn(rd, q.Time)
		if !ok {
			continue
		}
		var b float64
		all := true
		for i, d := range dens {
			v, ok := d.valueIn(rd, q.Time)
			if !ok {
				all = false
				break
			}
			// The slowest denominator: the longest time, or the
			// lowest throughput.
			if i == 0 || (q.Time && v > b) || (!q.Time && v < b) {
				b = v
			}
		}
		if all {
			out = append(out, a/b)
		}
	}
	return out, nil
}
