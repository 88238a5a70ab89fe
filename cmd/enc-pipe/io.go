package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"

	"golang.org/x/term"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sources"
)

// input is an opened input.
type input struct {
	sources.Source
	info fs.FileInfo
	// ra is set when the input can be read at any offset.
	ra sources.RandomAccess
}

// size is the input's length, or -1 when unknown.
func (in *input) size() int64 {
	if in.info != nil && in.info.Mode().IsRegular() {
		return in.info.Size()
	}
	return -1
}

// resolveIO picks the input and output names from positional arguments and
// -i/-o flags, refusing to get one from both, and checks that both parse
// and name a kind of location that is built in, before anything is opened.
func resolveIO(args []string, inFlag, outFlag string) (in, out string, err error) {
	in, out, err = pickIO(args, inFlag, outFlag)
	if err != nil {
		return "", "", err
	}
	for _, c := range []struct{ what, name string }{{"input", in}, {"output", out}} {
		loc, err := location.Parse(c.name)
		if err != nil {
			return "", "", usageErrorf("%s: %v", c.what, err)
		}
		if loc.Kind != location.Stdio && loc.Kind != location.File && loc.Kind != location.S3 {
			return "", "", usageErrorf("%s %s: %s %ss are not built yet", c.what, c.name, loc.Kind, c.what)
		}
	}
	return in, out, nil
}

func pickIO(args []string, inFlag, outFlag string) (in, out string, err error) {
	in, out = inFlag, outFlag
	if len(args) > 0 {
		if in != "" {
			return "", "", usageErrorf("input given twice: -i %s and %s", in, args[0])
		}
		in = args[0]
	}
	if len(args) > 1 {
		if out != "" {
			return "", "", usageErrorf("output given twice: -o %s and %s", out, args[1])
		}
		out = args[1]
	}
	if in == "" {
		in = "-"
	}
	if out == "" {
		out = "-"
	}
	return in, out, nil
}

// openInput opens an input by name.
func (a *app) openInput(ctx context.Context, name string) (*input, error) {
	loc, err := location.Parse(name)
	if err != nil {
		return nil, usageErrorf("input: %v", err)
	}
	switch loc.Kind {
	case location.Stdio:
		in := &input{}
		var r io.Reader = a.stdin
		if f, ok := a.stdin.(*os.File); ok {
			if st, err := f.Stat(); err == nil {
				in.info = st
			}
		}
		if in.size() < 0 {
			// A pipe or terminal: a Read may block for ever, so read it
			// from a goroutine that a cancellation can walk away from.
			r = cancelableReader(ctx, r)
		}
		in.Source = sources.NewReader(r, "standard input")
		return in, nil
	case location.File:
		f, err := sources.OpenFile(loc.Path)
		if err != nil {
			return nil, ioError(err, "cannot open input")
		}
		in := &input{Source: f, info: f.Stat()}
		if f.Seekable() {
			in.ra = f
		}
		return in, nil
	case location.S3:
		return a.openS3Input(ctx, loc) // s3io.go
	}
	return nil, usageErrorf("input %s: %s inputs are not built yet", name, loc.Kind)
}

// outputOptions describe how to create an output.
type outputOptions struct {
	binary bool // refuse to write to a terminal
}

// openOutput creates an output by name. File outputs are atomic and are
// aborted if the run is interrupted. An output that is the input is refused.
func (a *app) openOutput(name string, in *input, o outputOptions) (sinks.Sink, error) {
	loc, err := location.Parse(name)
	if err != nil {
		return nil, usageErrorf("output: %v", err)
	}
	switch loc.Kind {
	case location.Stdio:
		if o.binary {
			if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				return nil, usageErrorf("refusing to write binary ciphertext to a terminal: use -o FILE or redirect standard output")
			}
		}
		s := sinks.NewWriter(a.stdout, "standard output")
		a.track(s)
		return s, nil
	case location.File:
		st, err := os.Stat(loc.Path)
		if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
			// A device or named pipe (/dev/null, a FIFO): written in
			// place, since it cannot be replaced atomically.
			s, err := sinks.OpenDevice(loc.Path)
			if err != nil {
				return nil, ioError(err, "cannot open output %s", loc.Path)
			}
			a.track(s)
			return s, nil
		}
		if err == nil && in != nil && in.info != nil && os.SameFile(st, in.info) {
			return nil, usageErrorf("output %s is the input: write to another file", loc.Path)
		}
		s, err := sinks.CreateFile(loc.Path)
		if err != nil {
			return nil, ioError(err, "cannot create output %s", loc.Path)
		}
		a.track(s)
		return s, nil
	case location.S3:
		return a.openS3Output(loc, in) // s3io.go
	}
	return nil, usageErrorf("output %s: %s outputs are not built yet", name, loc.Kind)
}

// finish commits out if err is nil and aborts it otherwise, and returns the
// first error.
func finish(out sinks.Sink, err error) error {
	if err != nil {
		out.CloseWithError(err)
		return err
	}
	if err := out.Close(); err != nil {
		if isEPIPE(err) {
			return errQuietEnd
		}
		return ioError(err, "cannot write output %s", out.Name())
	}
	return nil
}

// cancelableReader reads r in a goroutine and hands the bytes over through a
// pipe, so that a Read returns as soon as ctx is done even while r.Read is
// blocked (stdin on a pipe or terminal cannot be interrupted otherwise). The
// goroutine is left blocked in r.Read in that case; the process is about to
// exit.
func cancelableReader(ctx context.Context, r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		buf := make([]byte, 256<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if _, werr := pw.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
		}
	}()
	context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	return pr
}
