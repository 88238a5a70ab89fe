// Package encpipe encrypts and decrypts streams under an Asherah-compatible
// key hierarchy: it glues package stream (the chunked format, docs/FORMAT.md)
// to package envelope (sessions, intermediate keys, metastore and KMS).
//
// Encrypting: NewWriter asks the session for a fresh data key, writes the
// key wrapped by the partition's intermediate key (an Asherah
// EnvelopeKeyRecord, as JSON) and the partition id into the stream header,
// and returns a *Writer (a *stream.Writer that owns its data key).
//
//	sess, err := factory.GetSession("partition-1")
//	…
//	defer sess.Close()
//	w, err := encpipe.NewWriter(ctx, dst, sess)
//	…
//	if _, err := io.Copy(w, src); err != nil { … }
//	if err := w.Close(); err != nil { … } // seals the final chunk; dst stays open
//
// Decrypting: NewReader reads the header, refuses a partition the caller did
// not allow (AllowPartitions) before any key is loaded, gets a session for
// the header's partition, unwraps the data key through the metastore and
// KMS, and returns a *Reader that verifies the header MAC before it
// returns. NewReaderAt does the same for random access (*ReaderAt), and
// NewLazyReaderAt for ranged reads that fetch the final chunk only when
// they reach the end (*LazyReaderAt).
//
// # Who closes what
//
// Package stream never closes a data key: its caller owns it. The data
// key of a stream encrypted or decrypted here is opened by this package,
// so this package's Writer, Reader, ReaderAt and LazyReaderAt own it and
// close (wipe) it: when their Close returns, when the constructor fails,
// when a Writer or Reader fails for good (a sticky error), and when a
// Reader reaches the end of the stream. The caller always closes the
// Writer, Reader, ReaderAt or LazyReaderAt it gets (Close never closes dst or src) and its own sessions; the session
// NewReader gets from Sessions is closed by NewReader before it returns.
//
// # Errors
//
// The stream's failures are package stream's: each matches exactly one of
// stream.ErrAuth, stream.ErrTruncated and stream.ErrUnsupported. A header
// that does not authenticate — modified, written under another data key,
// naming a partition its key record does not belong to, or carrying a
// wrapped data key that fails AES-GCM under the partition's intermediate
// key — fails with stream.ErrAuth and its fixed message. A partition
// outside the allowed set fails with ErrPartitionNotAllowed. When the keys
// themselves are the problem — the intermediate or system key row is
// missing (envelope.ErrNotFound), the KMS fails or holds another master
// key, a stored key does not unwrap — NewReader fails with
// ErrKeyUnavailable, which also wraps the *envelope.KeyError that names the
// key and the cause. Other errors of the metastore or KMS are returned
// wrapped, as they are.
package encpipe
