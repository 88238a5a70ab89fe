// Package s3sink writes S3 objects as enc-pipe outputs: a streaming
// multipart upload with several parts in flight and bounded memory, that
// either completes or leaves nothing behind.
//
// A [Writer] is a [sinks.Sink]. Bytes are cut into parts of a fixed size
// (the first part may be longer by [Writer.Align] bytes), and each full
// part is uploaded by a goroutine of its own while the next one fills. At
// most Concurrency parts are in flight; a Write that would need another
// buffer waits for one to come back, so memory stays at
// (Concurrency + 1) × part size whatever the object's length. A failed
// part is retried with backoff.
//
// Close completes the upload, and only then does the object appear. Any
// failure, and CloseWithError, abort it instead: no partial object ever
// becomes visible and no incomplete upload is left to be billed. An
// object that ends before its first part is full is written with one
// PutObject. Only a process that is killed before it can abort leaves an
// incomplete upload; a [Tracker] can hand the upload to a process that
// outlives it, and a bucket lifecycle rule (AbortIncompleteMultipartUpload)
// is the last resort.
//
// The package moves bytes and knows nothing about encryption. It uses the
// caller's S3 client through the narrow [API] interface, which
// *s3.Client satisfies. It does not build on the SDK's feature/s3/manager
// (deprecated) nor on feature/s3/transfermanager (v0.x): neither lets the
// first part be longer than the others (Align), reports uploads as they
// start (Tracker), or keeps CreateMultipartUpload and Complete from being
// cancelled half-way, which is what makes an abort reliable.
package s3sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/enc-pipe/enc-pipe/internal/s3retry"
	"github.com/enc-pipe/enc-pipe/metrics"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// API is the part of *s3.Client that this package uses.
type API interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ API = (*s3.Client)(nil)

// Limits of S3 multipart uploads, and this package's defaults.
const (
	MinPartSize        = 5 << 20 // every part but the last
	MaxPartSize        = 5 << 30
	MaxParts           = 10000
	DefaultPartSize    = 8 << 20
	DefaultConcurrency = 4
)

// Errors returned by this package.
var (
	// ErrTooManyParts is returned by Write when the object would need
	// more than MaxParts parts of the configured size.
	ErrTooManyParts = errors.New("s3sink: the object needs more than 10000 parts: use a larger part size")
	// ErrInvalidOption is returned by New for an option out of range.
	ErrInvalidOption = errors.New("s3sink: invalid option")
)

// Tracker is told when a multipart upload starts and when it has been
// completed or aborted. Its methods are called from the goroutine that
// calls Write, Close or CloseWithError, and must not block for long.
type Tracker interface {
	Started(bucket, key, uploadID string)
	Ended(bucket, key, uploadID string)
}

// Option configures New.
type Option func(*options)

type options struct {
	partSize    int64
	concurrency int
	metadata    map[string]string
	contentType string
	retries     int
	backoff     time.Duration
	tracker     Tracker
	metrics     metrics.Provider
}

// Metric names of WithMetrics.
const (
	MetricParts   = "s3.upload.parts"   // counter: parts uploaded
	MetricBytes   = "s3.upload.bytes"   // counter: bytes of the parts and PutObjects that succeeded
	MetricObjects = "s3.upload.objects" // counter: objects committed (PutObject or a completed upload)
	MetricAborts  = "s3.upload.aborts"  // counter: uploads aborted (CloseWithError or a failure)
	MetricRetries = "s3.upload.retries" // counter: requests sent again after a retryable failure
	MetricPart    = "s3.upload.part"    // timer: one UploadPart or PutObject request
)

// WithMetrics reports parts, bytes, objects, aborts, retries and request
// times to p (default: none).
func WithMetrics(p metrics.Provider) Option { return func(o *options) { o.metrics = p } }

// instruments are a Writer's metrics; nil without a Provider.
type instruments struct {
	parts, bytes, objects, aborts, retries metrics.Counter
	part                                   metrics.Timer
}

