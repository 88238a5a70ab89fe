package main

// This file binds streams to the key hierarchy: a stream's data key is a
// fresh envelope data key, wrapped by the partition's intermediate key and
// stored in the header as an Asherah EnvelopeKeyRecord. It is the job of
// the root package encpipe; until that lands, the command does it here with
// the same shape (NewWriter / NewReader / NewReaderAt with allowed
// partitions).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// errPartitionNotAllowed is returned when a stream's header names a
// partition the caller did not allow.
var errPartitionNotAllowed = errors.New("partition not allowed")

// readOptions say which partitions a reader accepts and how it reads.
type readOptions struct {
	anyPartition bool
	allowed      []string
	stream       []stream.Option
}

// newStreamWriter starts an encrypted stream to dst under sess's partition.
// The returned Writer owns the data key; Close does not close dst.
func newStreamWriter(ctx context.Context, dst io.Writer, sess *envelope.Session, opts ...stream.Option) (*stream.Writer, error) {
	key, rec, err := sess.NewDataKey(ctx)
	if err != nil {
		return nil, err
	}
	kr, err := json.Marshal(rec)
	if err != nil {
		key.Close()
		return nil, err
	}
	params := stream.HeaderParams{KeyRecord: kr, Partition: sess.Partition()}
	return stream.NewWriter(dst, key, params, append(opts, stream.WithKeyOwnership())...)
}

// openDataKey checks the header's partition against o and unwraps the
// stream's data key through that partition's session.
func openDataKey(ctx context.Context, hdr *stream.Header, f *envelope.SessionFactory, o *readOptions) (securebuf.Secret, error) {
	p := hdr.Partition()
	if !o.anyPartition && !slices.Contains(o.allowed, p) {
		return nil, fmt.Errorf("%w: the stream's partition is %q", errPartitionNotAllowed, p)
	}
	sess, err := f.GetSession(p)
	if err != nil {
		return nil, err
	}
	defer sess.Close()
	var rec envelope.EnvelopeKeyRecord
	if err := json.Unmarshal(hdr.KeyRecord(), &rec); err != nil {
		return nil, fmt.Errorf("%w: key record: %v", stream.ErrInvalidHeader, err)
	}
	return sess.OpenDataKey(ctx, &rec)
}

// newStreamReader reads a stream's header from src, unwraps its data key
// and returns a Reader of the plaintext. Close the Reader when done.
func newStreamReader(ctx context.Context, src io.Reader, f *envelope.SessionFactory, o *readOptions) (*stream.Reader, error) {
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		return nil, err
	}
	key, err := openDataKey(ctx, hdr, f, o)
	if err != nil {
		return nil, err
	}
	return stream.NewReader(src, hdr, key, append(o.stream, stream.WithKeyOwnership())...)
}

// newStreamReaderAt is newStreamReader for random access to size bytes of
// src.
func newStreamReaderAt(ctx context.Context, src io.ReaderAt, size int64, f *envelope.SessionFactory, o *readOptions) (*stream.ReaderAt, error) {
	hdr, err := stream.ReadHeader(io.NewSectionReader(src, 0, size))
	if err != nil {
		return nil, err
	}
	key, err := openDataKey(ctx, hdr, f, o)
	if err != nil {
		return nil, err
	}
	return stream.NewReaderAt(src, size, hdr, key, append(o.stream, stream.WithKeyOwnership())...)
}
