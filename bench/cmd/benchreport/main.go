// Command benchreport turns a results.json of cmd/benchrun into the
// generated section of a Markdown file (between the bench-report markers;
// the rest of the file is kept, and the section is appended if the markers
// are missing) and SVG figures, which the section embeds.
//
//	benchreport -in results/tmp/results.json -doc ../docs/PERFORMANCE.md -figs ../docs/perf
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/enc-pipe/enc-pipe/bench/internal/report"
	"github.com/enc-pipe/enc-pipe/bench/internal/results"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run() error {
	in := flag.String("in", "results/tmp/results.json", "results of benchrun")
	doc := flag.String("doc", "../docs/PERFORMANCE.md", "Markdown file whose generated section to write")
	figs := flag.String("figs", "../docs/perf", "directory for the SVG figures")
	png := flag.Bool("png", false, "also write each figure as PNG (for viewers without SVG; not embedded)")
	flag.Parse()

	r, err := results.Load(*in)
	if err != nil {
		return err
	}
	figures, err := report.Figures(r, "svg")
	if err != nil {
		return err
	}
	if *png {
		pngs, err := report.Figures(r, "png")
		if err != nil {
			return err
		}
		for _, f := range pngs {
			if err := writeFile(filepath.Join(*figs, f.File), f.Data); err != nil {
				return err
			}
		}
	}
	if err := os.MkdirAll(*figs, 0o755); err != nil {
		return err
	}
	var names []string
	for _, f := range figures {
		if err := writeFile(filepath.Join(*figs, f.File), f.Data); err != nil {
			return err
		}
		names = append(names, f.File)
	}
	rel, err := filepath.Rel(filepath.Dir(*doc), *figs)
	if err != nil {
		return err
	}
	section, err := report.Markdown(r, filepath.ToSlash(rel), names)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(*doc)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out, err := report.Splice(string(old), section)
	if err != nil {
		return fmt.Errorf("%s: %w", *doc, err)
	}
	if err := writeFile(*doc, []byte(out)); err != nil {
		return err
	}
	fmt.Printf("%s: generated section written; %d figures in %s\n", *doc, len(names), *figs)
	return nil
}

// writeFile replaces path through a temporary file in its directory, so
// that a failed run never leaves half a document.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