func newInstruments(p metrics.Provider) *instruments {
	if metrics.IsDiscard(p) {
		return nil
	}
	return &instruments{parts: p.Counter(MetricParts), bytes: p.Counter(MetricBytes), objects: p.Counter(MetricObjects),
		aborts: p.Counter(MetricAborts), retries: p.Counter(MetricRetries), part: p.Timer(MetricPart)}
}

// sent records one request of n bytes that took since start and
// succeeded (err nil); parts counts it as a part.
func (in *instruments) sent(start time.Time, n int, err error, part bool) {
	if in == nil {
		return
	}
	in.part.Observe(time.Since(start))
	if err == nil {
		in.bytes.Add(int64(n))
		if part {
			in.parts.Add(1)
		}
	}
}

// WithPartSize sets the size of every part but the last (default
// DefaultPartSize), from MinPartSize to MaxPartSize.
func WithPartSize(n int64) Option { return func(o *options) { o.partSize = n } }

// WithConcurrency sets how many parts are uploaded at the same time
// (default DefaultConcurrency, at least 1).
func WithConcurrency(n int) Option { return func(o *options) { o.concurrency = n } }

// WithMetadata sets the object's user metadata (x-amz-meta-*). Keys and
// values must be US-ASCII (HTTP header rules).
func WithMetadata(m map[string]string) Option {
	return func(o *options) {
		o.metadata = make(map[string]string, len(m))
		for k, v := range m {
			o.metadata[k] = v
		}
	}
}

// WithContentType sets the object's Content-Type.
func WithContentType(ct string) Option { return func(o *options) { o.contentType = ct } }

// WithRetries sets how many times a failed part (or PutObject, or
// Complete) is sent again before the upload fails (default 4). The SDK's
// own retries of a request come on top.
func WithRetries(n int) Option { return func(o *options) { o.retries = max(n, 0) } }

// WithBackoff sets the first delay between retries (default 200ms); it
// doubles with every retry, up to 5s, with jitter.
func WithBackoff(d time.Duration) Option { return func(o *options) { o.backoff = max(d, 0) } }

// WithTracker reports multipart uploads to t as they start and end.
func WithTracker(t Tracker) Option { return func(o *options) { o.tracker = t } }

// Writer uploads one object. See the package doc; the concurrency rules
// are those of [sinks.Sink]: Write and Close from one goroutine,
// CloseWithError from any (it interrupts a Write that waits for a buffer
// or a Close that waits for parts, then aborts).
type Writer struct {
	api         API
	bucket, key string
	o           options
	ctx         context.Context // cancelled on the first failure or abort
	cancel      context.CancelCauseFunc
	cleanupCtx  context.Context // not cancelled: for AbortMultipartUpload

	wmu      sync.Mutex // serializes Write, Close and the end of CloseWithError
	state    state
	result   error   // what Close returned, or the abort cause
	buf      *[]byte // the part being filled
	extra    int64   // the first part holds partSize + extra bytes
	nextPart int32   // number of the next part to cut
	uploadID string
	written  int64
	free     chan *[]byte  // buffers handed back by finished parts
	slots    chan struct{} // one per part in flight
	nalloc   int
	wg       sync.WaitGroup // parts in flight

	m *instruments // nil without metrics

	mu    sync.Mutex // guards parts and err
	parts []types.CompletedPart
	err   error // the first part failure
}

type state int

const (
	open state = iota
	committed
	aborted
)

var _ sinks.Sink = (*Writer)(nil)

