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
// It reads the header, then only the chunks that hold the range, as one
// span announced with ReadAhead, and authenticates each chunk before its
// bytes are written. It reads the final chunk only when the range reaches
// it: when the range ends in or runs past the final chunk, when n < 0, and
// when off is at or after the end. It then authenticates the final chunk
// first, before anything is written (see encpipe.NewLazyReaderAt): a
// stream cut at a chunk boundary gives stream.ErrTruncated, one with bytes
// appended an error matching stream.ErrAuth, and ErrRange (an offset after
// the end) is returned only once the end is authentic. So the bytes read
// from src are the header (or what opening src prefetched) and the chunks
// of the range: at most n + 2 chunks, with their tags.
//
// A range that ends before the final chunk says nothing about the end of
// the stream: its bytes are the authentic bytes of the stream at those
// offsets, even if the object was cut after them (docs/FORMAT.md §5).
// Compressed streams fail with stream.ErrUnsupported.
func DecryptRange(ctx context.Context, dst io.Writer, src RangeSource, sessions encpipe.Sessions, off, n int64, opts ...encpipe.ReadOption) (int64, error) {
	if off < 0 {
		return 0, fmt.Errorf("transfer: negative offset %d", off)
	}
	// One worker reads the chunks in order, so that the span is read
	// sequentially, as announced.
	opts = append(opts[:len(opts):len(opts)], encpipe.WithStreamOptions(stream.WithReaderConcurrency(1)))
	r, err := encpipe.NewLazyReaderAt(ctx, src, src.Size(), sessions, opts...)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	hdr := r.Header()
	chunk := int64(hdr.ChunkSize())
	ct := chunk + stream.TagSize
	chunks := (src.Size() - hdr.Len() + ct - 1) / ct // >= 1: NewLazyReaderAt checked
	finalStart := hdr.Len() + (chunks-1)*ct          // ciphertext offset of the final chunk
	lastStart := (chunks - 1) * chunk                // plaintext offset of the final chunk
	end := r.UnverifiedSize()
	if n < 0 || n > end-off || off >= lastStart || off+n > lastStart {
		// The range reaches the end (or asks where it is): authenticate
		// the final chunk before anything is said or written.
		size, err := r.Size()
		if err != nil {
			return 0, err
		}
		if off > size {
			return 0, fmt.Errorf("%w: offset %d, plaintext size %d", ErrRange, off, size)
		}
		if n < 0 || n > size-off {
			n = size - off
		}
	}
	if n == 0 {
		return 0, nil
	}
	cOff, cLen, err := stream.CiphertextRange(hdr, off, n)
	if err != nil {
		return 0, err
	}
	// The final chunk, if the range holds it, has been read: the span
	// stops before it.
	if spanEnd := min(cOff+cLen, finalStart); spanEnd > cOff {
		src.ReadAhead(cOff, spanEnd-cOff)
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
