package scenarios

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRecbenchOrdersCellsAndListsUnavailableModes(t *testing.T) {
	// A round of recbench output in its own format, cells in a rotated
	// order, with pkey reported as not available.
	type cell struct {
		op, mode, size string
		ns             float64
	}
	in := []cell{
		{"encrypt", "mprotect", "1KiB", 9000},
		{"gcm-reuse", "none", "64B", 150},
		{"decrypt", "mprotect", "64B", 7000},
		{"encrypt", "mprotect", "64B", 8000},
		{"gcm-reuse", "none", "1KiB", 400},
	}
	var b strings.Builder
	b.WriteString("goos: linux\ngoarch: amd64\nmode-pkey: not available: the CPU has no PKU\n")
	for _, c := range in {
		fmt.Fprintf(&b, "BenchmarkRecords/op=%s/mode=%s/size=%s\t1000\t%.1f ns/op\n", c.op, c.mode, c.size, c.ns)
	}
	ms, err := ParseRecbench([]byte(b.String()), 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, m.Name)
		if m.NotAvailable != "" {
			if m.Params["mode"] != "pkey" || len(m.Samples) != 0 || m.NotAvailable != "the CPU has no PKU" {
				t.Errorf("%s: not available %q with %d samples", m.Name, m.NotAvailable, len(m.Samples))
			}
			continue
		}
		var want cell
		for _, c := range in {
			if m.Params["op"] == c.op && m.Params["mode"] == c.mode && m.Params["size_name"] == c.size {
				want = c
			}
		}
		if len(m.Samples) != 1 || m.Samples[0].Round != 4 || m.Samples[0].Wall != want.ns*1e-9 {
			t.Errorf("%s: samples %+v, want one of %g s in round 4", m.Name, m.Samples, want.ns*1e-9)
		}
		if size, _ := parseSizeName(want.size); m.Bytes != float64(size) || m.Records != 1 {
			t.Errorf("%s: %g bytes, %g records per sample", m.Name, m.Bytes, m.Records)
		}
	}
	want := []string{
		"rec-gcm-reuse-64B", "rec-encrypt-mprotect-64B", "rec-decrypt-mprotect-64B", "rec-encrypt-pkey-64B", "rec-decrypt-pkey-64B",
		"rec-gcm-reuse-1KiB", "rec-encrypt-mprotect-1KiB", "rec-encrypt-pkey-1KiB", "rec-decrypt-pkey-1KiB",
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("measurements\n%v\nwant (by size, then series)\n%v", got, want)
	}
}

func TestAllScenariosHaveUniqueIDsAndTodoOnlyWithoutWork(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range All() {
		if d.ID == "" || d.Group == "" || d.Title == "" {
			t.Errorf("scenario %+v lacks an id, group or title", d.ID)
		}
		if seen[d.ID] {
			t.Errorf("scenario id %s used twice", d.ID)
		}
		seen[d.ID] = true
		hasWork := d.Commands != nil || d.PerRound != nil || d.Memory != nil
		if d.Todo != "" && hasWork {
			t.Errorf("scenario %s is marked not measured yet but has work to run", d.ID)
		}
		if d.Todo == "" && !hasWork {
			t.Errorf("scenario %s has nothing to measure and no Todo", d.ID)
		}
	}
}

func TestEveryRatioNamesAMeasurementOfTheRun(t *testing.T) {
	for _, nproc := range []int{1, 2, 8} {
		e := &Env{Dir: "/w", Bin: "/w/bin", Input: "/w/input", Size: 1 << 20, NProc: nproc,
			Flags: map[string]bool{"pku": true}, Workers: uniq(1, nproc, 2*nproc),
			Chunks: []int{4 << 10, 64 << 10}, RecordSizes: []int{64, 1 << 20}}
		names := map[string]bool{}
		for _, d := range All() {
			if d.Commands != nil {
				for _, c := range d.Commands(e) {
					if names[c.Name] {
						t.Errorf("nproc %d: measurement %s defined twice", nproc, c.Name)
					}
					names[c.Name] = true
				}
			}
		}
		// The records scenario's names come from recbench's cells.
		for _, s := range e.RecordSizes {
			for _, c := range [][2]string{{"gcm-reuse", "none"}, {"gcm-alloc", "none"}, {"encrypt", "mprotect"}, {"decrypt", "mprotect"}, {"encrypt", "pkey"}, {"decrypt", "pkey"}} {
				names[recordMeasurement(c[0], c[1], sizeName(int64(s)), int64(s), nil, "").Name] = true
			}
		}
		// The Kafka scenario's names come from its rounds.
		for _, o := range kafkaOps {
			names[o.name] = true
		}
		for _, d := range All() {
			if d.Ratios == nil {
				continue
			}
			for _, q := range d.Ratios(e) {
				for _, n := range append([]string{q.Num}, q.Den...) {
					if !names[n] {
						t.Errorf("nproc %d: scenario %s: ratio %s/%v names no measurement %q", nproc, d.ID, q.Num, q.Den, n)
					}
				}
			}
		}
	}
}

func TestTamperRecordChangesOneCiphertextCharacterOfTheFirstRecord(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	in := `{"Key":{"Created":1},"Data":"QUJDREVGR0hJSktMTU5PUA=="}` + "\n" + `{"Key":{"Created":2},"Data":"QUJDREVGR0hJSktMTU5PUA=="}` + "\n"
	if err := os.WriteFile(src, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := tamperRecord(src, dst); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("length %d, want %d", len(out), len(in))
	}
	var diff []int
	for i := range in {
		if in[i] != out[i] {
			diff = append(diff, i)
		}
	}
	data := strings.Index(in, `"Data":"`) + len(`"Data":"`)
	end := data + strings.Index(in[data:], `"`)
	if len(diff) != 1 || diff[0] < data || diff[0] >= end {
		t.Errorf("changed bytes %v, want one inside the first Data member [%d, %d)", diff, data, end)
	}
	if c := out[diff[0]]; !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", rune(c)) {
		t.Errorf("new character %q is not base64", c)
	}
}