// New returns a Writer for bucket/key. It sends nothing yet: the upload
// starts when the first part is full, or at Close for a short object.
// ctx governs every request; when it is cancelled, Writes fail and the
// upload is aborted by CloseWithError (with a context of its own, so the
// abort is still sent). The caller must call Close or CloseWithError.
func New(ctx context.Context, api API, bucket, key string, opts ...Option) (*Writer, error) {
	o := options{partSize: DefaultPartSize, concurrency: DefaultConcurrency, retries: 4, backoff: 200 * time.Millisecond}
	for _, opt := range opts {
		opt(&o)
	}
	if o.partSize < MinPartSize || o.partSize > MaxPartSize {
		return nil, fmt.Errorf("%w: part size %d is outside [%d, %d]", ErrInvalidOption, o.partSize, MinPartSize, int64(MaxPartSize))
	}
	if o.concurrency < 1 {
		return nil, fmt.Errorf("%w: concurrency %d", ErrInvalidOption, o.concurrency)
	}
	if bucket == "" || key == "" {
		return nil, fmt.Errorf("%w: empty bucket or key", ErrInvalidOption)
	}
	w := &Writer{api: api, bucket: bucket, key: key, o: o, nextPart: 1,
		cleanupCtx: context.WithoutCancel(ctx), free: make(chan *[]byte, o.concurrency+1),
		slots: make(chan struct{}, o.concurrency), m: newInstruments(o.metrics)}
	w.ctx, w.cancel = context.WithCancelCause(ctx)
	return w, nil
}

// Name returns "s3://bucket/key".
func (w *Writer) Name() string { return "s3://" + w.bucket + "/" + w.key }

// PartSize returns the size of every part but the first and the last.
func (w *Writer) PartSize() int64 { return w.o.partSize }

// Align makes the first part extra bytes longer than the others, so that
// the part boundaries fall at extra + k × part size: after a header of
// extra bytes, with a part size that is a multiple of a record size, every
// part then holds whole records. It must be called before the first part
// is full.
func (w *Writer) Align(extra int64) error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.nextPart != 1 || extra < 0 || extra+w.o.partSize > MaxPartSize {
		return fmt.Errorf("%w: Align(%d) after the first part or out of range", ErrInvalidOption, extra)
	}
	w.extra = extra
	if w.buf != nil && int64(cap(*w.buf)) < w.partTarget() {
		b := append(make([]byte, 0, w.partTarget()), *w.buf...)
		w.buf = &b
	}
	return nil
}

