package report

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

// Figure is a drawn figure.
type Figure struct {
	File string // base name, with the extension of its format
	Data []byte
}

// Figures draws every figure of every measured scenario that has data, as
// SVG (format "svg") or any other format gonum/plot writes ("png").
func Figures(run *results.Run, format string) ([]Figure, error) {
	var out []Figure
	for i := range run.Scenarios {
		s := &run.Scenarios[i]
		if s.Todo != "" || s.Skipped != "" {
			continue
		}
		for _, f := range s.Figures {
			svg, err := draw(run, s, f, format)
			if err != nil {
				return nil, fmt.Errorf("figure %s: %w", f.File, err)
			}
			if svg != nil {
				out = append(out, Figure{File: strings.TrimSuffix(f.File, ".svg") + "." + format, Data: svg})
			}
		}
	}
	return out, nil
}

// point is one x with the median and range of y.
type point struct{ x, y, lo, hi float64 }

// seriesOf groups the scenario's measurements that match f into lines,
// in order of first appearance, each sorted by x.
func seriesOf(s *results.Scenario, f results.Figure) ([]string, map[string][]point) {
	var names []string
	lines := map[string][]point{}
	for i := range s.Measurements {
		m := &s.Measurements[i]
		if m.NotAvailable != "" || !matches(m.Params, f.Where) {
			continue
		}
		x, err := strconv.ParseFloat(m.Params[f.X], 64)
		if err != nil {
			continue
		}
		y, ok := metric(m, f.Metric)
		if !ok {
			continue
		}
		name := m.Params[f.Series]
		if name == "" {
			name = m.Label
		}
		if _, seen := lines[name]; !seen {
			names = append(names, name)
		}
		lines[name] = append(lines[name], point{x, y.Median, y.Min, y.Max})
	}
	for _, n := range names {
		slices.SortFunc(lines[n], func(a, b point) int { return cmpFloat(a.x, b.x) })
	}
	return names, lines
}

func matches(params, where map[string]string) bool {
	for k, v := range where {
		if params[k] != v {
			return false
		}
	}
	return true
}

func metric(m *results.Measurement, name string) (results.Stat, bool) {
	var st results.Stat
	switch name {
	case results.MetricRSSMiB:
		if m.RSSKiB == 0 {
			return st, false
		}
		v := float64(m.RSSKiB) / 1024
		return results.Stat{Median: v, Min: v, Max: v, N: 1}, true
	case results.MetricRecordsS:
		st = results.Summarize(m.RecordsPerSec())
	case results.MetricMicros:
		w := m.Walls()
		for i := range w {
			w[i] *= 1e6
		}
		st = results.Summarize(w)
	default:
		st = results.Summarize(m.MBps())
	}
	return st, st.N > 0
}

// draw returns the figure, or nil if no measurement matches.
func draw(run *results.Run, s *results.Scenario, f results.Figure, format string) ([]byte, error) {
	names, lines := seriesOf(s, f)
	if len(names) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = f.Title + "\n" + figureCaption(run)
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = f.XLabel
	p.Y.Label.Text = f.Metric + " (median; bars: min-max over rounds)"
	if f.Metric == results.MetricRSSMiB {
		p.Y.Label.Text = f.Metric + " (one run per point)"
	}
	// Rising lines (log y: sizes) leave the lower right free, flat ones
	// the upper left.
	p.Legend.Top, p.Legend.Left = !f.LogY, !f.LogY
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())

	var xs []float64
	for _, n := range names {
		for _, pt := range lines[n] {
			if !slices.Contains(xs, pt.x) {
				xs = append(xs, pt.x)
			}
		}
	}
	slices.Sort(xs)
	// A margin so that the first and last points are off the axes.
	if f.LogX {
		p.X.Scale = plot.LogScale{}
		p.X.Min, p.X.Max = xs[0]/1.5, xs[len(xs)-1]*1.5
	} else {
		pad := max((xs[len(xs)-1]-xs[0])*0.05, 0.25)
		p.X.Min, p.X.Max = xs[0]-pad, xs[len(xs)-1]+pad
	}
	p.X.Tick.Marker = valueTicks{xs: xs, bytes: strings.Contains(f.XLabel, "bytes")}
	if f.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	} else {
		p.Y.Min = 0
	}

	for i, n := range names {
		pts := lines[n]
		xy := make(plotter.XYs, len(pts))
		errs := errPoints{XYs: make(plotter.XYs, len(pts)), YErrors: make(plotter.YErrors, len(pts))}
		spread := false
		for j, pt := range pts {
			xy[j] = plotter.XY{X: pt.x, Y: pt.y}
			errs.XYs[j] = xy[j]
			errs.YErrors[j] = struct{ Low, High float64 }{pt.y - pt.lo, pt.hi - pt.y}
			spread = spread || pt.hi > pt.lo
		}
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		points.Color = plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		p.Add(line, points)
		p.Legend.Add(n, line, points)
		if spread {
			eb, err := plotter.NewYErrorBars(errs)
			if err != nil {
				return nil, err
			}
			eb.Color = plotutil.Color(i)
			p.Add(eb)
		}
	}
	if !f.LogY {
		// Head room for the legend above the data: a line per series.
		ymax := 0.0
		for _, n := range names {
			for _, pt := range lines[n] {
				ymax = max(ymax, pt.hi)
			}
		}
		p.Y.Max = ymax * (1.1 + 0.08*float64(len(names)))
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, format)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// figureCaption names the machine, its flags and its load.
func figureCaption(run *results.Run) string {
	env := run.Env
	var flags []string
	for _, f := range []string{"aes", "vaes", "pku"} {
		if env.Flags[f] {
			flags = append(flags, f)
		} else {
			flags = append(flags, "no "+f)
		}
	}
	return fmt.Sprintf("%s, %d CPUs (%s); loadavg %s → %s; %d rounds, %s",
		orUnknown(env.CPU), env.NProc, strings.Join(flags, ", "), firstField(env.LoadBefore), firstField(env.LoadAfter),
		run.Config.Rounds, env.Start.Format("2006-01-02"))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "?"
}

type errPoints struct {
	plotter.XYs
	plotter.YErrors
}

// valueTicks puts a labelled tick at every x that has data, in bytes
// units (4K, 1M) when the axis is a size.
type valueTicks struct {
	xs    []float64
	bytes bool
}

func (t valueTicks) Ticks(lo, hi float64) []plot.Tick {
	var ticks []plot.Tick
	for _, x := range t.xs {
		if x < lo || x > hi {
			continue
		}
		label := strconv.FormatFloat(x, 'f', -1, 64)
		if t.bytes {
			label = shortBytes(x)
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: label})
	}
	return ticks
}

// shortBytes is 64, 4K, 1M, 1G.
func shortBytes(x float64) string {
	for _, u := range []struct {
		s string
		v float64
	}{{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if x >= u.v && math.Mod(x, u.v) == 0 {
			return strconv.FormatFloat(x/u.v, 'f', -1, 64) + u.s
		}
	}
	return strconv.FormatFloat(x, 'f', -1, 64)
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
