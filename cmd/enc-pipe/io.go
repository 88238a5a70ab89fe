package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/term"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sources"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
)

// input is an opened input.
type input struct {
	sources.Source
	info fs.FileInfo
	// ra is set when the input can be read at any offset.
	ra sources.RandomAccess
	// await, when set, blocks until the input has a byte to read or
	// ends, and reports whether it has (see app.awaitInput).
	await func() bool
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

// openInput opens an input by name, and records it as the run's input.
func (a *app) openInput(ctx context.Context, name string) (*input, error) {
	in, err := a.openInputNamed(ctx, name)
	if err != nil {
		return nil, err
	}
	if _, s3 := in.Source.(*s3source.Object); !s3 && !metrics.IsDiscard(a.obs.provider) {
		// S3 inputs are counted by s3source.
		in.Source = countingSource{in.Source, a.obs.in}
		if in.ra != nil {
			in.ra = countingRandomAccess{in.ra, a.obs.in}
		}
	}
	a.mu.Lock()
	a.in = in
	a.mu.Unlock()
	return in, nil
}

func (a *app) openInputNamed(ctx context.Context, name string) (*input, error) {
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
			// Reads of 16 bytes or more bypass the peek buffer.
			br := bufio.NewReaderSize(cancelableReader(ctx, r), 16)
			if in.info != nil && in.info.Mode()&(fs.ModeNamedPipe|fs.ModeSocket) != 0 {
				// Another program writes it (never a terminal, which
				// would make a missing-keys error wait for typing).
				in.await = func() bool { _, err := br.Peek(1); return err == nil }
			}
			r = br
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
	// binary refuses to write to a terminal.
	binary bool
	// public creates a new file 0666 less the umask, as cp or gzip do,
	// for output that is ciphertext through and through; otherwise a new
	// file is 0600, as suits plaintext. A replaced file keeps its mode
	// either way.
	public bool
}

// openOutput opens an output by name; it is aborted if the run is
// interrupted. Nothing is written to a name until the command succeeds.
//
//   - "-" is standard output. It is refused (usage error) when it is
//     closed, when it is the input file ("enc-pipe encrypt -i f >> f"), and,
//     for binary output, when it is a terminal.
//   - A name for a file descriptor (/dev/stdout, /dev/stderr, /dev/fd/N,
//     /proc/self/fd/N) is written through that descriptor, in place.
//   - A device or named pipe is written in place.
//   - A regular file, or a new name, is written atomically (sinks.File).
//   - A symbolic link that leads to a descriptor, a device or a pipe is
//     written like its target; one that leads to a regular file, or
//     nowhere, is refused (usage error): replacing the file would replace
//     the link, and writing through it is what symlink attacks in shared
//     directories rely on.
//   - An output that is the input file, under any name, is refused.
func (a *app) openOutput(name string, in *input, o outputOptions) (sinks.Sink, error) {
	loc, err := location.Parse(name)
	if err != nil {
		return nil, usageErrorf("output: %v", err)
	}
	var s sinks.Sink
	switch loc.Kind {
	case location.Stdio:
		s, err = a.stdoutSink(in, o)
	case location.File:
		s, err = a.fileSink(loc.Path, in, o)
	case location.S3:
		return a.openS3Output(loc, in) // s3io.go
	default:
		return nil, usageErrorf("output %s: %s outputs are not built yet", name, loc.Kind)
	}
	if err != nil {
		return nil, err
	}
	a.track(s)
	if !metrics.IsDiscard(a.obs.provider) {
		s = countingSink{s, a.obs.out}
	}
	return s, nil
}

// isInput reports whether st is the input file (a regular file: devices
// such as /dev/null may well be both).
func isInput(st fs.FileInfo, in *input) bool {
	return st != nil && in != nil && in.info != nil && in.info.Mode().IsRegular() && os.SameFile(st, in.info)
}

// requireStdout refuses a closed standard output in the commands whose
// only product is what they print (inspect, keys list, version): the Go
// runtime turns ">&-" into /dev/null, and printing there would exit 0
// having shown nothing.
func (a *app) requireStdout() error {
	if f, ok := a.stdout.(*os.File); ok && closedDescriptor(f) {
		return usageErrorf("standard output is closed (it reads as /dev/null opened for reading and writing): redirect it, > /dev/null to discard what this command prints")
	}
	return nil
}

// stdoutSink checks standard output and returns a sink over it.
func (a *app) stdoutSink(in *input, o outputOptions) (sinks.Sink, error) {
	if f, ok := a.stdout.(*os.File); ok {
		if err := checkWritable(f, "standard output", in, o); err != nil {
			return nil, err
		}
	}
	return sinks.NewWriter(a.stdout, "standard output"), nil
}

// checkWritable refuses an output descriptor that is closed, that is the
// input, or that is a terminal for binary output.
func checkWritable(f *os.File, what string, in *input, o outputOptions) error {
	if closedDescriptor(f) {
		return usageErrorf("%s is closed (it reads as /dev/null opened for reading and writing): redirect it, or give -o FILE (-o /dev/null to discard the output)", what)
	}
	st, err := f.Stat()
	if err != nil {
		return ioError(err, "cannot use %s", what)
	}
	if isInput(st, in) {
		return usageErrorf("%s is the input file %s: write to another file", what, in.Name())
	}
	if o.binary && term.IsTerminal(int(f.Fd())) {
		return usageErrorf("refusing to write binary ciphertext to a terminal: use -o FILE or redirect standard output")
	}
	return nil
}

// fileSink opens an output given by path (see openOutput).
func (a *app) fileSink(path string, in *input, o outputOptions) (sinks.Sink, error) {
	if fd, ok := descriptorName(path); ok {
		return a.descriptorSink(fd, path, in, o)
	}
	lst, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return a.createFile(path, o)
	case err != nil:
		return nil, ioError(err, "cannot create output %s", path)
	case lst.Mode()&fs.ModeSymlink != 0:
		if fd, ok := linkToDescriptor(path); ok {
			return a.descriptorSink(fd, path, in, o)
		}
		st, err := os.Stat(path)
		if isInput(st, in) {
			return nil, usageErrorf("output %s is the input: write to another file", path)
		}
		if err == nil && !st.Mode().IsRegular() && !st.IsDir() {
			return a.deviceSink(path, in, o)
		}
		target, _ := os.Readlink(path)
		return nil, usageErrorf("output %s is a symbolic link (to %s): enc-pipe neither replaces links nor writes through them to files; name the file itself, or remove the link", path, target)
	case isInput(lst, in):
		return nil, usageErrorf("output %s is the input: write to another file", path)
	case lst.Mode().IsRegular(), lst.IsDir():
		return a.createFile(path, o)
	}
	return a.deviceSink(path, in, o)
}

