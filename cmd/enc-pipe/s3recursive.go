package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
	"github.com/enc-pipe/enc-pipe/transfer"
)

// runRecursive encrypts or decrypts every object under an S3 prefix or a
// local directory into another, names mapped one to one, --jobs objects at
// a time. Objects that an earlier run already wrote from the same input
// (same size and version) are skipped; a failed object is reported and
// the others go on; a summary line ends the run.
func (a *app) runRecursive(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	inFlag, _ := cmd.Flags().GetString("input")
	outFlag, _ := cmd.Flags().GetString("output")
	inName, outName, err := pickIO(args, inFlag, outFlag)
	if err != nil {
		return err
	}
	if inName == "-" || outName == "-" {
		return usageErrorf("--recursive needs an input and an output: an S3 prefix (s3://BUCKET/PREFIX/) or a directory each")
	}
	if f := cmd.Flags().Lookup("range"); f != nil && f.Changed {
		return usageErrorf("--range cannot be used with --recursive")
	}
	// The outputs in flight, aborted together on an interruption: one
	// entry in the app's list however many objects the run writes.
	live := &sinkSet{live: map[string]sinks.Sink{}}
	a.track(live)
	src, err := a.store(ctx, inName, "input", live)
	if err != nil {
		return err
	}
	dst, err := a.store(ctx, outName, "output", live)
	if err != nil {
		return err
	}
	if src.String() == dst.String() {
		return usageErrorf("the output %s is the input", outName)
	}

	var job transfer.Job
	if a.s3.encrypting {
		opts, err := a.recursiveEncryptOptions(cmd)
		if err != nil {
			return err
		}
		if a.g.partition == "" {
			return usageErrorf("--partition: empty partition id")
		}
		be, err := a.openBackend(ctx, true)
		if err != nil {
			return err
		}
		defer be.Close()
		sess, err := be.factory.GetSession(a.g.partition)
		if err != nil {
			return keyError(err, "cannot open partition %q", a.g.partition)
		}
		defer sess.Close()
		job = func(ctx context.Context, out sinks.Sink, in sources.Source, _ transfer.Entry) error {
			var w io.Writer = out
			if s3w, ok := out.(*s3sink.Writer); ok {
				w = &s3Output{Writer: s3w, align: true}
			}
			return a.encryptStream(ctx, w, in, sess, opts)
		}
	} else {
		ropts, err := a.recursiveDecryptOptions(cmd)
		if err != nil {
			return err
		}
		// The keys are opened by the first object that needs them: a
		// rerun that skips everything opens none.
		keys := &lazyBackend{open: func() (*backend, error) { return a.openBackend(ctx, false) }}
		defer keys.Close()
		job = func(ctx context.Context, out sinks.Sink, in sources.Source, _ transfer.Entry) error {
			return a.decryptStream(ctx, out, in, keys, ropts)
		}
	}

	r := &transfer.Runner{Src: src, Dst: dst, Job: job, Jobs: a.s3.t.jobs, Force: a.s3.t.force,
		Report: func(e transfer.Entry, s transfer.Status, err error) {
			live.remove(e.Name)
			if s == transfer.Failed && ctx.Err() == nil {
				a.warnf("%s: %v", src.Location(e.Name), err)
			}
		}}
	res, err := r.Run(ctx)
	verb := map[bool]string{true: "encrypted", false: "decrypted"}[a.s3.encrypting]
	a.noticef("%d objects under %s: %d %s (%d bytes in %.1fs), %d skipped as already done, %d failed",
		res.Objects, src, res.Written, verb, res.Bytes, res.Elapsed.Seconds(), res.Skipped, res.Failed)
	if err == nil {
		return nil
	}
	if errors.Is(err, transfer.ErrFailures) {
		code := exitIO
		if len(res.Failures) > 0 {
			if c := exitCode(res.Failures[0].Err); c != exitFailure {
				code = c
			}
		}
		return &cliError{code: code, msg: fmt.Sprintf("%d of %d objects failed (see above; run again to retry them)", res.Failed, res.Objects), terse: true}
	}
	return ioError(err, "recursive %s failed", strings.TrimSuffix(verb, "ed")+"ion")
}

