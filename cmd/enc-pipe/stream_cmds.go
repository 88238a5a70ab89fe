package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/sources/s3source"
	"github.com/enc-pipe/enc-pipe/stream"
)

type encryptFlags struct {
	input, output string
	chunkSize     string
	workers       int
	compress      string
	contentType   string
	meta          []string
	progress      progressFlags
}

const encryptExample = `  # a file to a file (OUT appears only if encryption succeeds)
  enc-pipe encrypt -i data.csv -o data.csv.ep
  enc-pipe encrypt data.csv data.csv.ep

  # a pipe, under the partition of one tenant
  tar c photos/ | enc-pipe encrypt --partition user-42 > photos.tar.ep

  # compressed, with larger chunks and metadata kept in the header
  enc-pipe encrypt --compress zstd --chunk-size 1MiB --meta source=etl -i log.jsonl -o log.jsonl.ep`

func (a *app) newEncryptCommand() *cobra.Command {
	f := &encryptFlags{}
	cmd := &cobra.Command{
		Use:   "encrypt [IN [OUT]]",
		Short: "Encrypt a file or stream",
		Long: `Encrypt IN (default standard input) to OUT (default standard output) as an
enc-pipe stream: a header naming the partition and the wrapped data key,
then fixed-size chunks sealed with AES-256-GCM. The data key is fresh for
every stream and wrapped by the partition's intermediate key.

A file OUT appears only on success (on Linux it has no name until then); an
existing OUT is replaced and keeps its mode, a new one is created 0666 less
the umask (it holds ciphertext). Ciphertext is never written to a terminal.`,
		Example: encryptExample,
		Args:    maxArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runEncrypt(cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.input, "input", "i", "", "input file, or - for standard input")
	fl.StringVarP(&f.output, "output", "o", "", "output file, or - for standard output")
	fl.StringVar(&f.chunkSize, "chunk-size", "64KiB", "plaintext chunk size: a power of two from 4KiB to 16MiB")
	fl.IntVarP(&f.workers, "workers", "w", 0, "goroutines sealing chunks (0 = one per CPU)")
	fl.StringVar(&f.compress, "compress", "none", "compress chunks before encryption: zstd, s2 or none (compressed streams do not support decrypt --range)")
	fl.StringVar(&f.contentType, "content-type", "", "media type to record in the header")
	fl.StringArrayVar(&f.meta, "meta", nil, "KEY=VALUE to record in the authenticated header (repeatable)")
	f.progress.register(cmd)
	a.addTransferFlags(cmd, true) // s3io.go: S3 and --recursive
	return cmd
}

// maxArgs is cobra.MaximumNArgs with a usage error.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return usageErrorf("%s takes at most %d arguments, got %d: %s", cmd.CommandPath(), n, len(args), strings.Join(args, " "))
		}
		return nil
	}
}

// streamOptions validates the encrypt flags and turns them into options.
func (f *encryptFlags) streamOptions() ([]stream.WriterOption, error) {
	size, err := parseSize(f.chunkSize)
	if err != nil {
		return nil, usageErrorf("--chunk-size %q: %v", f.chunkSize, err)
	}
	if size < stream.MinChunkSize || size > stream.MaxChunkSize || size&(size-1) != 0 {
		return nil, usageErrorf("--chunk-size %q: must be a power of two from 4KiB to 16MiB", f.chunkSize)
	}
	if f.workers < 0 {
		return nil, usageErrorf("--workers %d: must be 0 (one per CPU) or more", f.workers)
	}
	codec, err := stream.ParseCodec(f.compress)
	if err != nil {
		return nil, usageErrorf("--compress %q: want zstd, s2 or none", f.compress)
	}
	meta := map[string]string{}
	for _, kv := range f.meta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("--meta %q: want KEY=VALUE", kv)
		}
		if _, dup := meta[k]; dup {
			return nil, usageErrorf("--meta: key %q given twice", k)
		}
		meta[k] = v
	}
	opts := []stream.WriterOption{
		stream.WithChunkSize(int(size)),
		stream.WithWriterConcurrency(f.workers),
		stream.WithCompression(codec),
	}
	if f.contentType != "" {
		opts = append(opts, stream.WithContentType(f.contentType))
	}
	if len(meta) > 0 {
		opts = append(opts, stream.WithMetadata(meta))
	}
	return opts, nil
}

// parseSize parses a byte count: 65536, 64k, 64KiB, 1M, 1MiB, 1g.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		}
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a size (examples: 65536, 64KiB, 1MiB)")
	}
	if v > (1<<62)/mult {
		return 0, fmt.Errorf("too large")
	}
	return v * mult, nil
}

