// Command summarize turns the per-round hyperfine JSON files of bench/run.sh
// into the Markdown tables of docs/PERFORMANCE.md: per command the median
// throughput with min-max over rounds, and for each ratio the median of the
// per-round ratios (both sides measured in the same round). Each table is
// given twice: by wall-clock time, and by CPU time (user + system), which a
// machine shared with other work disturbs much less; for a single-threaded
// command on an idle machine the two agree.
//
//	summarize -bytes N round1.json round2.json …
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
)

type hyperfineFile struct {
	Results []struct {
		Command string    `json:"command"`
		Times   []float64 `json:"times"`
		Mean    float64   `json:"mean"`
		User    float64   `json:"user"`
		System  float64   `json:"system"`
	} `json:"results"`
}

// ratios: numerator, denominator; "min(a,b)" takes the faster of a and b
// (the larger throughput) in the same round.
var ratios = [][2]string{
	{"ep-enc-w1", "age-enc"},
	{"ep-enc-w1", "tink-enc"},
	{"ep-dec-w1", "age-dec"},
	{"ep-dec-w1", "tink-dec"},
	{"ep-enc-w1", "gcm-1"},
	{"ep-dec-w1", "gcm-1"},
	{"ep-enc-wN", "min(gcm-N,cat)"},
	{"ep-dec-wN", "min(gcm-N,cat)"},
	{"ep-enc-wN", "ep-enc-w1"},
	{"ep-dec-wN", "ep-dec-w1"},
	{"gcm-N", "gcm-1"},
}

func main() {
	size := flag.Float64("bytes", 1<<30, "plaintext bytes per command")
	flag.Parse()
	var order []string
	wall := []map[string]float64{} // per round: command -> MB/s by wall time
	cpu := []map[string]float64{}  // per round: command -> MB/s by CPU time
	for _, path := range flag.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			fail(err)
		}
		var f hyperfineFile
		if err := json.Unmarshal(b, &f); err != nil {
			fail(fmt.Errorf("%s: %v", path, err))
		}
		w, c := map[string]float64{}, map[string]float64{}
		for _, res := range f.Results {
			w[res.Command] = *size / slices.Min(res.Times) / 1e6 // one run per command per round
			c[res.Command] = *size / (res.User + res.System) / 1e6
			if !slices.Contains(order, res.Command) {
				order = append(order, res.Command)
			}
		}
		wall = append(wall, w)
		cpu = append(cpu, c)
	}
	fmt.Println("By wall-clock time:")
	fmt.Println()
	tables(order, wall)
	fmt.Println()
	fmt.Println("By CPU time (user + system; for N workers this is throughput per core-second):")
	fmt.Println()
	tables(order, cpu)
}

func tables(order []string, rounds []map[string]float64) {
	fmt.Printf("| command | MB/s median | min-max | rounds |\n|---|---:|---:|---:|\n")
	for _, c := range order {
		var v []float64
		for _, r := range rounds {
			if x, ok := r[c]; ok {
				v = append(v, x)
			}
		}
		fmt.Printf("| %s | %.0f | %.0f-%.0f | %d |\n", c, median(v), slices.Min(v), slices.Max(v), len(v))
	}
	fmt.Printf("\n| ratio (same round) | median | min-max |\n|---|---:|---:|\n")
	for _, q := range ratios {
		var v []float64
		for _, r := range rounds {
			a, ok1 := value(r, q[0])
			b, ok2 := value(r, q[1])
			if ok1 && ok2 {
				v = append(v, a/b)
			}
		}
		if len(v) > 0 {
			fmt.Printf("| %s / %s | %.2f | %.2f-%.2f |\n", q[0], q[1], median(v), slices.Min(v), slices.Max(v))
		}
	}
}

func value(r map[string]float64, name string) (float64, bool) {
	if in, ok := strings.CutPrefix(name, "min("); ok {
		a, b, _ := strings.Cut(strings.TrimSuffix(in, ")"), ",")
		x, ok1 := r[a]
		y, ok2 := r[b]
		return min(x, y), ok1 && ok2
	}
	v, ok := r[name]
	return v, ok
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "summarize:", err)
	os.Exit(1)
}