// store opens the root of a recursive run: an S3 prefix (a trailing "/" is
// implied) or an existing local directory (created for an output).
func (a *app) store(ctx context.Context, name, what string, live *sinkSet) (transfer.Store, error) {
	loc, err := location.Parse(name)
	if err != nil {
		return nil, usageErrorf("%s: %v", what, err)
	}
	switch loc.Kind {
	case location.S3:
		client, err := a.s3Client(ctx)
		if err != nil {
			return nil, err
		}
		prefix := loc.Key
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		s := &transfer.S3Store{Client: client, Bucket: loc.Bucket, Prefix: prefix,
			SourceOptions: []s3source.Option{s3source.WithPrefetch(s3Prefetch), s3source.WithMetrics(a.obs.provider)},
			Track:         live.add}
		if what == "output" {
			a.reserveMemory(int64(a.s3.t.jobs) * int64(a.s3.t.concurrency+1) * a.partSize(-1))
			s.SinkOptions = func(src transfer.Entry) []s3sink.Option {
				return []s3sink.Option{s3sink.WithPartSize(a.partSize(src.Size)), s3sink.WithConcurrency(a.s3.t.concurrency),
					s3sink.WithTracker(a.uploadTracker()), s3sink.WithMetrics(a.obs.provider)}
			}
			if a.s3.encrypting {
				s.Metadata = func(transfer.Entry) map[string]string { return a.ciphertextMetadata() }
			}
		}
		return s, nil
	case location.File:
		st, err := os.Stat(loc.Path)
		switch {
		case err == nil && !st.IsDir():
			return nil, usageErrorf("%s %s is not a directory (--recursive)", what, loc.Path)
		case err != nil && what == "input":
			return nil, ioError(err, "cannot read input directory")
		case err != nil:
			if err := os.MkdirAll(loc.Path, 0o777); err != nil {
				return nil, ioError(err, "cannot create output directory")
			}
		}
		perm := []sinks.FileOption{}
		if !a.s3.encrypting {
			perm = append(perm, sinks.WithPerm(0o600)) // plaintext
		}
		return &transfer.DirStore{Root: loc.Path, Track: live.add, FileOptions: perm}, nil
	}
	return nil, usageErrorf("--recursive %s must be an S3 prefix or a directory, not %s", what, name)
}

// recursiveEncryptOptions are the stream options from the encrypt flags.
func (a *app) recursiveEncryptOptions(cmd *cobra.Command) ([]stream.WriterOption, error) {
	f := &encryptFlags{}
	fl := cmd.Flags()
	f.chunkSize, _ = fl.GetString("chunk-size")
	f.workers, _ = fl.GetInt("workers")
	f.compress, _ = fl.GetString("compress")
	f.contentType, _ = fl.GetString("content-type")
	f.meta, _ = fl.GetStringArray("meta")
	return f.streamOptions()
}

// recursiveDecryptOptions are the read options from the decrypt flags.
func (a *app) recursiveDecryptOptions(cmd *cobra.Command) ([]encpipe.ReadOption, error) {
	workers, _ := cmd.Flags().GetInt("workers")
	if workers < 0 {
		return nil, usageErrorf("--workers %d: must be 0 (one per CPU) or more", workers)
	}
	ropts := []encpipe.ReadOption{encpipe.WithStreamOptions(stream.WithReaderConcurrency(workers), stream.WithReaderMetrics(a.obs.provider))}
	if a.partitionExplicit(cmd) {
		if a.g.partition == "" {
			return nil, usageErrorf("--partition: empty partition id")
		}
		ropts = append(ropts, encpipe.AllowPartitions(a.g.partition))
	}
	return ropts, nil
}

// sinkSet is the outputs of a recursive run that are still open. As a
// sinks.Sink it only aborts: CloseWithError aborts every output in it.
type sinkSet struct {
	mu      sync.Mutex
	live    map[string]sinks.Sink
	aborted error
}

func (s *sinkSet) add(name string, out sinks.Sink) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted != nil {
		out.CloseWithError(s.aborted)
		return
	}
	s.live[name] = out
}

func (s *sinkSet) remove(name string) {
	s.mu.Lock()
	delete(s.live, name)
	s.mu.Unlock()
}

func (s *sinkSet) Write([]byte) (int, error) { return 0, sinks.ErrClosed }
func (s *sinkSet) Close() error              { return nil }
func (s *sinkSet) Name() string              { return "the outputs of a recursive run" }

func (s *sinkSet) CloseWithError(cause error) error {
	if cause == nil {
		cause = sinks.ErrAborted
	}
	s.mu.Lock()
	s.aborted = cause
	live := s.live
	s.live = map[string]sinks.Sink{}
	s.mu.Unlock()
	var errs []error
	for _, out := range live {
		errs = append(errs, out.CloseWithError(cause))
	}
	return errors.Join(errs...)
}
