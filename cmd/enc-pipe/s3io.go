package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"path"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/sinks/s3sink"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
	"github.com/enc-pipe/enc-pipe/transfer"
)

// Metadata that marks the S3 objects enc-pipe encrypts. Values are
// US-ASCII: the partition is percent-encoded (url.PathEscape).
const (
	metaFormat    = "enc-pipe-format"
	metaPartition = "enc-pipe-partition"
)

// s3Prefetch is what opening an S3 input fetches with its one request:
// enough for the header of most streams, so that inspect needs nothing
// more and decrypt nothing more before its key is loaded.
const s3Prefetch = 1024

// transferFlags are the S3 and --recursive flags of encrypt and decrypt.
type transferFlags struct {
	recursive   bool
	jobs        int
	force       bool
	partSize    string
	concurrency int
}

// addTransferFlags adds the S3 and --recursive flags to encrypt or decrypt
// and wraps its RunE: a recursive run goes to runRecursive, and every run
// records what S3 outputs need. chunkFlag names the flag holding the
// plaintext chunk size of ciphertext outputs ("" for decrypt).
func (a *app) addTransferFlags(cmd *cobra.Command, encrypting bool) {
	t := &a.s3.t
	fl := cmd.Flags()
	fl.BoolVarP(&t.recursive, "recursive", "r", false, "IN and OUT are an S3 prefix or a local directory: process every object under IN")
	fl.IntVar(&t.jobs, "jobs", 4, "with --recursive: objects processed at the same time")
	fl.BoolVar(&t.force, "force", false, "with --recursive: also redo objects that an earlier run already wrote")
	fl.StringVar(&t.partSize, "part-size", "8MiB", "S3 output: size of the multipart upload parts (at least 5MiB; rounded up to whole chunks)")
	fl.IntVar(&t.concurrency, "s3-concurrency", s3sink.DefaultConcurrency, "S3 output: parts of one object uploaded at the same time")
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		a.s3.ctx = c.Context()
		a.s3.encrypting = encrypting
		if err := a.checkTransferFlags(c); err != nil {
			return err
		}
		if t.recursive {
			return a.runRecursive(c, args)
		}
		return run(c, args)
	}
}

func (a *app) checkTransferFlags(c *cobra.Command) error {
	t := &a.s3.t
	if err := a.checkS3Settings(); err != nil {
		return err
	}
	if t.jobs < 1 {
		return usageErrorf("--jobs %d: must be 1 or more", t.jobs)
	}
	if t.concurrency < 1 {
		return usageErrorf("--s3-concurrency %d: must be 1 or more", t.concurrency)
	}
	ps, err := parseSize(t.partSize)
	if err != nil || ps < s3sink.MinPartSize || ps > s3sink.MaxPartSize {
		return usageErrorf("--part-size %q: want a size from 5MiB to 5GiB", t.partSize)
	}
	if !t.recursive {
		for _, f := range []string{"jobs", "force"} {
			if c.Flags().Changed(f) {
				return usageErrorf("--%s needs --recursive", f)
			}
		}
	}
	if a.s3.encrypting {
		cs, err := c.Flags().GetString("chunk-size")
		if err == nil {
			if n, err := parseSize(cs); err == nil {
				a.s3.chunkSize = int(n)
			}
		}
	}
	return nil
}

// partSize is the part size of an S3 output of about expected bytes (-1:
// unknown): the --part-size, grown so that the object fits in 10000
// parts, and for ciphertext rounded up to whole chunks (chunk + tag), so
// that after the first part (which also holds the header) every part holds
// whole chunks.
func (a *app) partSize(expected int64) int64 {
	ps, err := parseSize(a.s3.t.partSize)
	if err != nil || ps <= 0 {
		ps = s3sink.DefaultPartSize // commands without --part-size (records)
	}
	unit := int64(1)
	if a.s3.encrypting && a.s3.chunkSize > 0 {
		unit = int64(a.s3.chunkSize) + stream.TagSize
		if expected >= 0 {
			expected += (expected/int64(a.s3.chunkSize)+1)*stream.TagSize + stream.MaxHeaderSize
		}
	}
	if expected > 0 {
		ps = max(ps, (expected+s3sink.MaxParts-2)/(s3sink.MaxParts-1))
	}
	ps = max(ps, s3sink.MinPartSize)
	ps = (ps + unit - 1) / unit * unit
	return min(ps, s3sink.MaxPartSize/unit*unit)
}

// openS3Input opens an S3 object as an input: one request, which fetches
// the first s3Prefetch bytes, the size and the metadata.
func (a *app) openS3Input(ctx context.Context, loc location.Location) (*input, error) {
	if loc.IsPrefix() {
		return nil, usageErrorf("input %s is a prefix, not an object: name an object, or use --recursive", loc)
	}
	client, err := a.s3Client(ctx)
	if err != nil {
		return nil, err
	}
	obj, err := s3source.Open(ctx, client, loc.Bucket, loc.Key, s3source.WithPrefetch(s3Prefetch), s3source.WithMetrics(a.obs.provider))
	if errors.Is(err, s3source.ErrNotFound) {
		return nil, &cliError{code: exitIO, msg: fmt.Sprintf("cannot open input %s: no such object (or bucket)", loc), err: err, terse: true}
	}
	if err != nil {
		return nil, ioError(err, "cannot open input")
	}
	info := obj.Info()
	return &input{Source: obj, ra: obj, info: s3FileInfo{name: path.Base(loc.Key), size: info.Size, mod: info.LastModified}}, nil
}

