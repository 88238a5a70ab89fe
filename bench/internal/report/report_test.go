package report

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

const mib = 1 << 20

// synthetic is a small run: a file scenario with a workers figure and two
// ratios (one goal met, one not), a records scenario laid out as a pivot
// with one mode not available, a scenario not measured yet and one
// skipped. Times are derived from the round number so that every round
// differs.
func synthetic() *results.Run {
	// Rounds 1-3 take base × 1.1, 1.1, 1.0 (k = 1) or 1.2, 1.1, 1.0
	// (k = 2): per-round ratios of the two differ.
	samplesK := func(base float64, k int) []results.Sample {
		var s []results.Sample
		for r := 1; r <= 3; r++ {
			s = append(s, results.Sample{Round: r, Wall: base * (1 + 0.1*float64(r*r*k%3)), User: base / 2, Sys: base / 4})
		}
		return s
	}
	samples := func(base float64) []results.Sample { return samplesK(base, 1) }
	files := results.Scenario{
		ID: "files", Group: "Files", Title: "Files to nowhere",
		Measurements: []results.Measurement{
			{Name: "tool-w1", Label: "tool, 1 worker", Bytes: 64 * mib, RSSKiB: 4096, Params: map[string]string{"workers": "1", "series": "tool"}, Samples: samples(0.5)},
			{Name: "tool-w2", Label: "tool, 2 workers", Bytes: 64 * mib, RSSKiB: 5120, Params: map[string]string{"workers": "2", "series": "tool"}, Samples: samples(0.3)},
			{Name: "peer", Label: "peer tool", Bytes: 64 * mib, Samples: samplesK(1.0, 2)},
		},
		Ratios: []results.Ratio{
			{Num: "tool-w1", Den: []string{"peer"}, Goal: &results.Goal{Op: ">=", Value: 1.5}, Label: "G-met"},
			{Num: "tool-w2", Den: []string{"tool-w1"}, Time: true, Goal: &results.Goal{Op: "<=", Value: 0.5}, Label: "G-missed"},
		},
		Figures: []results.Figure{
			{File: "workers.svg", Title: "Throughput vs workers", X: "workers", XLabel: "workers", Series: "series", Metric: results.MetricMBps},
			{File: "empty.svg", Title: "Matches nothing", X: "workers", Series: "series", Where: map[string]string{"series": "nobody"}, Metric: results.MetricMBps},
		},
	}
	recs := results.Scenario{
		ID: "recs", Group: "Records", Title: "Records by size",
		Pivot: &results.Pivot{Row: "size_name", RowLabel: "record size", Col: "series", Metric: results.MetricMicros},
		Figures: []results.Figure{
			{File: "recs.svg", Title: "Throughput vs record size", X: "size", XLabel: "record size (bytes)", Series: "series", Metric: results.MetricMBps, LogX: true, LogY: true},
		},
	}
	for _, size := range []int{64, 1024, 65536} {
		name := fmt.Sprintf("%dB", size)
		recs.Measurements = append(recs.Measurements,
			results.Measurement{Name: "enc-mprotect-" + name, Label: "Encrypt (mprotect)", Bytes: float64(size), Records: 1,
				Params:  map[string]string{"size": fmt.Sprint(size), "size_name": name, "series": "Encrypt (mprotect)"},
				Samples: samples(1e-6 * (5 + float64(size)/1000))},
			results.Measurement{Name: "enc-pkey-" + name, Label: "Encrypt (pkey)", Bytes: float64(size), Records: 1,
				Params:       map[string]string{"size": fmt.Sprint(size), "size_name": name, "series": "Encrypt (pkey)"},
				NotAvailable: "the CPU has no PKU"},
		)
	}
	return &results.Run{
		Env: results.Env{CPU: "Test CPU 9000", NProc: 2, Flags: map[string]bool{"aes": true, "vaes": true, "pku": false},
			LoadBefore: "0.50 0.40 0.30", LoadAfter: "3.10 1.00 0.50", Start: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)},
		Config: results.Config{Rounds: 3, SizeBytes: 64 * mib, Command: "make bench-report ROUNDS=3 SIZE=64M"},
		Scenarios: []results.Scenario{
			files, recs,
			{ID: "kafka", Group: "Kafka", Title: "Kafka records/s", Todo: "the Kafka sink is on another branch"},
			{ID: "gpu", Group: "Other", Title: "Needs a GPU", Skipped: "no GPU here"},
		},
	}
}

// rows returns the Markdown table rows of s that mention `name`.
func rows(md, name string) []string {
	var out []string
	for l := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(l, "| `"+name+"` |") {
			out = append(out, l)
		}
	}
	return out
}

func cells(row string) []string {
	c := strings.Split(strings.Trim(row, "|"), "|")
	for i := range c {
		c[i] = strings.TrimSpace(c[i])
	}
	return c
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2] // odd counts only in these tests
}

