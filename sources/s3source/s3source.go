// Package s3source reads S3 objects as enc-pipe inputs: a streaming
// GetObject that resumes with a Range request after a dropped connection,
// and an io.ReaderAt over ranged GETs that counts the bytes it fetches, so
// that a reader that needs a few chunks of a large object fetches only
// those.
//
// An [Object] is a [sources.Source] and a [sources.RandomAccess]. Every
// request after the first names the object's ETag (If-Match), so an
// object that is replaced while it is read fails with [ErrChanged]
// instead of mixing two versions.
//
// The package moves bytes and knows nothing about encryption. It uses the
// caller's S3 client through the narrow [API] interface, which
// *s3.Client satisfies.
package s3source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/enc-pipe/enc-pipe/internal/s3retry"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/sources"
)

// API is the part of *s3.Client that this package uses.
type API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

var _ API = (*s3.Client)(nil)

// Errors returned by this package (wrapped, with the object's name).
var (
	// ErrNotFound is returned by Open when the object (or its bucket)
	// does not exist.
	ErrNotFound = errors.New("s3source: no such object")
	// ErrChanged is returned when the object was replaced or deleted
	// while it was being read: its ETag no longer matches.
	ErrChanged = errors.New("s3source: object changed while it was read")
)

// Info describes an object as its first response described it.
type Info struct {
	Bucket, Key  string
	Size         int64
	ETag         string
	LastModified time.Time
	ContentType  string
	// Metadata is the object's user metadata (x-amz-meta-*), keys in
	// lower case.
	Metadata map[string]string
}

// Option configures Open.
type Option func(*options)

type options struct {
	prefetch int
	retries  int
	backoff  time.Duration
	metrics  metrics.Provider
}

// Metric names of WithMetrics.
const (
	MetricBytes    = "s3.download.bytes"    // counter: object bytes received
	MetricRequests = "s3.download.requests" // counter: HEAD and GET requests sent
	MetricResumes  = "s3.download.resumes"  // counter: GETs sent again from the first missing byte
)

// WithMetrics reports the Object's counters (Fetched, Requests, Resumes)
// to p as they grow (default: none).
func WithMetrics(p metrics.Provider) Option {
	return func(o *options) { o.metrics = p }
}

// counter is one of an Object's counters, also reported to a
// metrics.Counter once bound.
type counter struct {
	atomic.Int64
	c metrics.Counter
}

func (c *counter) Add(d int64) {
	c.Int64.Add(d)
	if c.c != nil {
		c.c.Add(d)
	}
}

// WithPrefetch makes Open fetch the first n bytes of the object with its
// one request (a ranged GET instead of a HEAD). Reads of those bytes cost
// nothing more: a header parser, for example, is answered by Open's
// request alone. n = 0 (the default) makes Open send a HEAD.
func WithPrefetch(n int) Option {
	return func(o *options) { o.prefetch = max(n, 0) }
}

// WithRetries sets how many times in a row a failed request, or a body
// cut short, is retried (with a Range request from the first missing
// byte) before the error is returned. The default is 5. The SDK's own
// retries of a request come on top.
func WithRetries(n int) Option {
	return func(o *options) { o.retries = max(n, 0) }
}

// WithBackoff sets the first delay between retries (default 100ms); it
// doubles with every retry in a row, up to 5s, with jitter.
func WithBackoff(d time.Duration) Option {
	return func(o *options) { o.backoff = max(d, 0) }
}

// Object is an S3 object opened for reading. Read streams it from the
// start; ReadAt reads any range with a ranged GET (reads inside a window
// announced with ReadAhead share one GET).
//
// Read, Close and Name are for one goroutine at a time; ReadAt, ReadAhead,
// Size, Info and the counters are safe for concurrent use. Close closes
// open response bodies; it does not close the client.
type Object struct {
	api    API
	ctx    context.Context
	info   Info
	prefix []byte // the first bytes, fetched by Open
	o      options

	mu     sync.Mutex // guards stream, pos, err and closed
	stream *cursor    // Read's cursor, opened on first use
	pos    int64      // Read's position
	err    error      // Read's sticky error
	closed bool

	wmu sync.Mutex
	win *cursor // ReadAhead's window

	fetched, requests, resumes counter
}

var (
	_ sources.Source       = (*Object)(nil)
	_ sources.RandomAccess = (*Object)(nil)
)