// Write buffers p and starts the upload of every part it fills. It blocks
// while Concurrency parts are in flight and no buffer is free. After a
// failure every Write returns the first error.
func (w *Writer) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.state != open {
		return 0, w.closedErr()
	}
	if err := w.firstErr(); err != nil {
		return 0, err
	}
	n := 0
	for n < len(p) {
		if w.buf == nil {
			b, err := w.getBuf()
			if err != nil {
				return n, err
			}
			w.buf = b
		}
		target := int(w.partTarget())
		k := copy((*w.buf)[len(*w.buf):target], p[n:])
		*w.buf = (*w.buf)[:len(*w.buf)+k]
		n += k
		w.written += int64(k)
		if len(*w.buf) == target {
			if err := w.sendPart(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *Writer) partTarget() int64 {
	if w.nextPart == 1 {
		return w.o.partSize + w.extra
	}
	return w.o.partSize
}

// getBuf returns an empty part buffer: a free one, a new one while fewer
// than Concurrency + 1 exist, or else the next one handed back.
func (w *Writer) getBuf() (*[]byte, error) {
	select {
	case b := <-w.free:
		return b, nil
	default:
	}
	if w.nalloc < w.o.concurrency+1 {
		w.nalloc++
		b := make([]byte, 0, w.partTarget())
		return &b, nil
	}
	select {
	case b := <-w.free:
		return b, nil
	case <-w.ctx.Done():
		return nil, w.stopErr()
	}
}

// sendPart starts the upload of the full buffer as the next part.
func (w *Writer) sendPart() error {
	if w.nextPart > MaxParts {
		w.fail(ErrTooManyParts)
		return ErrTooManyParts
	}
	if w.uploadID == "" {
		if err := w.create(); err != nil {
			w.fail(err)
			return err
		}
	}
	select {
	case w.slots <- struct{}{}:
	case <-w.ctx.Done():
		return w.stopErr()
	}
	buf, num := w.buf, w.nextPart
	w.buf = nil
	w.nextPart++
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer func() { <-w.slots }()
		err := w.uploadPart(num, *buf)
		*buf = (*buf)[:0]
		w.free <- buf
		if err != nil {
			w.fail(fmt.Errorf("s3sink: part %d of %s: %w", num, w.Name(), err))
		}
	}()
	return nil
}

func (w *Writer) create() error {
	in := &s3.CreateMultipartUploadInput{Bucket: &w.bucket, Key: &w.key, Metadata: w.o.metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
	if w.o.contentType != "" {
		in.ContentType = &w.o.contentType
	}
	// Once sent, the request is not cancelled: the server may create the
	// upload whatever happens to the connection, and only its id lets
	// the upload be aborted.
	ctx, cancel := context.WithTimeout(w.cleanupCtx, 2*time.Minute)
	defer cancel()
	var out *s3.CreateMultipartUploadOutput
	err := w.retry(func() (err error) {
		out, err = w.api.CreateMultipartUpload(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("s3sink: cannot start the upload of %s: %w", w.Name(), err)
	}
	w.uploadID = aws.ToString(out.UploadId)
	if w.o.tracker != nil {
		w.o.tracker.Started(w.bucket, w.key, w.uploadID)
	}
	if w.ctx.Err() != nil {
		return w.stopErr()
	}
	return nil
}

func (w *Writer) uploadPart(num int32, data []byte) error {
	return w.retry(func() error {
		start := time.Now()
		out, err := w.api.UploadPart(w.ctx, &s3.UploadPartInput{Bucket: &w.bucket, Key: &w.key, UploadId: &w.uploadID,
			PartNumber: aws.Int32(num), Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
		w.m.sent(start, len(data), err, true)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.parts = append(w.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
		w.mu.Unlock()
		return nil
	})
}

// retry calls f until it succeeds, fails for good, or the retries run out.
func (w *Writer) retry(f func() error) error {
	for attempt := 0; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if w.ctx.Err() != nil {
			return w.stopErr()
		}
		if attempt >= w.o.retries || !s3retry.Retryable(w.ctx, err) {
			return err
		}
		if s3retry.Sleep(w.ctx, w.o.backoff, attempt) != nil {
			return w.stopErr()
		}
		if w.m != nil {
			w.m.retries.Add(1)
		}
	}
}

// fail records the first failure and stops the other parts.
func (w *Writer) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
	w.cancel(err)
}

func (w *Writer) firstErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// stopErr is the error of an operation interrupted by the cancellation
// of w.ctx: the first failure, or the cause of the cancellation.
func (w *Writer) stopErr() error {
	if err := w.firstErr(); err != nil {
		return err
	}
	return context.Cause(w.ctx)
}

// Close uploads the last part and completes the upload (or, for an object
// shorter than one part, sends it with PutObject). On any failure the
// upload is aborted and the error returned. Close after Close or
// CloseWithError returns the first result.
func (w *Writer) Close() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.state != open {
		return w.result
	}
	err := w.firstErr()
	if err == nil && w.uploadID == "" {
		err = w.put()
	} else if err == nil {
		err = w.complete()
	}
	if err != nil {
		w.abort(err)
		w.result = err
		return err
	}
	w.state = committed
	w.release()
	if w.m != nil {
		w.m.objects.Add(1)
	}
	return nil
}

func (w *Writer) put() error {
	var data []byte
	if w.buf != nil {
		data = *w.buf
	}
	in := &s3.PutObjectInput{Bucket: &w.bucket, Key: &w.key, Metadata: w.o.metadata,
		ContentLength: aws.Int64(int64(len(data))), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
	if w.o.contentType != "" {
		in.ContentType = &w.o.contentType
	}
	err := w.retry(func() error {
		in.Body = bytes.NewReader(data)
		start := time.Now()
		_, err := w.api.PutObject(w.ctx, in)
		w.m.sent(start, len(data), err, false)
		return err
	})
	if err != nil {
		return fmt.Errorf("s3sink: cannot write %s: %w", w.Name(), err)
	}
	return nil
}

func (w *Writer) complete() error {
	if w.buf != nil && len(*w.buf) > 0 {
		if err := w.sendPart(); err != nil {
			return err
		}
	}
	w.wg.Wait()
	if err := w.firstErr(); err != nil {
		return err
	}
	if err := w.ctx.Err(); err != nil {
		return w.stopErr()
	}
	w.mu.Lock()
	parts := slices.Clone(w.parts)
	w.mu.Unlock()
	slices.SortFunc(parts, func(a, b types.CompletedPart) int { return int(*a.PartNumber - *b.PartNumber) })
	in := &s3.CompleteMultipartUploadInput{Bucket: &w.bucket, Key: &w.key, UploadId: &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
	// Complete is not cancelled once sent either: the object then either
	// appears whole or not at all, and the outcome is known.
	ctx, cancel := context.WithTimeout(w.cleanupCtx, 10*time.Minute)
	defer cancel()
	err := w.retry(func() error {
		_, err := w.api.CompleteMultipartUpload(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("s3sink: cannot complete the upload of %s: %w", w.Name(), err)
	}
	if w.o.tracker != nil {
		w.o.tracker.Ended(w.bucket, w.key, w.uploadID)
	}
	return nil
}

// CloseWithError aborts: parts in flight are cancelled, and the multipart
// upload, if one was started, is aborted, so the object does not appear
// (an existing object of that name stays as it was). It waits for a
// concurrent Write or Close to return. It returns an error only if the
// abort request failed; the upload is then left for a lifecycle rule (or
// the Tracker) to remove. After Close has committed it does nothing.
func (w *Writer) CloseWithError(cause error) error {
	if cause == nil {
		cause = sinks.ErrAborted
	}
	w.cancel(cause)
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if w.state != open {
		return nil
	}
	w.result = cause
	return w.abort(cause)
}

// abort stops the parts, aborts the upload and marks the Writer aborted.
func (w *Writer) abort(cause error) error {
	w.cancel(cause)
	w.wg.Wait()
	w.state = aborted
	w.release()
	if w.m != nil {
		w.m.aborts.Add(1)
	}
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(w.cleanupCtx, time.Minute)
	defer cancel()
	var err error
	for attempt := 0; attempt <= w.o.retries; attempt++ {
		_, err = w.api.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &w.bucket, Key: &w.key, UploadId: &w.uploadID})
		if err == nil || s3retry.StatusCode(err) == 404 || !s3retry.Retryable(ctx, err) {
			break
		}
		if s3retry.Sleep(ctx, w.o.backoff, attempt) != nil {
			break
		}
	}
	if err != nil && s3retry.StatusCode(err) != 404 {
		return fmt.Errorf("s3sink: cannot abort the upload %s of %s: %w", w.uploadID, w.Name(), err)
	}
	if w.o.tracker != nil {
		w.o.tracker.Ended(w.bucket, w.key, w.uploadID)
	}
	return nil
}

func (w *Writer) release() {
	w.buf = nil
	for {
		select {
		case <-w.free:
		default:
			return
		}
	}
}

func (w *Writer) closedErr() error {
	if w.state == aborted && w.result != nil {
		return fmt.Errorf("%w: %s: %w", sinks.ErrClosed, w.Name(), w.result)
	}
	return fmt.Errorf("%w: %s", sinks.ErrClosed, w.Name())
}

// Written returns the number of bytes accepted by Write so far.
func (w *Writer) Written() int64 {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.written
}

// UploadID returns the id of the multipart upload, or "" before it
// started (or when the object went up with one PutObject).
func (w *Writer) UploadID() string {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	return w.uploadID
}
