package encpipe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// Errors returned by NewReader and NewReaderAt, besides the stream's own
// (stream.ErrAuth, stream.ErrTruncated, stream.ErrUnsupported). Test for
// them with [errors.Is].
var (
	// ErrPartitionNotAllowed is returned when the stream's partition is
	// not one that AllowPartitions named. No key has been loaded when it
	// is returned.
	ErrPartitionNotAllowed = errors.New("encpipe: stream partition is not allowed")

	// ErrKeyUnavailable is returned when the intermediate or system key
	// that the stream's key record names cannot be loaded: its row is
	// missing from the metastore (deleted, shredded, another metastore),
	// the KMS fails or holds another master key, or a stored key does not
	// unwrap under its parent. It says nothing about the stream itself,
	// which may be intact: the error also wraps the *envelope.KeyError
	// that names the key and the cause (errors.As), so errors.Is matches
	// envelope.ErrNotFound for a missing row. A key record that does not
	// unwrap under an intermediate key that did load is a modified header
	// and fails with stream.ErrAuth instead. (A header modified to name
	// an intermediate key that does not exist cannot be told from a
	// deleted key, and fails with this error too; either way nothing is
	// decrypted.)
	ErrKeyUnavailable = errors.New("encpipe: the stream's key cannot be loaded")
)

// Sessions hands out envelope sessions by partition id.
// *envelope.SessionFactory satisfies it. The caller of GetSession closes
// the session.
type Sessions interface {
	GetSession(partition string) (*envelope.Session, error)
}

var _ Sessions = (*envelope.SessionFactory)(nil)

// Writer encrypts a stream under a data key that NewWriter created and
// that the Writer owns: it closes (wipes) the key when Close returns, when
// NewWriter fails, and as soon as a Write or ReadFrom fails for good. It
// is a *stream.Writer otherwise: not safe for concurrent use, sticky
// errors, Close seals the final chunk and does not close dst.
type Writer struct {
	w   *stream.Writer
	key securebuf.Secret
}

var (
	_ io.WriteCloser = (*Writer)(nil)
	_ io.ReaderFrom  = (*Writer)(nil)
)

// NewWriter starts an encrypted stream in dst under sess's partition: a
// fresh data key, wrapped by the partition's intermediate key, goes into
// the header. The caller closes the Writer, and keeps owning dst and sess
// (sess may be closed as soon as NewWriter returns).
func NewWriter(ctx context.Context, dst io.Writer, sess *envelope.Session, opts ...stream.WriterOption) (*Writer, error) {
	if sess == nil {
		return nil, errors.New("encpipe: nil session")
	}
	dek, rec, err := sess.NewDataKey(ctx)
	if err != nil {
		return nil, fmt.Errorf("encpipe: failed to create a data key for partition %q: %w", sess.Partition(), err)
	}
	recJSON, err := json.Marshal(rec)
	if err != nil {
		dek.Close()
		return nil, fmt.Errorf("encpipe: failed to encode the key record: %v", err)
	}
	params := stream.HeaderParams{KeyRecord: recJSON, Partition: sess.Partition()}
	sw, err := stream.NewWriter(dst, dek, params, opts...)
	if err != nil {
		dek.Close()
		return nil, err
	}
	return &Writer{w: sw, key: dek}, nil
}

// Write encrypts p; see stream.Writer.Write.
func (w *Writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil {
		w.key.Close() // a Write error is sticky: the key is done with
	}
	return n, err
}

// ReadFrom encrypts what src yields until io.EOF; see
// stream.Writer.ReadFrom (an error of src is not sticky, and the key
// stays open then).
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	n, err := w.w.ReadFrom(src)
	if err != nil {
		if _, sticky := w.w.Write(nil); sticky != nil {
			w.key.Close()
		}
	}
	return n, err
}

// Close seals the final chunk and writes what is left to dst, then closes
// the data key. It does not close dst. A second Close returns the first
// one's result.
func (w *Writer) Close() error {
	err := w.w.Close()
	if kerr := w.key.Close(); err == nil {
		err = kerr
	}
	return err
}

// Header returns the header the Writer wrote.
func (w *Writer) Header() *stream.Header { return w.w.Header() }

// ReadOption configures NewReader and NewReaderAt.
type ReadOption func(*readOptions) error

type readOptions struct {
	allowed    map[string]bool // nil: any partition
	streamOpts []stream.ReaderOption
}

// AllowPartitions restricts decryption to streams of the given partitions:
// a stream of any other partition fails with ErrPartitionNotAllowed before
// any session is opened or key loaded. Several AllowPartitions add up.
// Without it, every partition that Sessions serves is accepted.
func AllowPartitions(ids ...string) ReadOption {
	return func(o *readOptions) error {
		if len(ids) == 0 {
			return errors.New("encpipe: AllowPartitions needs at least one partition id")
		}
		if o.allowed == nil {
			o.allowed = make(map[string]bool, len(ids))
		}
		for _, id := range ids {
			if id == "" {
				return errors.New("encpipe: AllowPartitions: empty partition id")
			}
			o.allowed[id] = true
		}
		return nil
	}
}