// createFile creates an atomic file output.
func (a *app) createFile(path string, o outputOptions) (sinks.Sink, error) {
	perm := sinks.DefaultFilePerm
	if o.public {
		perm = 0o666
	}
	s, err := sinks.CreateFile(path, sinks.WithPerm(perm))
	if err != nil {
		return nil, ioError(err, "cannot create output %s", path)
	}
	return s, nil
}

// deviceSink opens a device or named pipe for writing in place.
func (a *app) deviceSink(path string, in *input, o outputOptions) (sinks.Sink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return nil, ioError(err, "cannot open output %s", path)
	}
	st, err := f.Stat()
	if err == nil && (st.Mode().IsRegular() || st.IsDir()) {
		err = usageErrorf("output %s changed while it was opened", path)
	}
	if err == nil {
		err = checkWritable(f, path, in, o)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return sinks.NewWriteCloser(f, path), nil
}

// descriptorSink writes to the file descriptor fd that the output name
// stands for: standard output through a.stdout, others through a
// duplicate, so that the descriptor's offset and append mode hold (">>"
// appends, as with "-").
func (a *app) descriptorSink(fd int, name string, in *input, o outputOptions) (sinks.Sink, error) {
	if fd == 1 {
		return a.stdoutSink(in, o)
	}
	f, err := dupDescriptor(fd, name)
	if err != nil {
		return nil, usageErrorf("output %s: file descriptor %d is not open for writing: %v", name, fd, err)
	}
	if err := checkWritable(f, name, in, o); err != nil {
		f.Close()
		return nil, err
	}
	return sinks.NewWriteCloser(f, name), nil
}

// linkToDescriptor follows the chain of symbolic links from path and
// reports whether it leads to a name for a file descriptor.
func linkToDescriptor(path string) (int, bool) {
	cur := path
	for range 40 {
		if fd, ok := descriptorName(cur); ok {
			return fd, true
		}
		to, err := os.Readlink(cur)
		if err != nil {
			return 0, false
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(cur), to)
		}
		cur = to
	}
	return 0, false
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