func (a *app) runEncrypt(cmd *cobra.Command, args []string, f *encryptFlags) error {
	ctx := cmd.Context()
	inName, outName, err := resolveIO(args, f.input, f.output)
	if err != nil {
		return err
	}
	opts, err := f.streamOptions()
	if err != nil {
		return err
	}
	if err := f.progress.check(); err != nil {
		return err
	}
	partition := a.g.partition
	if partition == "" {
		return usageErrorf("--partition: empty partition id")
	}
	settings, err := a.resolveSettings()
	if err != nil {
		return err
	}
	in, err := a.openInput(ctx, inName)
	if err != nil {
		return err
	}
	defer in.Close()
	// The output is checked (and its temporary created) before the keys:
	// a refused output must not leave a new home behind.
	out, err := a.openOutput(outName, in, outputOptions{binary: true, public: true})
	if err != nil {
		return err
	}
	return finish(out, a.encryptWithKeys(ctx, out, in, settings, partition, opts, &f.progress))
}

// encryptWithKeys opens the key hierarchy and the partition's session, and
// encrypts in to out.
func (a *app) encryptWithKeys(ctx context.Context, out io.Writer, in *input, s *settings, partition string, opts []stream.WriterOption, p *progressFlags) error {
	be, err := a.openBackendWith(ctx, s, true)
	if err != nil {
		return err
	}
	defer be.Close()
	sess, err := be.factory.GetSession(partition)
	if err != nil {
		return keyError(err, "cannot open partition %q", partition)
	}
	defer sess.Close()
	src, stopProgress := a.withProgress(p, in, in.size(), "encrypting")
	defer stopProgress()
	return a.encryptStream(ctx, out, src, sess, opts)
}

func (a *app) encryptStream(ctx context.Context, out io.Writer, src io.Reader, sess *envelope.Session, opts []stream.WriterOption) error {
	opts = append(opts[:len(opts):len(opts)], stream.WithWriterMetrics(a.obs.provider))
	w, err := encpipe.NewWriter(ctx, writeTagger{out}, sess, opts...)
	if err != nil {
		return classifyStreamErr(err, "cannot start encryption")
	}
	if _, err := io.Copy(w, readTagger{ctxReader{ctx, src}}); err != nil {
		w.Close()
		return classifyStreamErr(err, "encryption failed")
	}
	if err := w.Close(); err != nil {
		return classifyStreamErr(err, "encryption failed")
	}
	return nil
}

type decryptFlags struct {
	input, output string
	rangeSpec     string
	workers       int
	progress      progressFlags
}

const decryptExample = `  # a file to a file (OUT appears only if every chunk authenticates)
  enc-pipe decrypt -i data.csv.ep -o data.csv

  # to a pipe: plaintext is released chunk by chunk, each only after it authenticates
  enc-pipe decrypt < photos.tar.ep | tar x

  # bytes 1000000 to 1000099 of the plaintext, reading only the chunks that hold them
  enc-pipe decrypt --range 1000000:100 -i big.log.ep

  # only accept streams of one partition
  enc-pipe decrypt --partition user-42 -i photos.tar.ep -o photos.tar`

func (a *app) newDecryptCommand() *cobra.Command {
	f := &decryptFlags{}
	cmd := &cobra.Command{
		Use:   "decrypt [IN [OUT]]",
		Short: "Decrypt a file or stream",
		Long: `Decrypt an enc-pipe stream from IN (default standard input) to OUT (default
standard output). The header names the partition and the wrapped data key;
the partition's intermediate key is loaded from the metastore.

Every chunk is authenticated before any of its bytes are written. A stream
that is truncated, modified, reordered or followed by extra data fails with
exit code 3; to standard output, the chunks before the damage have already
been written, so check the exit code. A file OUT appears only if the whole
stream authenticates; a new one is created 0600, an existing one keeps its
mode.

With --partition (or ENC_PIPE_PARTITION) a stream of any other partition is
refused (exit code 4); without it the partition named in the header is used.`,
		Example: decryptExample,
		Args:    maxArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runDecrypt(cmd, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.input, "input", "i", "", "input file, or - for standard input")
	fl.StringVarP(&f.output, "output", "o", "", "output file, or - for standard output")
	fl.StringVar(&f.rangeSpec, "range", "", "decrypt only OFFSET:LENGTH bytes of plaintext (OFFSET: for the rest); needs a seekable, uncompressed input file")
	fl.IntVarP(&f.workers, "workers", "w", 0, "goroutines opening chunks (0 = one per CPU)")
	f.progress.register(cmd)
	a.addTransferFlags(cmd, false) // s3io.go: S3 and --recursive
	return cmd
}

// parseRange parses OFFSET:LENGTH or OFFSET: (to the end, length -1).
func parseRange(s string) (off, n int64, err error) {
	o, l, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, usageErrorf("--range %q: want OFFSET:LENGTH or OFFSET:", s)
	}
	if off, err = parseSize(o); err != nil {
		return 0, 0, usageErrorf("--range %q: offset: %v", s, err)
	}
	if l == "" {
		return off, -1, nil
	}
	if n, err = parseSize(l); err != nil {
		return 0, 0, usageErrorf("--range %q: length: %v", s, err)
	}
	return off, n, nil
}