// openS3Output starts an S3 output. A key that is empty or ends in "/"
// gets the input's base name appended, as `aws s3 cp` does.
func (a *app) openS3Output(loc location.Location, in *input) (*s3Output, error) {
	key := loc.Key
	if loc.IsPrefix() {
		base := ""
		switch src := in.Source.(type) {
		case *s3source.Object:
			base = path.Base(src.Info().Key)
		default:
			if in.info != nil && in.Name() != "standard input" {
				base = filepath.Base(in.Name())
			}
		}
		if base == "" || base == "." || base == "/" {
			return nil, usageErrorf("output %s is a prefix: name the object (s3://BUCKET/KEY)", loc)
		}
		key += base
	}
	if src, ok := in.Source.(*s3source.Object); ok && src.Info().Bucket == loc.Bucket && src.Info().Key == key {
		return nil, usageErrorf("output s3://%s/%s is the input: write to another key", loc.Bucket, key)
	}
	ctx := a.s3.ctx
	if ctx == nil {
		ctx = context.Background()
	}
	client, err := a.s3Client(ctx)
	if err != nil {
		return nil, err
	}
	conc := a.s3.t.concurrency
	if conc < 1 {
		conc = s3sink.DefaultConcurrency // commands without --s3-concurrency (records)
	}
	opts := []s3sink.Option{s3sink.WithPartSize(a.partSize(in.size())), s3sink.WithConcurrency(conc),
		s3sink.WithTracker(a.uploadTracker()), s3sink.WithMetrics(a.obs.provider)}
	if a.s3.encrypting {
		opts = append(opts, s3sink.WithMetadata(a.ciphertextMetadata()))
	}
	ps := a.partSize(in.size())
	w, err := s3sink.New(ctx, client, loc.Bucket, key, opts...)
	if err != nil {
		return nil, usageErrorf("output %s: %v", loc, err)
	}
	a.reserveMemory(int64(conc+1) * ps)
	out := &s3Output{Writer: w, align: a.s3.encrypting}
	a.track(out)
	return out, nil
}

// ciphertextMetadata marks an object as an enc-pipe stream.
func (a *app) ciphertextMetadata() map[string]string {
	return map[string]string{metaFormat: "1", metaPartition: url.PathEscape(a.g.partition)}
}

// s3Output is an S3 sink that, for ciphertext, aligns the parts on the
// chunks: it reads the header length from the first 12 bytes and makes the
// first part that much longer.
type s3Output struct {
	*s3sink.Writer
	align  bool
	prefix []byte
}

func (o *s3Output) Write(p []byte) (int, error) {
	if o.align && len(o.prefix) < 12 {
		k := min(12-len(o.prefix), len(p))
		o.prefix = append(o.prefix, p[:k]...)
		if len(o.prefix) == 12 {
			if err := o.Writer.Align(int64(binary.BigEndian.Uint32(o.prefix[8:12]))); err != nil {
				return 0, err
			}
		}
	}
	return o.Writer.Write(p)
}

// s3FileInfo describes an S3 input to the code that expects a file's.
type s3FileInfo struct {
	name string
	size int64
	mod  time.Time
}

func (i s3FileInfo) Name() string       { return i.name }
func (i s3FileInfo) Size() int64        { return i.size }
func (i s3FileInfo) Mode() fs.FileMode  { return 0o444 }
func (i s3FileInfo) ModTime() time.Time { return i.mod }
func (i s3FileInfo) IsDir() bool        { return false }
func (i s3FileInfo) Sys() any           { return nil }

// decryptS3Range decrypts a range of an S3 object with transfer.DecryptRange:
// the header, then one GET for the chunks of the range (the final chunk,
// read first, only when the range reaches it).
func (a *app) decryptS3Range(ctx context.Context, out io.Writer, obj *s3source.Object, keys *lazyBackend, off, n int64, ropts []encpipe.ReadOption) error {
	_, err := transfer.DecryptRange(ctx, writeTagger{out}, s3RangeTagger{obj}, keys, off, n, ropts...)
	if kerr := keys.openErr(); err != nil && kerr != nil {
		return kerr
	}
	if errors.Is(err, transfer.ErrRange) {
		return usageErrorf("--range starts at %d, after the end of the plaintext", off)
	}
	if err != nil {
		return classifyStreamErr(err, "decryption failed")
	}
	return nil
}

// s3RangeTagger marks the object's read errors as input errors.
type s3RangeTagger struct{ *s3source.Object }

func (t s3RangeTagger) ReadAt(p []byte, off int64) (int, error) {
	return readerAtTagger{t.Object}.ReadAt(p, off)
}

// reserveMemory raises the Go runtime's soft memory limit by n bytes for
// part buffers, unless GOMEMLIMIT is set. The limit is the part buffers
// plus s3MemoryBase for everything else: without it the heap may grow to
// twice the buffers between two collections, so the peak would depend on
// how long the run is; with it, collections come as the limit nears
// (cheap here: the buffers hold no pointers).
func (a *app) reserveMemory(n int64) {
	if a.getenv("GOMEMLIMIT") != "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.s3.reserved += n
	debug.SetMemoryLimit(s3MemoryBase + a.s3.reserved)
}

// s3MemoryBase is the memory allowed besides the part buffers: the stream
// pipeline (about 1 MiB + 4 chunks per worker), the SDK, the runtime.
const s3MemoryBase = 24 << 20
