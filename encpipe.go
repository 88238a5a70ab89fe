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

// Errors returned by NewReader and NewReaderAt. Test for them with
// [errors.Is].
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
	// envelope.ErrNotFound for a missing row. A key record that does
	// not unwrap under an intermediate key that did load is a modified
	// header and fails with stream.ErrAuth instead. (A header modified to
	// name an intermediate key that does not exist cannot be told from a
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

// NewWriter starts an encrypted stream in dst under sess's partition: a
// fresh data key, wrapped by the partition's intermediate key, goes into
// the header. The returned Writer owns the data key (it closes it on Close
// or failure); the caller closes the Writer, and keeps owning dst and sess
// (sess may be closed as soon as NewWriter returns).
//
// opts are stream options: WithChunkSize, WithConcurrency,
// WithCompression, WithContentType, WithMetadata.
func NewWriter(ctx context.Context, dst io.Writer, sess *envelope.Session, opts ...stream.Option) (*stream.Writer, error) {
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
	all := append(opts[:len(opts):len(opts)], stream.WithKeyOwnership())
	return stream.NewWriter(dst, dek, params, all...)
}

// ReadOption configures NewReader and NewReaderAt.
type ReadOption func(*readOptions) error

type readOptions struct {
	allowed    map[string]bool // nil: any partition
	streamOpts []stream.Option
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

// WithStreamOptions passes options to the stream reader (WithConcurrency).
func WithStreamOptions(opts ...stream.Option) ReadOption {
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

// NewReader reads the stream header from src, checks its partition, opens
// the data key through the partition's session and returns a Reader for
// the chunks that follow (it verifies the header MAC first). The Reader
// owns the data key; the caller closes the Reader and keeps owning src.
func NewReader(ctx context.Context, src io.Reader, sessions Sessions, opts ...ReadOption) (*stream.Reader, error) {
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
	all := append(o.streamOpts[:len(o.streamOpts):len(o.streamOpts)], stream.WithKeyOwnership())
	return stream.NewReader(src, hdr, dek, all...)
}

// NewReaderAt is NewReader for random access to a stream of size bytes in
// src (see stream.NewReaderAt: it also authenticates the final chunk before
// it returns). Compressed streams fail with stream.ErrNotSeekable. The
// ReaderAt owns the data key; the caller closes it and keeps owning src.
func NewReaderAt(ctx context.Context, src io.ReaderAt, size int64, sessions Sessions, opts ...ReadOption) (*stream.ReaderAt, error) {
	o, err := buildReadOptions(opts)
	if err != nil {
		return nil, err
	}
	hdr, err := stream.ReadHeader(io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, err
	}
	if hdr.Compression() != stream.CodecNone {
		return nil, stream.ErrNotSeekable
	}
	dek, err := openDataKey(ctx, hdr, sessions, o)
	if err != nil {
		return nil, err
	}
	all := append(o.streamOpts[:len(o.streamOpts):len(o.streamOpts)], stream.WithKeyOwnership())
	return stream.NewReaderAt(src, size, hdr, dek, all...)
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
