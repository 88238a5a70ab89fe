// Package stream encrypts and decrypts streams of any length in the
// enc-pipe format v1 (docs/FORMAT.md is the normative spec): chunked
// AES-256-GCM under per-stream HKDF-SHA-256 subkeys, with STREAM nonces,
// an HMAC'd header that carries the wrapped data key, and fixed-size
// chunks so that any byte range can be decrypted on its own.
//
// A stream is
//
//	header || chunk_0 || chunk_1 || … || chunk_last
//
//	header  = magic "\x89EP\n" · version · suite · log2(chunk size) · flags ·
//	          header length · 32-byte salt · key record · partition ·
//	          metadata · HMAC-SHA-256(K_hdr, all of the above)
//	chunk_i = AES-256-GCM(K_payload[i>>24], nonce = i (11 bytes) ‖ last (1 byte),
//	          plaintext_i, AAD = header MAC)
//
// Every chunk but the last holds exactly ChunkSize plaintext bytes (64 KiB
// by default), so chunk i starts at Header.Len() + i·(ChunkSize+16) and the
// size overhead is the header plus 16 bytes per chunk. An empty stream is
// one empty final chunk.
//
// # Security properties
//
// The header MAC is checked before any chunk is opened; since HMAC-SHA-256
// commits to its key, a stream decrypts under one data key only. The chunk
// index and the last-chunk flag are in each nonce, and the header MAC is
// each chunk's associated data, so reordered, duplicated, dropped or
// foreign chunks fail with ErrAuth, and so do bytes after the final chunk;
// a stream that ends early fails with ErrTruncated. A Reader releases a
// chunk's plaintext only after that chunk authenticates, but it releases
// it before later chunks are checked: a stream is authentic as a whole
// only once Read returns io.EOF.
//
// # Errors
//
// A stream that cannot be read fails with an error that matches exactly
// one of three sentinels with errors.Is:
//
//   - ErrAuth: the bytes are not what a writer produced under this key
//     (modified, reordered, from another stream or key, extended, a header
//     that breaks the format's rules, or cut inside a chunk, which cannot
//     be told from a modified final chunk);
//   - ErrTruncated: the input ends early, and nothing it holds fails to
//     authenticate (also io.ErrUnexpectedEOF);
//   - ErrUnsupported: not an enc-pipe stream, a newer version, suite, flag
//     or codec, or an operation the stream does not allow (random access
//     to a compressed stream).
//
// A *HeaderError (from ReadHeader and ParseHeader) or *ChunkError carries
// the details where there are any; a bare ErrAuth has a fixed message.
// Besides these, ErrClosed reports use after Close, ErrInvalidArgument a
// caller's mistake (an option, key or parameter out of range), and errors
// of the underlying io.Reader or io.Writer come back as they are.
//
// # Keys
//
// This package never sees a key encryption key. The caller passes the
// stream's 32-byte data key as a securebuf.Secret and the key record (the
// data key wrapped by the partition's intermediate key) as opaque bytes
// for the header; package encpipe does both with an envelope.Session.
// Subkeys are derived inside Secret.WithBytes and the temporary copies
// wiped. The expanded AES key schedule of each epoch in use (crypto/aes
// offers no way to keep it elsewhere) lives on the Go heap only until the
// stream ends: Close, a failure for good, the end of a Reader's stream,
// and Reset overwrite it with zeros (internal/aesgcm); after that, no
// chunk operation runs with it (they fail with ErrClosed).
//
// # Concurrency and ownership
//
// Writer and Reader are not safe for concurrent use; the ReadAt of ReaderAt
// and LazyReaderAt is.
// WithWriterConcurrency(n) and WithReaderConcurrency(n) set how many worker
// goroutines seal or open chunks; output order never changes. The caller's goroutine does the reading
// (and a Reader's writing, in WriteTo) while the workers run, so even one
// worker overlaps I/O with AES-GCM; a Writer's sealed chunks are written
// to dst by the goroutine that sealed them, one Write at a time, in order.
// A stream that fits in one chunk starts no goroutine. Workers are owned
// by the Writer or Reader that started them and are gone when Close or
// Reset returns (a Reader also stops them at the end of the stream or at
// its first error). No constructor, Reset or Close ever closes the
// underlying io.Writer or io.Reader, or the data key: the caller owns the
// key, keeps it open while the stream uses it (until Close, or a Reader's
// io.EOF or error) and closes it, as with age's NewDecryptReader. Package
// encpipe's wrappers do so for the data keys they open.
//
// Writers and readers take separate option types, WriterOption and
// ReaderOption, so an option cannot be given to a side that would ignore
// it. Writer.Reset and Reader.Reset start a new stream with a key given
// explicitly, reusing the options, the pipeline and the compressor.
//
// # Compression
//
// WithCompression compresses each chunk (zstd or S2) before sealing it, in
// the worker pool. Compressed chunks have variable sizes and are framed
// with their length, so a compressed stream can only be read sequentially:
// NewReaderAt, NewLazyReaderAt and CiphertextRange refuse it with
// ErrUnsupported.
//
// # Memory
//
// Whatever the stream's length, a Writer or Reader with n workers queues
// at most max(2n, 1 MiB / chunk size) chunks, one buffer each, plus one
// more buffer for each chunk being sealed or opened and the chunk being
// filled or handed out: in all less than 1 MiB + 4 × n chunk buffers. The
// 1 MiB floor keeps the workers busy through the tens of microseconds a
// sleeping caller takes to wake up. The pipeline allocates nothing per
// chunk, so the heap stays flat. Buffers come from pools shared by all
// streams of the process.
package stream
