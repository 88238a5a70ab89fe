package transfer

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/sources"
)

// Entry is an object of a Store.
type Entry struct {
	// Name is the object's name relative to the store's root, with "/"
	// between path elements.
	Name    string
	Size    int64
	ModTime time.Time
	// Version tells two states of an object apart: "etag:ETAG" for an S3
	// object, "mtime:NANOSECONDS" for a file.
	Version string
}

// Store is a set of objects under a root: an S3 prefix ([S3Store]) or a
// local directory ([DirStore]). Its methods are safe for concurrent use.
type Store interface {
	// String names the root for messages (s3://bucket/prefix/, or a path).
	String() string
	// Location names one object for messages.
	Location(name string) string
	// List calls fn for every object under the root, in no particular
	// order, until fn returns an error.
	List(ctx context.Context, fn func(Entry) error) error
	// Open opens an object for reading.
	Open(ctx context.Context, name string) (sources.Source, error)
	// Create opens an object for writing. The sink records src's size and
	// version (S3 metadata, or a file's modification time) when it
	// commits, so that Done can tell later that name was written from src.
	Create(ctx context.Context, name string, src Entry) (sinks.Sink, error)
	// Done reports whether name exists and was written from src as it is
	// now, by a Create whose sink committed.
	Done(ctx context.Context, name string, src Entry) (bool, error)
}

// Metadata keys that S3Store writes on every object it creates.
const (
	MetaSourceSize    = "enc-pipe-source-size"
	MetaSourceVersion = "enc-pipe-source-version"
)

// Job transforms one object: it reads src and writes dst, and must not
// close either (the Runner commits dst if Job returns nil and aborts it
// otherwise).
type Job func(ctx context.Context, dst sinks.Sink, src sources.Source, entry Entry) error

// Status is what became of one object.
type Status int

// The statuses reported to Runner.Report.
const (
	Written Status = iota // the job ran and its output was committed
	Skipped               // an earlier run already wrote the output
	Failed                // the job, or opening, or committing failed
)

// Result sums up a run.
type Result struct {
	Objects, Written, Skipped, Failed int
	// Bytes is the size of the inputs that were written.
	Bytes int64
	// Failures lists the objects that failed with their errors (at most
	// MaxFailures of them; Failed counts all).
	Failures []Failure
	Elapsed  time.Duration
}

// Failure is an object that failed.
type Failure struct {
	Name string
	Err  error
}

// MaxFailures bounds Result.Failures.
const MaxFailures = 1000

// Runner runs a Job for every object of Src, writing to the object of the
// same name in Dst.
type Runner struct {
	Src, Dst Store
	Job      Job
	// Jobs is how many objects are in flight at once (default 4).
	Jobs int
	// Force runs the job even for objects that Dst says are done.
	Force bool
	// Report, if set, is called once per object as it ends, from the
	// goroutine that ran it.
	Report func(e Entry, s Status, err error)
}

// ErrFailures is returned (wrapped) by Run when some objects failed.
var ErrFailures = errors.New("transfer: some objects failed")

// Run lists Src and runs the job for every object that is not done yet.
// It returns the summary, and an error if listing failed, ctx was
// cancelled (objects in flight are aborted), or any object failed
// (ErrFailures, wrapping the first failure).
func (r *Runner) Run(ctx context.Context) (Result, error) {
	start := time.Now()
	jobs := r.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	var (
		mu      sync.Mutex
		res     Result
		first   error
		wg      sync.WaitGroup
		bytes   atomic.Int64
		sem     = make(chan struct{}, jobs)
		objects int
	)
	record := func(e Entry, s Status, err error) {
		mu.Lock()
		switch s {
		case Written:
			res.Written++
		case Skipped:
			res.Skipped++
		case Failed:
			res.Failed++
			if first == nil {
				first = fmt.Errorf("%s: %w", r.Src.Location(e.Name), err)
			}
			if len(res.Failures) < MaxFailures {
				res.Failures = append(res.Failures, Failure{Name: e.Name, Err: err})
			}
		}
		mu.Unlock()
		if r.Report != nil {
			r.Report(e, s, err)
		}
	}
	listErr := r.Src.List(ctx, func(e Entry) error {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		objects++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := r.one(ctx, e)
			if s == Written {
				bytes.Add(e.Size)
			}
			record(e, s, err)
		}()
		return nil
	})
	wg.Wait()
	res.Objects = objects
	res.Bytes = bytes.Load()
	res.Elapsed = time.Since(start)
	switch {
	case ctx.Err() != nil:
		return res, context.Cause(ctx)
	case listErr != nil:
		return res, fmt.Errorf("transfer: cannot list %s: %w", r.Src, listErr)
	case res.Failed > 0:
		return res, fmt.Errorf("%w: %d of %d: first: %w", ErrFailures, res.Failed, res.Objects, first)
	}
	return res, nil
}

func (r *Runner) one(ctx context.Context, e Entry) (Status, error) {
	if ctx.Err() != nil {
		return Failed, context.Cause(ctx)
	}
	if !r.Force {
		done, err := r.Dst.Done(ctx, e.Name, e)
		if err != nil {
			return Failed, err
		}
		if done {
			return Skipped, nil
		}
	}
	src, err := r.Src.Open(ctx, e.Name)
	if err != nil {
		return Failed, err
	}
	defer src.Close()
	dst, err := r.Dst.Create(ctx, e.Name, e)
	if err != nil {
		return Failed, err
	}
	if err := r.Job(ctx, dst, src, e); err != nil {
		dst.CloseWithError(err)
		return Failed, err
	}
	if err := dst.Close(); err != nil {
		return Failed, err
	}
	return Written, nil
}

// fileVersion is the Version of a file.
func fileVersion(info fs.FileInfo) string {
	return "mtime:" + strconv.FormatInt(info.ModTime().UnixNano(), 10)
}