func TestMarkdownTablesHoldEveryMeasuredScenarioWithDerivedMedians(t *testing.T) {
	run := synthetic()
	md, err := Markdown(run, "perf", []string{"workers.svg", "recs.svg"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Scenarios[0].Measurements {
		r := rows(md, m.Name)
		if len(r) != 1 {
			t.Fatalf("want one table row for %s, got %d:\n%s", m.Name, len(r), md)
		}
		var mbps []float64
		for _, s := range m.Samples {
			mbps = append(mbps, m.Bytes/s.Wall/1e6)
		}
		want := fmt.Sprintf("%.0f (%.0f-%.0f)", median(mbps), slices.Min(mbps), slices.Max(mbps))
		if got := cells(r[0])[2]; got != want {
			t.Errorf("%s: MB/s cell %q, want %q", m.Name, got, want)
		}
		if m.RSSKiB > 0 {
			if got, want := cells(r[0])[4], fmt.Sprintf("%.1f", float64(m.RSSKiB)/1024); got != want {
				t.Errorf("%s: RSS cell %q, want %q", m.Name, got, want)
			}
		}
	}
	// The ratio rows: median of per-round ratios, computed here by hand
	// from the samples, and the goal's verdict.
	tool, peer := run.Scenarios[0].Measurements[0], run.Scenarios[0].Measurements[2]
	var perRound []float64
	for i := range tool.Samples {
		perRound = append(perRound, peer.Samples[i].Wall/tool.Samples[i].Wall)
	}
	wantRatio := fmt.Sprintf("%.2f", median(perRound))
	// The scenario's ratio table row (the goals table's comes first).
	ratioRow := ""
	for l := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(l, "| `tool-w1` / `peer` |") {
			ratioRow = l
		}
	}
	if ratioRow == "" {
		t.Fatalf("no ratio row for tool-w1 / peer:\n%s", md)
	}
	if s := results.Summarize(perRound); s.Min == s.Max {
		t.Fatalf("synthetic data give the same ratio in every round (%v): the median test proves nothing", perRound)
	}
	if got := cells(ratioRow)[1]; got != wantRatio {
		t.Errorf("ratio median %q, want %q", got, wantRatio)
	}
	wantStatus := "**not met**"
	if median(perRound) >= 1.5 {
		wantStatus = "met"
	}
	if !strings.HasSuffix(ratioRow, "| "+wantStatus+" |") {
		t.Errorf("ratio row %q does not end with status %q", ratioRow, wantStatus)
	}
	// tool-w2 takes 0.6× the time of tool-w1 in every round: the ≤ 0.5
	// goal is missed, and the goals table says so.
	if !strings.Contains(md, "| time `tool-w2` / time `tool-w1` | G-missed | 0.60 (0.60-0.60) | ≤ 0.5 | **not met** | files |") {
		t.Errorf("goals table lacks the missed time-ratio goal:\n%s", md)
	}
}

func TestMarkdownListsUnmeasuredScenariosWithoutNumbers(t *testing.T) {
	md, err := Markdown(synthetic(), "perf", nil)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(md, "#### Kafka records/s")
	if i < 0 {
		t.Fatalf("the TODO scenario has no heading:\n%s", md)
	}
	section := md[i:]
	section = section[:strings.Index(section[1:], "####")+1]
	if !strings.Contains(section, "Not measured yet:** the Kafka sink is on another branch") {
		t.Errorf("TODO section does not say it is not measured and why:\n%s", section)
	}
	if strings.Contains(section, "|") {
		t.Errorf("TODO section has a table:\n%s", section)
	}
	if !strings.Contains(md, "- Kafka records/s (`kafka`): not measured yet") {
		t.Errorf("no list of scenarios not measured yet:\n%s", md)
	}
	if !strings.Contains(md, "**Not measured on this machine:** no GPU here") {
		t.Errorf("the skipped scenario does not say why:\n%s", md)
	}
	if !strings.Contains(md, "**Busy machine**") {
		t.Errorf("loadavg 3.10 on 2 CPUs is not flagged as busy")
	}
	if !strings.Contains(md, "**no pku**") || !strings.Contains(md, "Test CPU 9000") {
		t.Errorf("machine line does not name the CPU and the missing pku flag:\n%s", md)
	}
	if strings.Contains(md, "](perf/") {
		t.Errorf("figures embedded although none was drawn:\n%s", md)
	}
}

func TestMarkdownPutsEachGroupUnderOneHeading(t *testing.T) {
	run := synthetic()
	// A second Files scenario listed after the records one.
	run.Scenarios = append(run.Scenarios, results.Scenario{ID: "later", Group: "Files", Title: "Later files", Todo: "later"})
	md, err := Markdown(run, "perf", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(md, "### Files\n"); n != 1 {
		t.Fatalf("%d Files headings, want 1:\n%s", n, md)
	}
	if strings.Index(md, "#### Later files") > strings.Index(md, "### Records\n") {
		t.Errorf("the later Files scenario is not under the Files heading:\n%s", md)
	}
}

func TestPivotShowsMicrosecondsAndNotAvailable(t *testing.T) {
	run := synthetic()
	md, err := Markdown(run, "perf", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| record size | Encrypt (mprotect) | Encrypt (pkey) |") {
		t.Fatalf("no pivot header:\n%s", md)
	}
	for _, m := range run.Scenarios[1].Measurements {
		if m.NotAvailable != "" {
			continue
		}
		var us []float64
		for _, s := range m.Samples {
			us = append(us, s.Wall*1e6)
		}
		want := fmt.Sprintf("| %s | %s (%s-%s) | not available |", m.Params["size_name"],
			fmtNum(median(us), 2), fmtNum(slices.Min(us), 2), fmtNum(slices.Max(us), 2))
		if !strings.Contains(md, want) {
			t.Errorf("pivot lacks row %q:\n%s", want, md)
		}
	}
}

func TestFiguresAreWellFormedSVGNamingTheMachine(t *testing.T) {
	run := synthetic()
	figs, err := Figures(run, "svg")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.File)
		root, text := parseSVG(t, f.Data)
		if root != "svg" {
			t.Errorf("%s: root element %q, want svg", f.File, root)
		}
		for _, want := range []string{"Test CPU 9000", "no pku", "aes", "loadavg 0.50"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: text does not name %q: %q", f.File, want, text)
			}
		}
	}
	slices.Sort(names)
	if want := []string{"recs.svg", "workers.svg"}; !slices.Equal(names, want) {
		t.Errorf("figures %v, want %v (a figure without data is not drawn; a not-available mode adds no line)", names, want)
	}
	// Each series of the workers figure is in its legend; the pkey
	// series, not available, is not in the records figure.
	for _, f := range figs {
		_, text := parseSVG(t, f.Data)
		if f.File == "workers.svg" && !strings.Contains(text, "tool") {
			t.Errorf("workers.svg: no legend entry for the series 'tool'")
		}
		if f.File == "recs.svg" && (strings.Contains(text, "pkey") || !strings.Contains(text, "Encrypt (mprotect)")) {
			t.Errorf("recs.svg: legend %q: want Encrypt (mprotect) and no pkey", text)
		}
	}
}