// WithStreamOptions passes options to the stream reader
// (stream.WithReaderConcurrency).
func WithStreamOptions(opts ...stream.ReaderOption) ReadOption {
	return func(o *readOptions) error {
		o.streamOpts = append(o.streamOpts, opts...)
		return nil
	}
}

func buildReadOptions(opts []ReadOption) (*readOptions, error) {
	o := &readOptions{}
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(o); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Reader decrypts a stream with a data key that NewReader opened and that
// the Reader owns: it closes (wipes) the key when Close returns, when
// NewReader fails, and as soon as Read returns io.EOF or an error (every
// Read error is final) or WriteTo ends other than by an error of its dst.
// It is a *stream.Reader otherwise: not safe for concurrent use, releases
// only authenticated chunks, and Close does not close src.
type Reader struct {
	r   *stream.Reader
	key securebuf.Secret
}

var (
	_ io.ReadCloser = (*Reader)(nil)
	_ io.WriterTo   = (*Reader)(nil)
)

// NewReader reads the stream header from src, checks its partition, opens
// the data key through the partition's session and returns a Reader for
// the chunks that follow (it verifies the header MAC first). The caller
// closes the Reader and keeps owning src.
func NewReader(ctx context.Context, src io.Reader, sessions Sessions, opts ...ReadOption) (*Reader, error) {
	o, err := buildReadOptions(opts)
	if err != nil {
		return nil, err
	}
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		return nil, err
	}
	dek, err := openDataKey(ctx, hdr, sessions, o)
	if err != nil {
		return nil, err
	}
	sr, err := stream.NewReader(src, hdr, dek, o.streamOpts...)
	if err != nil {
		dek.Close()
		return nil, err
	}
	return &Reader{r: sr, key: dek}, nil
}

// Read reads decrypted plaintext; see stream.Reader.Read.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.key.Close() // io.EOF or a sticky error: the key is done with
	}
	return n, err
}

// WriteTo writes the decrypted plaintext to dst; see stream.Reader.WriteTo
// (an error of dst is not sticky, and the key stays open then).
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	d := &dstFailure{w: dst}
	n, err := r.r.WriteTo(d)
	if err == nil || !d.failed {
		r.key.Close() // the end of the stream, or a sticky error
	}
	return n, err
}

// Close stops the stream reader and closes the data key. It does not close
// src. Close is idempotent.
func (r *Reader) Close() error {
	err := r.r.Close()
	if kerr := r.key.Close(); err == nil {
		err = kerr
	}
	return err
}

// Header returns the stream's header (authenticated).
func (r *Reader) Header() *stream.Header { return r.r.Header() }

// dstFailure records whether a Write of the wrapped writer failed.
type dstFailure struct {
	w      io.Writer
	failed bool
}

func (d *dstFailure) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err != nil || n < len(p) {
		d.failed = true
	}
	return n, err
}

// ReaderAt decrypts byte ranges of an uncompressed stream with a data key
// that NewReaderAt opened and that the ReaderAt owns: it closes (wipes)
// the key when Close returns and when NewReaderAt fails. ReadAt is safe
// for concurrent use (calls that run concurrently with Close may fail);
// see stream.ReaderAt. Close does not close src.
type ReaderAt struct {
	r   *stream.ReaderAt
	key securebuf.Secret
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// NewReaderAt is NewReader for random access to a stream of size bytes in
// src (see stream.NewReaderAt: it also authenticates the final chunk before
// it returns). A compressed stream fails with stream.ErrUnsupported before
// any key is loaded. The caller closes the ReaderAt and keeps owning src.
func NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, sessions Sessions, opts ...ReadOption) (*ReaderAt, error) {
	hdr, dek, streamOpts, err := openReaderAtKey(ctx, src, size, sessions, opts)
	if err != nil {
		return nil, err
	}
	sr, err := stream.NewReaderAt(src, size, hdr, dek, streamOpts...)
	if err != nil {
		dek.Close()
		return nil, err
	}
	return &ReaderAt{r: sr, key: dek}, nil
}

// openReaderAtKey reads the header of the stream in src and opens its
// data key.
func openReaderAtKey(ctx context.Context, src io.ReaderAt, size int64, sessions Sessions, opts []ReadOption) (*stream.Header, securebuf.Secret, []stream.ReaderOption, error) {
	o, err := buildReadOptions(opts)
	if err != nil {
		return nil, nil, nil, err
	}
	hdr, err := stream.ReadHeader(io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, nil, nil, err
	}
	if hdr.Compression() != stream.CodecNone {
		return nil, nil, nil, fmt.Errorf("%w: a compressed stream is not seekable (its chunks have variable sizes)", stream.ErrUnsupported)
	}
	dek, err := openDataKey(ctx, hdr, sessions, o)
	if err != nil {
		return nil, nil, nil, err
	}
	return hdr, dek, o.streamOpts, nil
}

// ReadAt reads len(p) bytes of plaintext at off; see stream.ReaderAt.ReadAt.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }

