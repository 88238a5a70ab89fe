package scenarios

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// recordSeries labels recbench's cells, in table order.
var recordSeries = []struct{ key, label string }{
	{"gcm-reuse/none", "AES-256-GCM Seal, reused buffer"},
	{"gcm-alloc/none", "AES-256-GCM Seal, new buffer"},
	{"encrypt/mprotect", "Encrypt (mprotect)"},
	{"decrypt/mprotect", "Decrypt (mprotect)"},
	{"encrypt/pkey", "Encrypt (pkey)"},
	{"decrypt/pkey", "Decrypt (pkey)"},
}

// seriesRank orders a cell's series as recordSeries does (unknown last).
func seriesRank(op, mode string) int {
	for i, s := range recordSeries {
		if s.key == op+"/"+mode {
			return i
		}
	}
	return len(recordSeries)
}

// Records times envelope Encrypt and Decrypt of one record over a sweep of
// record sizes, with the key caches in each secure-memory mode, next to
// the standard library's AES-256-GCM Seal (bench/cmd/recbench, once per
// round). The raw output, in Go benchmark format, is kept in records.txt
// of the run for benchstat.
func Records() Def {
	return Def{
		ID:    "records",
		Group: "Records",
		Title: "envelope Encrypt/Decrypt per record: µs per record by size and secure-memory mode",
		About: "Warm caches (static KMS, in-memory metastore, one session), one goroutine; the AES-256-GCM columns set the cipher up once. " +
			"mprotect: keys opened with two mprotect calls per operation; pkey: with two WRPKRU instructions (needs the CPU's pku flag). " +
			"Raw samples: records.txt in Go benchmark format (`benchstat records.txt`).",
		PerRound: func(ctx context.Context, e *Env, x Exec, round int) ([]results.Measurement, error) {
			sizes := make([]string, len(e.RecordSizes))
			for i, s := range e.RecordSizes {
				sizes[i] = itoa(s)
			}
			out, err := x.Run(ctx, e.Tool("recbench"), "-sizes", strings.Join(sizes, ","),
				"-time", e.RecordTime.String(), "-rounds", "1", "-first", itoa(round))
			if err != nil {
				return nil, err
			}
			f, err := os.OpenFile(filepath.Join(e.Out, "records.txt"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			if _, err := f.Write(out); err != nil {
				return nil, err
			}
			return ParseRecbench(out, round)
		},
		Ratios: func(e *Env) []results.Ratio {
			var q []results.Ratio
			for _, s := range e.RecordSizes {
				n := sizeName(int64(s))
				r := results.Ratio{Num: "rec-encrypt-mprotect-" + n, Den: []string{"rec-gcm-alloc-" + n}}
				if s == 1<<20 {
					r.Goal, r.Label = ge(0.8), "issue 3: Encrypt 1 MiB ≥ 0.8× stdlib Seal"
				}
				q = append(q, r)
				if e.Flags["pku"] {
					q = append(q, results.Ratio{Num: "rec-encrypt-pkey-" + n, Den: []string{"rec-encrypt-mprotect-" + n}})
				}
			}
			return q
		},
		Figures: []results.Figure{{
			File: "throughput-vs-record-size.svg", Title: "envelope throughput vs record size, one goroutine",
			X: "size", XLabel: "record size (bytes)", Series: "series", Metric: results.MetricMBps, LogX: true, LogY: true,
		}},
		Pivot: &results.Pivot{Row: "size_name", RowLabel: "record size", Col: "series", Metric: results.MetricMicros},
	}
}

// ParseRecbench turns one round of recbench output into measurements, one
// sample each, and a measurement without samples for every cell of a mode
// that recbench reported as not available.
func ParseRecbench(out []byte, round int) ([]results.Measurement, error) {
	var ms []results.Measurement
	unavailable := map[string]string{}
	var sizes []string
	r := benchfmt.NewReader(bytes.NewReader(out), "recbench")
	for r.Scan() {
		switch rec := r.Result().(type) {
		case *benchfmt.SyntaxError:
			return nil, rec
		case *benchfmt.Result:
			for _, c := range rec.Config {
				if mode, ok := strings.CutPrefix(c.Key, "mode-"); ok {
					unavailable[mode] = strings.TrimPrefix(string(c.Value), "not available: ")
				}
			}
			_, parts := rec.Name.Parts()
			kv := map[string]string{}
			for _, p := range parts {
				k, v, _ := strings.Cut(strings.TrimPrefix(string(p), "/"), "=")
				kv[k] = v
			}
			size, err := parseSizeName(kv["size"])
			if err != nil {
				return nil, err
			}
			sec, ok := rec.Value("sec/op") // benchfmt tidies ns/op into sec/op
			if !ok {
				return nil, fmt.Errorf("recbench: %s has no ns/op", rec.Name.Full())
			}
			if !slices.Contains(sizes, kv["size"]) {
				sizes = append(sizes, kv["size"])
			}
			ms = append(ms, recordMeasurement(kv["op"], kv["mode"], kv["size"], size, []results.Sample{{Round: round, Wall: sec}}, ""))
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	for mode, why := range unavailable {
		for _, op := range []string{"encrypt", "decrypt"} {
			for _, s := range sizes {
				size, _ := parseSizeName(s)
				ms = append(ms, recordMeasurement(op, mode, s, size, nil, why))
			}
		}
	}
	// One order whatever the round's rotation: by size, then series.
	slices.SortStableFunc(ms, func(a, b results.Measurement) int {
		if a.Bytes != b.Bytes {
			return cmp.Compare(a.Bytes, b.Bytes)
		}
		return cmp.Compare(seriesRank(a.Params["op"], a.Params["mode"]), seriesRank(b.Params["op"], b.Params["mode"]))
	})
	return ms, nil
}

func recordMeasurement(op, mode, sizeStr string, size int64, samples []results.Sample, notAvailable string) results.Measurement {
	name := "rec-" + op + "-" + mode + "-" + sizeStr
	if mode == "none" {
		name = "rec-" + op + "-" + sizeStr
	}
	series := op + " (" + mode + ")"
	if r := seriesRank(op, mode); r < len(recordSeries) {
		series = recordSeries[r].label
	}
	return results.Measurement{
		Name: name, Label: series + ", " + sizeStr,
		Params:  map[string]string{"op": op, "mode": mode, "size": strconv.FormatInt(size, 10), "size_name": sizeStr, "series": series},
		Bytes:   float64(size),
		Records: 1,
		Samples: samples, NotAvailable: notAvailable,
	}
}

// parseSizeName inverts sizeName.
func parseSizeName(s string) (int64, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("bad size %q", s)
			}
			return n * u.mult, nil
		}
	}
	return 0, fmt.Errorf("bad size %q", s)
}