// Open opens bucket/key with one request: a HEAD, or with WithPrefetch a
// ranged GET of the first bytes. It fails with ErrNotFound (wrapped) if
// the object does not exist.
//
// ctx governs every request the Object sends, also after Open returns:
// cancelling it makes a blocked Read or ReadAt return.
func Open(ctx context.Context, api API, bucket, key string, opts ...Option) (*Object, error) {
	o := options{retries: 5, backoff: 100 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	obj := &Object{api: api, ctx: ctx, o: o, info: Info{Bucket: bucket, Key: key}}
	if !metrics.IsDiscard(o.metrics) {
		obj.fetched.c = o.metrics.Counter(MetricBytes)
		obj.requests.c = o.metrics.Counter(MetricRequests)
		obj.resumes.c = o.metrics.Counter(MetricResumes)
	}
	var err error
	for attempt := 0; ; attempt++ {
		if o.prefetch > 0 {
			err = obj.openPrefetch()
		} else {
			err = obj.openHead()
		}
		if err == nil || !retryable(ctx, err) || attempt >= o.retries {
			break
		}
		if err := obj.sleep(attempt); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, obj.wrap("open", err)
	}
	return obj, nil
}

func (obj *Object) openHead() error {
	obj.requests.Add(1)
	out, err := obj.api.HeadObject(obj.ctx, &s3.HeadObjectInput{Bucket: &obj.info.Bucket, Key: &obj.info.Key})
	if err != nil {
		return err
	}
	obj.setInfo(aws.ToInt64(out.ContentLength), out.ETag, out.LastModified, out.ContentType, out.Metadata)
	return nil
}

func (obj *Object) openPrefetch() error {
	rng := "bytes=0-" + strconv.Itoa(obj.o.prefetch-1)
	obj.requests.Add(1)
	out, err := obj.api.GetObject(obj.ctx, &s3.GetObjectInput{Bucket: &obj.info.Bucket, Key: &obj.info.Key, Range: &rng})
	if err != nil {
		if statusCode(err) == http.StatusRequestedRangeNotSatisfiable {
			// An empty object has no byte 0.
			return obj.openHead()
		}
		return err
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	if cr := aws.ToString(out.ContentRange); cr != "" {
		start, _, total, err := parseContentRange(cr)
		if err != nil || start != 0 {
			return fmt.Errorf("s3source: unexpected Content-Range %q", cr)
		}
		size = total
	}
	want := min(int64(obj.o.prefetch), size)
	buf := make([]byte, want)
	n, err := io.ReadFull(out.Body, buf)
	obj.fetched.Add(int64(n))
	if err != nil {
		return err
	}
	obj.prefix = buf
	obj.setInfo(size, out.ETag, out.LastModified, out.ContentType, out.Metadata)
	return nil
}

func (obj *Object) setInfo(size int64, etag *string, mod *time.Time, ct *string, meta map[string]string) {
	obj.info.Size = size
	obj.info.ETag = aws.ToString(etag)
	obj.info.LastModified = aws.ToTime(mod)
	obj.info.ContentType = aws.ToString(ct)
	obj.info.Metadata = make(map[string]string, len(meta))
	for k, v := range meta {
		obj.info.Metadata[strings.ToLower(k)] = v
	}
}

// Name returns "s3://bucket/key".
func (obj *Object) Name() string { return "s3://" + obj.info.Bucket + "/" + obj.info.Key }

// Size returns the object's length in bytes.
func (obj *Object) Size() int64 { return obj.info.Size }

// Info returns what Open learned about the object.
func (obj *Object) Info() Info {
	i := obj.info
	i.Metadata = make(map[string]string, len(obj.info.Metadata))
	for k, v := range obj.info.Metadata {
		i.Metadata[k] = v
	}
	return i
}

// Prefix returns the bytes Open prefetched (WithPrefetch), which may be
// fewer than asked for when the object is shorter. The caller must not
// modify them.
func (obj *Object) Prefix() []byte { return obj.prefix }

// Fetched returns the number of object bytes received so far, by every
// request (Open's prefetch included).
func (obj *Object) Fetched() int64 { return obj.fetched.Load() }

// Requests returns the number of requests sent so far (HEAD and GET,
// retries included).
func (obj *Object) Requests() int64 { return obj.requests.Load() }

// Resumes returns how many times a GET was sent again, with a Range from
// the first missing byte, after a failed request or a dropped connection.
func (obj *Object) Resumes() int64 { return obj.resumes.Load() }

// Read reads the object from the start (after the prefetched bytes, one
// GET for the rest; a dropped connection is resumed from the next byte).
func (obj *Object) Read(p []byte) (int, error) {
	obj.mu.Lock()
	defer obj.mu.Unlock()
	if obj.closed {
		return 0, fmt.Errorf("s3source: read of closed object %s", obj.Name())
	}
	if obj.err != nil {
		return 0, obj.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if obj.pos < int64(len(obj.prefix)) {
		n := copy(p, obj.prefix[obj.pos:])
		obj.pos += int64(n)
		return n, nil
	}
	if obj.pos >= obj.info.Size {
		return 0, io.EOF
	}
	if obj.stream == nil {
		obj.stream = &cursor{obj: obj, pos: obj.pos, end: obj.info.Size}
	}
	n, err := obj.stream.read(p)
	obj.pos += int64(n)
	if err != nil && err != io.EOF {
		obj.stream.close()
		obj.err = obj.wrap(fmt.Sprintf("read at %d", obj.pos), err)
		return n, obj.err
	}
	return n, err
}

// ReadAt reads len(p) bytes at off: from the prefetched bytes, from the
// ReadAhead window when off is where the window's GET has got to, else
// with a ranged GET of exactly the bytes asked for. It returns io.EOF with
// fewer bytes at the end of the object.
func (obj *Object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("s3source: negative offset %d", off)
	}
	if off >= obj.info.Size {
		return 0, io.EOF
	}
	var eof error
	if rem := obj.info.Size - off; int64(len(p)) > rem {
		p, eof = p[:rem], io.EOF
	}
	n := 0
	if off < int64(len(obj.prefix)) {
		n = copy(p, obj.prefix[off:])
	}
	if n < len(p) {
		m, err := obj.readWindow(p[n:], off+int64(n))
		n += m
		if err != nil {
			return n, err
		}
	}
	if n < len(p) {
		c := &cursor{obj: obj, pos: off + int64(n), end: off + int64(len(p))}
		m, err := io.ReadFull(readerFunc(c.read), p[n:])
		c.close()
		n += m
		if err != nil {
			return n, obj.wrap(fmt.Sprintf("read at %d", off), noEOF(err))
		}
	}
	return n, eof
}

// readWindow reads what it can of p at off from the ReadAhead window.
func (obj *Object) readWindow(p []byte, off int64) (int, error) {
	obj.wmu.Lock()
	defer obj.wmu.Unlock()
	w := obj.win
	if w == nil || w.pos != off || w.pos >= w.end {
		return 0, nil
	}
	p = p[:min(int64(len(p)), w.end-w.pos)]
	n, err := io.ReadFull(readerFunc(w.read), p)
	if err != nil {
		w.close()
		obj.win = nil
		return n, obj.wrap(fmt.Sprintf("read at %d", off), noEOF(err))
	}
	if w.pos >= w.end {
		w.close()
		obj.win = nil
	}
	return n, nil
}

// ReadAhead announces that the next ReadAt calls read [off, off+n) in
// order, from the start: they are then served by one ranged GET of
// exactly that span (resumed if the connection drops) instead of one GET
// each. The window ends at its last byte, or at the next ReadAhead. Reads
// out of order still work, each with a GET of its own.
func (obj *Object) ReadAhead(off, n int64) {
	obj.wmu.Lock()
	defer obj.wmu.Unlock()
	if obj.win != nil {
		obj.win.close()
		obj.win = nil
	}
	off = max(off, int64(len(obj.prefix)))
	end := min(off+n, obj.info.Size)
	if n > 0 && off < end {
		obj.win = &cursor{obj: obj, pos: off, end: end}
	}
}

// Close closes the response bodies the Object holds. It is idempotent.
func (obj *Object) Close() error {
	obj.mu.Lock()
	obj.closed = true
	if obj.stream != nil {
		obj.stream.close()
	}
	obj.mu.Unlock()
	obj.ReadAhead(0, 0)
	return nil
}

// cursor reads [pos, end) of the object through one GET, and resumes
// with a new GET from pos when the body fails or ends early.
type cursor struct {
	obj      *Object
	pos, end int64
	body     io.ReadCloser
	broken   bool // the last body failed: the next GET is a resume
	failures int  // failed attempts in a row
}

func (c *cursor) read(p []byte) (int, error) {
	if c.pos >= c.end {
		return 0, io.EOF
	}
	if rem := c.end - c.pos; int64(len(p)) > rem {
		p = p[:rem]
	}
	for {
		if c.body == nil {
			if c.broken {
				c.obj.resumes.Add(1)
			}
			body, err := c.obj.get(c.pos, c.end)
			if err != nil {
				if err2 := c.fail(err); err2 != nil {
					return 0, err2
				}
				continue
			}
			c.body, c.broken = body, false
		}
		n, err := c.body.Read(p)
		c.pos += int64(n)
		c.obj.fetched.Add(int64(n))
		if n > 0 {
			c.failures = 0
		}
		switch {
		case err == nil && n > 0:
			return n, nil
		case err == nil:
			continue
		case err == io.EOF && c.pos >= c.end:
			c.close()
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		// The body failed or ended before end: drop it and resume.
		c.close()
		c.broken = true
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if n > 0 {
			return n, nil
		}
		if err2 := c.fail(err); err2 != nil {
			return 0, err2
		}
	}
}

// fail counts a failed attempt; it returns the error to give up with, or
// nil after sleeping before the next attempt.
func (c *cursor) fail(err error) error {
	c.broken = true
	if !retryable(c.obj.ctx, err) || c.failures >= c.obj.o.retries {
		return err
	}
	if err := c.obj.sleep(c.failures); err != nil {
		return err
	}
	c.failures++
	return nil
}

func (c *cursor) close() {
	if c.body != nil {
		c.body.Close()
		c.body = nil
	}
}

// get sends a GET for [pos, end) that must match the object's ETag.
func (obj *Object) get(pos, end int64) (io.ReadCloser, error) {
	rng := "bytes=" + strconv.FormatInt(pos, 10) + "-" + strconv.FormatInt(end-1, 10)
	in := &s3.GetObjectInput{Bucket: &obj.info.Bucket, Key: &obj.info.Key, Range: &rng}
	if obj.info.ETag != "" {
		in.IfMatch = &obj.info.ETag
	}
	obj.requests.Add(1)
	out, err := obj.api.GetObject(obj.ctx, in)
	if err != nil {
		switch statusCode(err) {
		case http.StatusPreconditionFailed, http.StatusNotFound:
			return nil, fmt.Errorf("%w: %w", ErrChanged, err)
		}
		return nil, err
	}
	if obj.info.ETag != "" && out.ETag != nil && *out.ETag != obj.info.ETag {
		out.Body.Close()
		return nil, fmt.Errorf("%w: ETag %s, was %s", ErrChanged, *out.ETag, obj.info.ETag)
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		start, last, _, err := parseContentRange(cr)
		if err != nil || start != pos || last != end-1 {
			out.Body.Close()
			return nil, fmt.Errorf("s3source: asked for %s, got Content-Range %q", rng, cr)
		}
	} else if pos != 0 || aws.ToInt64(out.ContentLength) != end {
		out.Body.Close()
		return nil, fmt.Errorf("s3source: asked for %s, got a response without Content-Range", rng)
	}
	return out.Body, nil
}

func (obj *Object) sleep(attempt int) error { return s3retry.Sleep(obj.ctx, obj.o.backoff, attempt) }

func (obj *Object) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nb *types.NoSuchBucket
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nb) ||
		(what == "open" && statusCode(err) == http.StatusNotFound) {
		return fmt.Errorf("%w: %s: %w", ErrNotFound, obj.Name(), err)
	}
	return fmt.Errorf("s3source: %s %s: %w", what, obj.Name(), err)
}

func retryable(ctx context.Context, err error) bool { return s3retry.Retryable(ctx, err, ErrChanged) }

func statusCode(err error) int { return s3retry.StatusCode(err) }

// parseContentRange parses "bytes START-LAST/TOTAL".
func parseContentRange(s string) (start, last, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, errors.New("bad Content-Range")
	}
	span, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, errors.New("bad Content-Range")
	}
	a, b, ok := strings.Cut(span, "-")
	if !ok {
		return 0, 0, 0, errors.New("bad Content-Range")
	}
	if start, err = strconv.ParseInt(a, 10, 64); err != nil {
		return
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil {
		return
	}
	if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
		return
	}
	if start < 0 || last < start || total <= last {
		err = errors.New("bad Content-Range")
	}
	return
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
