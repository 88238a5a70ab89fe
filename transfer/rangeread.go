package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/stream"
)

// RangeSource is a stream that can be read at any offset. ReadAhead is told
// which span the next reads will cover, in order, so that a remote object
// can serve them with one request (s3source.Object does).
type RangeSource interface {
	io.ReaderAt
	Size() int64
	ReadAhead(off, n int64)
}

// ErrRange is returned by DecryptRange for an offset after the end of the
// plaintext.
var ErrRange = errors.New("transfer: range starts after the end of the plaintext")

// DecryptRange writes the plaintext bytes [off, off+n) of the stream in src
// to dst (n < 0, or a range that runs past the end: up to the end) and
// returns how many it wrote.
//
// It reads the header, then the final chunk, which it authenticates before
// anything is written (a truncated or extended stream is refused, as
// stream.NewReaderAt does), then only the chunks that hold the range, as
// one span announced with ReadAhead. Chunks are authenticated before their
// bytes are written. The bytes read from src are therefore the header, the
// final chunk, and at most n + 2 chunks (with their tags) around the range.
// Compressed streams fail with stream.ErrNotSeekable.
func DecryptRange(ctx context.Context, dst io.Writer, src RangeSource, sessions encpipe.Sessions, off, n int64, opts ...encpipe.ReadOption) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("transfer: negative offset %d", off)
	}
	// One worker reads the chunks in order, so that the span is read
	// sequentially, as announced.
	opts = append(opts[:len(opts):len(opts)], encpipe.WithStreamOptions(stream.WithReaderConcurrency(1)))
	r, err := encpipe.NewReaderAt(ctx, src, src.Size(), sessions, opts...)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	size := r.Size()
	if off > size {
		return 0, fmt.Errorf("%w: offset %d, plaintext size %d", ErrRange, off, size)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	if n == 0 {
		return 0, nil
	}
	hdr := r.Header()
	cOff, cLen, err := stream.CiphertextRange(hdr, off, n)
	if err != nil {
		return 0, err
	}
	// NewReaderAt keeps the final chunk: the span stops before it.
	ct := int64(hdr.ChunkSize()) + stream.TagSize
	chunks := (src.Size() - hdr.Len() + ct - 1) / ct
	finalStart := hdr.Len() + (chunks-1)*ct
	if end := min(cOff+cLen, finalStart); end > cOff {
		src.ReadAhead(cOff, end-cOff)
	}
	buf := make([]byte, min(n, 1<<20))
	var written int64
	for written < n {
		if err := ctx.Err(); err != nil {
			return written, context.Cause(ctx)
		}
		p := buf[:min(int64(len(buf)), n-written)]
		k, err := r.ReadAt(p, off+written)
		if k > 0 {
			m, werr := dst.Write(p[:k])
			written += int64(m)
			if werr != nil {
				return written, werr
			}
		}
		if err != nil && !(err == io.EOF && written == n) {
			return written, err
		}
	}
	return written, nil
}