// parseSVG decodes the whole document and returns the root element's name
// and all character data.
func parseSVG(t *testing.T, b []byte) (string, string) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	var root string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte(' ')
		}
	}
	return root, text.String()
}

func TestSpliceReplacesOnlyTheGeneratedSection(t *testing.T) {
	head, tail := "# Performance\n\nhand-written intro\n\n", "\n## stream\n\nhand-written tail\n"
	doc := head + BeginMarker + "\nold generated\n" + EndMarker + "\n" + tail
	got, err := Splice(doc, "new generated")
	if err != nil {
		t.Fatal(err)
	}
	if want := head + BeginMarker + "\nnew generated\n" + EndMarker + "\n" + tail; got != want {
		t.Errorf("Splice:\n%q\nwant\n%q", got, want)
	}
	again, err := Splice(got, "new generated")
	if err != nil || again != got {
		t.Errorf("splicing the same section twice changed the document (err %v)", err)
	}
}

func TestSpliceAppendsWhenThereAreNoMarkers(t *testing.T) {
	doc := "# Performance\n\nhand-written"
	got, err := Splice(doc, "generated")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, doc+"\n") || !strings.HasSuffix(got, BeginMarker+"\ngenerated\n"+EndMarker+"\n") {
		t.Errorf("Splice did not append the section after the text: %q", got)
	}
}

func TestSpliceRefusesBrokenMarkers(t *testing.T) {
	for name, doc := range map[string]string{
		"reversed":    EndMarker + "\nx\n" + BeginMarker + "\n",
		"two begins":  BeginMarker + "\n" + BeginMarker + "\n" + EndMarker + "\n",
		"begin alone": "text\n" + BeginMarker + "\n",
	} {
		if _, err := Splice(doc, "generated"); err == nil {
			t.Errorf("%s: Splice accepted broken markers", name)
		}
	}
}

func TestRecordsTableDividesTheWallTimeByTheRecordsOfARun(t *testing.T) {
	// One run of 4000 records: 2 s, 2.5 s and 3 s in three rounds.
	var b strings.Builder
	s := &results.Scenario{Measurements: []results.Measurement{{
		Name: "batch", Label: "a batch", Bytes: 4000 * 200, Records: 4000,
		Samples: []results.Sample{{Round: 1, Wall: 2}, {Round: 2, Wall: 2.5}, {Round: 3, Wall: 3}},
	}}}
	table(&b, s)
	var row string
	for l := range strings.SplitSeq(b.String(), "\n") {
		if strings.HasPrefix(l, "| `batch`") {
			row = l
		}
	}
	cells := strings.Split(row, "|")
	if len(cells) < 5 {
		t.Fatalf("no row for batch in\n%s", b.String())
	}
	wantRate := fmtStat(results.Summarize([]float64{4000 / 2.0, 4000 / 2.5, 4000 / 3.0}), 0)
	wantMicros := fmtNum(2.5/4000*1e6, 2)
	if got := strings.TrimSpace(cells[3]); got != wantRate {
		t.Errorf("records/s %q, want %q", got, wantRate)
	}
	if got := strings.TrimSpace(cells[4]); got != wantMicros {
		t.Errorf("µs per record %q, want %q (median wall / records)", got, wantMicros)
	}
}
