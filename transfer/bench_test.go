package transfer_test

import (
	"context"
	"io"
	"os"
	"strconv"
	"testing"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/internal/s3test"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
)

// BenchmarkS3ToS3 copies one object from S3 to S3 through the same client
// and server, plainly and encrypting, with the same part size and parts
// in flight. Sub-benchmarks alternate under -count, so compare their
// medians. ENCPIPE_BENCH_S3_SIZE sets the object size (default 256 MiB).
func BenchmarkS3ToS3(b *testing.B) {
	size := 256 << 20
	if v := os.Getenv("ENCPIPE_BENCH_S3_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	c := s3test.Client(b, s3test.Endpoint(b))
	bucket := s3test.Bucket(b, c)
	ctx := context.Background()
	f := newFactory(&testing.T{})
	sess, err := f.GetSession("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	w, err := s3sink.New(ctx, c, bucket, "src")
	if err != nil {
		b.Fatal(err)
	}
	for off := 0; off < size; off += 8 << 20 {
		w.Write(s3test.Random(uint64(off), min(8<<20, size-off)))
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	const ct = stream.DefaultChunkSize + stream.TagSize
	partSize := int64((s3sink.DefaultPartSize + ct - 1) / ct * ct)

	run := func(b *testing.B, encrypt bool) {
		b.SetBytes(int64(size))
		b.ReportAllocs()
		for b.Loop() {
			src, err := s3source.Open(ctx, c, bucket, "src", s3source.WithPrefetch(1024))
			if err != nil {
				b.Fatal(err)
			}
			dst, err := s3sink.New(ctx, c, bucket, "dst", s3sink.WithPartSize(partSize))
			if err != nil {
				b.Fatal(err)
			}
			var out io.WriteCloser = nopCloser{dst}
			if encrypt {
				ew, err := encpipe.NewWriter(ctx, dst, sess)
				if err != nil {
					b.Fatal(err)
				}
				dst.Align(ew.Header().Len())
				out = ew
			}
			if _, err := io.Copy(out, src); err != nil {
				b.Fatal(err)
			}
			if err := out.Close(); err != nil {
				b.Fatal(err)
			}
			if err := dst.Close(); err != nil {
				b.Fatal(err)
			}
			src.Close()
		}
	}
	b.Run("plain", func(b *testing.B) { run(b, false) })
	b.Run("encrypt", func(b *testing.B) { run(b, true) })
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
