package main

import (
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// progressFlags are --progress and --no-progress.
type progressFlags struct {
	on, off bool
}

func (p *progressFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&p.on, "progress", false, "show a progress bar on stderr even when it is not a terminal")
	cmd.Flags().BoolVar(&p.off, "no-progress", false, "never show a progress bar")
}

// check rejects --progress together with --no-progress.
func (p *progressFlags) check() error {
	if p.on && p.off {
		return usageErrorf("--progress and --no-progress cannot be used together")
	}
	return nil
}

// enabled reports whether to show a bar: when asked, or by default when
// stderr is a terminal.
func (p *progressFlags) enabled(stderr io.Writer) bool {
	switch {
	case p.off:
		return false
	case p.on:
		return true
	}
	f, ok := stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressReader counts bytes read through it on a bar.
type progressReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.bar.Add64(int64(n))
	}
	return n, err
}

// withProgress wraps r with a progress bar on stderr if enabled. total is
// the input size, or -1 when unknown (the bar is then a spinner). The
// returned function removes the bar; call it before printing anything else.
func (a *app) withProgress(p *progressFlags, r io.Reader, total int64, what string) (io.Reader, func()) {
	if !p.enabled(a.stderr) {
		return r, func() {}
	}
	bar := progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(total > 0),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionSpinnerType(14),
	)
	return &progressReader{r: r, bar: bar}, func() {
		bar.Finish() // clears the bar (OptionClearOnFinish)
	}
}