func (a *app) runDecrypt(cmd *cobra.Command, args []string, f *decryptFlags) error {
	ctx := cmd.Context()
	inName, outName, err := resolveIO(args, f.input, f.output)
	if err != nil {
		return err
	}
	if f.workers < 0 {
		return usageErrorf("--workers %d: must be 0 (one per CPU) or more", f.workers)
	}
	if err := f.progress.check(); err != nil {
		return err
	}
	var off, n int64
	if f.rangeSpec != "" {
		if off, n, err = parseRange(f.rangeSpec); err != nil {
			return err
		}
	}
	// Without an explicit partition every partition is accepted: the
	// header names the one to use.
	ropts := []encpipe.ReadOption{encpipe.WithStreamOptions(stream.WithReaderConcurrency(f.workers), stream.WithReaderMetrics(a.obs.provider))}
	if a.partitionExplicit(cmd) {
		if a.g.partition == "" {
			return usageErrorf("--partition: empty partition id")
		}
		ropts = append(ropts, encpipe.AllowPartitions(a.g.partition))
	}

	settings, err := a.resolveSettings()
	if err != nil {
		return err
	}
	in, err := a.openInput(ctx, inName)
	if err != nil {
		return err
	}
	defer in.Close()
	if f.rangeSpec != "" && in.ra == nil {
		return usageErrorf("--range needs an input file that can be read at any offset, not %s", in.Name())
	}
	out, err := a.openOutput(outName, in, outputOptions{})
	if err != nil {
		return err
	}
	// The keys are opened once the header has arrived: nothing before it
	// needs them, and the writer of a pipe may still be creating them.
	keys := &lazyBackend{open: func() (*backend, error) { return a.openBackendWith(ctx, settings, false) }}
	defer keys.Close()
	if f.rangeSpec != "" {
		err = a.decryptRange(ctx, out, in, keys, off, n, ropts)
		return finish(out, err)
	}
	src, stopProgress := a.withProgress(&f.progress, in, in.size(), "decrypting")
	err = a.decryptStream(ctx, out, src, keys, ropts)
	stopProgress()
	return finish(out, err)
}

func (a *app) decryptStream(ctx context.Context, out io.Writer, src io.Reader, keys *lazyBackend, ropts []encpipe.ReadOption) error {
	r, err := encpipe.NewReader(ctx, readTagger{ctxReader{ctx, src}}, keys, ropts...)
	if err != nil {
		if kerr := keys.openErr(); kerr != nil {
			return kerr
		}
		return classifyStreamErr(err, "cannot decrypt")
	}
	defer r.Close()
	if _, err := io.Copy(writeTagger{out}, r); err != nil {
		return classifyStreamErr(err, "decryption failed")
	}
	return nil
}

func (a *app) decryptRange(ctx context.Context, out io.Writer, in *input, keys *lazyBackend, off, n int64, ropts []encpipe.ReadOption) error {
	if obj, ok := in.Source.(*s3source.Object); ok {
		return a.decryptS3Range(ctx, out, obj, keys, off, n, ropts) // s3io.go: one GET for the chunks of the range
	}
	ra := readerAtTagger{in.ra}
	if h, err := stream.ReadHeader(io.NewSectionReader(ra, 0, in.ra.Size())); err == nil && h.Compression() != stream.CodecNone {
		return usageErrorf("--range needs an uncompressed stream: this one is compressed, so its chunks cannot be located")
	}
	r, err := encpipe.NewReaderAt(ctx, ra, in.ra.Size(), keys, ropts...)
	if err != nil {
		if kerr := keys.openErr(); kerr != nil {
			return kerr
		}
		return classifyStreamErr(err, "cannot decrypt")
	}
	defer r.Close()
	size := r.Size()
	if off > size {
		return usageErrorf("--range starts at %d, after the end of the plaintext (%d bytes)", off, size)
	}
	if n < 0 || n > size-off {
		n = size - off
	}
	sr := io.NewSectionReader(r, off, n)
	if _, err := io.Copy(writeTagger{out}, ctxReader{ctx, sr}); err != nil {
		return classifyStreamErr(err, "decryption failed")
	}
	return nil
}