// Size returns the plaintext size of the stream.
func (r *ReaderAt) Size() int64 { return r.r.Size() }

// Header returns the stream's header (authenticated).
func (r *ReaderAt) Header() *stream.Header { return r.r.Header() }

// Close drops the stream reader's keys and cache and closes the data key.
// It does not close src. Close is idempotent.
func (r *ReaderAt) Close() error {
	err := r.r.Close()
	if kerr := r.key.Close(); err == nil {
		err = kerr
	}
	return err
}

// LazyReaderAt is ReaderAt over a stream.LazyReaderAt: it authenticates
// the final chunk only when a read reaches the end of the stream, so a
// ranged read fetches the header and the chunks of the range. It owns
// its data key as ReaderAt does; ReadAt is safe for concurrent use.
type LazyReaderAt struct {
	r   *stream.LazyReaderAt
	key securebuf.Secret
}

var _ io.ReaderAt = (*LazyReaderAt)(nil)

// NewLazyReaderAt is NewReaderAt without authenticating the final chunk up
// front (see stream.NewLazyReaderAt): it reads only the header from src.
// The caller closes the LazyReaderAt and keeps owning src.
func NewLazyReaderAt(ctx context.Context, src io.ReaderAt, size int64, sessions Sessions, opts ...ReadOption) (*LazyReaderAt, error) {
	hdr, dek, streamOpts, err := openReaderAtKey(ctx, src, size, sessions, opts)
	if err != nil {
		return nil, err
	}
	sr, err := stream.NewLazyReaderAt(src, size, hdr, dek, streamOpts...)
	if err != nil {
		dek.Close()
		return nil, err
	}
	return &LazyReaderAt{r: sr, key: dek}, nil
}

// ReadAt reads len(p) bytes of plaintext at off; see
// stream.LazyReaderAt.ReadAt.
func (r *LazyReaderAt) ReadAt(p []byte, off int64) (int, error) { return r.r.ReadAt(p, off) }

// Size authenticates the final chunk (once) and returns the plaintext
// size; see stream.LazyReaderAt.Size.
func (r *LazyReaderAt) Size() (int64, error) { return r.r.Size() }

// UnverifiedSize returns the plaintext size that size implies, to plan
// reads; see stream.LazyReaderAt.UnverifiedSize.
func (r *LazyReaderAt) UnverifiedSize() int64 { return r.r.UnverifiedSize() }

// Header returns the stream's header (authenticated).
func (r *LazyReaderAt) Header() *stream.Header { return r.r.Header() }

// Close drops the stream reader's keys and cache and closes the data key.
// It does not close src. Close is idempotent.
func (r *LazyReaderAt) Close() error {
	err := r.r.Close()
	if kerr := r.key.Close(); err == nil {
		err = kerr
	}
	return err
}

// openDataKey checks the (not yet authenticated) header's partition, then
// unwraps its key record with a session of that partition.
func openDataKey(ctx context.Context, hdr *stream.Header, sessions Sessions, o *readOptions) (securebuf.Secret, error) {
	partition := hdr.Partition()
	if o.allowed != nil && !o.allowed[partition] {
		return nil, fmt.Errorf("%w: %q", ErrPartitionNotAllowed, partition)
	}
	if sessions == nil {
		return nil, errors.New("encpipe: nil Sessions")
	}
	var rec envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(hdr.KeyRecord(), &rec); err != nil {
		// The header is not authenticated yet: a key record that does
		// not parse is a modified header.
		return nil, stream.ErrAuth
	}
	sess, err := sessions.GetSession(partition)
	if err != nil {
		return nil, fmt.Errorf("encpipe: failed to get a session for partition %q: %w", partition, err)
	}
	defer sess.Close()
	dek, err := sess.OpenDataKey(ctx, &rec)
	if err != nil {
		return nil, classifyOpenErr(partition, err)
	}
	return dek, nil
}

// classifyOpenErr tells a key that cannot be loaded from a key record that
// does not authenticate. OpenDataKey returns a *envelope.KeyError only
// while loading the intermediate key or the system key beneath it (a
// missing row, a KMS failure, a master key that does not unwrap the
// system key, a stored key that does not unwrap): the keys are the
// problem, whatever the stream holds. Every other failure is about the
// record itself, which the header MAC has not yet covered: a record of
// another partition, one that lacks fields, or a wrapped data key that
// fails AES-GCM under an intermediate key that did load. Those mean the
// header was modified, and fail with the fixed stream.ErrAuth.
func classifyOpenErr(partition string, err error) error {
	var ke *envelope.KeyError
	switch {
	case errors.As(err, &ke):
		return fmt.Errorf("%w: partition %q: %w", ErrKeyUnavailable, partition, err)
	case errors.Is(err, envelope.ErrPartitionMismatch), errors.Is(err, envelope.ErrDecrypt),
		errors.Is(err, envelope.ErrInvalidRecord):
		return stream.ErrAuth
	}
	return fmt.Errorf("encpipe: failed to open the data key of partition %q: %w", partition, err)
}
