package stream

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Writer encrypts a stream: it writes the header to dst when it is
// created, then seals each chunk once it knows whether the chunk is the
// last one (a full chunk is held back until at least one more byte
// arrives or Close is called).
//
// A Writer is not safe for concurrent use. Its errors are sticky: after a
// Write, ReadFrom or Close fails, every later call returns the same error
// without touching dst (until Reset). Bytes that a failed Writer already
// wrote to dst are an incomplete stream, which a Reader rejects.
//
// Chunks are sealed on worker goroutines (WithWriterConcurrency) while the
// caller's goroutine fills the next chunks: with one worker, reading the
// input (ReadFrom) or copying it (Write) overlaps sealing. Each sealed
// chunk is written to dst as soon as it and every chunk before it are
// sealed, by the goroutine that sealed it (a worker, or the caller), so a
// caller that blocks on its input or stops writing for a while holds back
// no chunk that could be written. dst sees one Write at a time, in stream
// order, and none after Close or Reset returns. A stream that fits in one
// chunk starts no goroutine; Close and Reset stop the workers.
//
// With n workers, at most max(2n, 1 MiB / chunk size) chunks are queued
// (sealed or not, but not yet written), which bounds the Writer's memory.
type Writer struct {
	dst   io.Writer
	o     *writerOptions
	hdr   *Header
	ks    *keySchedule
	ch    *chunker
	chunk int
	pipe  *pipeline

	buf *[]byte // chunk being filled (plaintext in (*buf)[:n])
	n   int
	idx uint64 // index of the chunk being filled

	err      error // sticky
	closed   bool
	closeErr error
}

var (
	_ io.WriteCloser = (*Writer)(nil)
	_ io.ReaderFrom  = (*Writer)(nil)
)

// NewWriter writes a stream header for params to dst and returns a Writer
// that encrypts everything written to it under key, the stream's 32-byte
// data key.
//
// The caller owns key: the Writer never closes it, and the caller must
// keep it open until Close returns (and may close it right after, or
// after NewWriter fails). The Writer reads the key when it is created and
// again every 2^24 chunks (1 TiB at 64 KiB chunks) to derive the next
// epoch's subkey. NewWriter does not close dst; neither does Close.
func NewWriter(dst io.Writer, key securebuf.Secret, params HeaderParams, opts ...WriterOption) (*Writer, error) {
	o, err := buildWriterOptions(opts)
	if err != nil {
		return nil, err
	}
	w := &Writer{o: o}
	if err := w.begin(dst, key, params); err != nil {
		return nil, err
	}
	return w, nil
}

// begin starts a stream: it derives the keys, writes the header to dst
// and resets the Writer's state. The pipeline is stopped.
func (w *Writer) begin(dst io.Writer, key securebuf.Secret, params HeaderParams) error {
	if dst == nil {
		return fmt.Errorf("%w: nil destination writer", ErrInvalidArgument)
	}
	o := w.o
	salt := make([]byte, SaltSize)
	if o.salt != nil {
		copy(salt, o.salt)
	} else if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("stream: failed to generate salt: %v", err)
	}
	hdr, err := buildHeader(o, params, salt)
	if err != nil {
		return err
	}
	ks, err := newKeySchedule(key, salt, true)
	if err != nil {
		return err
	}
	mac, err := ks.headerMAC(hdr.raw[:len(hdr.raw)-MACSize])
	if err != nil {
		ks.close()
		return err
	}
	copy(hdr.mac(), mac)
	if w.ch == nil {
		ch, err := newChunker(hdr, o.concurrency, true)
		if err != nil {
			ks.close()
			return err
		}
		ch.testHook = o.testHook
		ch.metrics = o.metrics
		w.ch = ch
		depth, _ := pipelineDepth(o.concurrency, ch.chunk)
		w.pipe = newPipeline(ch, opSeal, o.concurrency, newCommitter(depth))
	}
	// The workers are stopped, so no goroutine reads the chunker or the
	// committer now; the next push starts them after these writes.
	w.ch.aad = hdr.mac()
	w.pipe.c.reset(dst, o.firstIndex)
	if err := writeAll(dst, hdr.raw); err != nil {
		ks.close()
		return err
	}
	*w = Writer{dst: dst, o: o, hdr: hdr, ks: ks, ch: w.ch, chunk: hdr.ChunkSize(), pipe: w.pipe,
		buf: w.buf, idx: o.firstIndex}
	o.metrics.started()
	return nil
}

// Reset abandons the Writer's current stream, if Close has not ended it,
// and starts a new one in dst: it writes a new header for params, with a
// fresh salt, and encrypts what follows under key. It keeps the options
// and reuses the chunk buffers and the compressor, so that many short
// streams cost less than as many NewWriter calls. Reset takes the key
// explicitly: a Writer never starts a new stream under the key of the
// previous one by accident (a fresh salt gives each stream its own
// subkeys in any case). As with NewWriter, the caller owns key; the
// previous key is no longer used once Reset returns, and the previous
// stream's derived keys are wiped.
//
// Bytes of an abandoned stream already written to the old dst are an
// incomplete stream, which a Reader rejects. If Reset fails, the Writer
// is in the failed state, with Reset's error sticky, until the next
// successful Reset.
func (w *Writer) Reset(dst io.Writer, key securebuf.Secret, params HeaderParams) error {
	w.abandon()
	if err := w.begin(dst, key, params); err != nil {
		w.release()
		w.err, w.closed, w.closeErr = err, true, err
		return err
	}
	return nil
}

// abandon stops the pipeline and drops the current stream's keys, keeping
// the buffers.
func (w *Writer) abandon() {
	w.pipe.c.fail(errAbandoned)
	w.pipe.stop()
	w.n = 0
	if w.ks != nil {
		w.ks.close()
	}
}

// Header returns the header the Writer wrote.
func (w *Writer) Header() *Header { return w.hdr }

func writeAll(dst io.Writer, b []byte) error {
	n, err := dst.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// Write encrypts p. It returns len(p) unless an error stops it.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	written := 0
	for len(p) > 0 {
		if w.n == w.chunk {
			// A full chunk was held back and more data arrived: it is
			// not the last chunk.
			if err := w.flush(notLast); err != nil {
				return written, err
			}
		}
		if w.buf == nil {
			w.buf = getBuf(w.ch.bufSize())
		}
		c := copy((*w.buf)[w.n:w.chunk], p)
		w.n += c
		p = p[c:]
		written += c
	}
	return written, nil
}

// ReadFrom encrypts everything src yields until io.EOF, reading straight
// into the chunk buffers while the workers seal the chunks read before.
// It does not end the stream: call Close. An error from src is returned
// as is and is not sticky (the bytes read before it are kept and will be
// encrypted).
func (w *Writer) ReadFrom(src io.Reader) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	var total int64
	for {
		if w.buf == nil {
			w.buf = getBuf(w.ch.bufSize())
		}
		// Read one chunk plus one byte of lookahead, which tells whether
		// the chunk is the last.
		b := (*w.buf)[:w.chunk+1]
		for w.n < len(b) {
			m, err := src.Read(b[w.n:])
			w.n += m
			total += int64(m)
			if err == io.EOF {
				if w.n > w.chunk {
					break
				}
				return total, nil
			}
			if err != nil {
				if w.n > w.chunk {
					// Keep the lookahead byte as the start of the next chunk.
					if ferr := w.flushLookahead(); ferr != nil {
						return total, ferr
					}
				}
				return total, err
			}
		}
		if err := w.flushLookahead(); err != nil {
			return total, err
		}
	}
}

// flushLookahead dispatches the full chunk in w.buf, whose lookahead byte
// (at w.buf[chunk]) starts the next chunk in a new buffer.
func (w *Writer) flushLookahead() error {
	extra := (*w.buf)[w.chunk]
	w.n = w.chunk
	if err := w.flush(notLast); err != nil {
		return err
	}
	w.buf = getBuf(w.ch.bufSize())
	(*w.buf)[0] = extra
	w.n = 1
	return nil
}

// Close seals the final chunk, writes every chunk still in the Writer to
// dst, stops the workers and wipes the derived keys. It closes neither dst
// nor the data key. A second Close returns the first one's result;
// Write and ReadFrom after Close return ErrClosed (until Reset).
func (w *Writer) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	if w.err == nil {
		if err := w.flush(isLast); err == nil {
			for !w.pipe.empty() {
				if err := w.finishJob(w.pipe.pop()); err != nil {
					break
				}
			}
		}
	}
	err := w.err
	w.release()
	if err == nil {
		w.err = ErrClosed
	}
	w.closeErr = err
	return err
}

const (
	isLast  = true
	notLast = false
)

// flush hands the buffered chunk (w.buf[:w.n]) to the workers as chunk
// w.idx, then recycles the chunks at the front of the queue that are
// written; when the queue is full, it first waits until only a few queued
// chunks are left unwritten. A one-chunk stream (the final chunk with
// nothing queued) is sealed and written in the caller's goroutine.
func (w *Writer) flush(last bool) error {
	if w.idx >= MaxChunks {
		return w.fail(errTooManyChunks)
	}
	aead, err := w.ks.aeadFor(w.idx)
	if err != nil {
		return w.fail(err)
	}
	if w.buf == nil {
		w.buf = getBuf(w.ch.bufSize())
	}
	j := newJob()
	*j = job{idx: w.idx, last: last, aead: aead, ks: w.ks, a: w.buf, in: (*w.buf)[:w.n], done: j.done}
	w.idx++
	w.n = 0
	w.buf = nil
	p := w.pipe
	if last && p.empty() {
		p.runHere(j)
	} else {
		p.push(j)
	}
	for !p.empty() {
		if !p.ready() {
			if !p.full() {
				return nil // read on while the workers seal and write
			}
			p.waitLow()
		}
		if err := w.finishJob(p.pop()); err != nil {
			return err
		}
	}
	return nil
}

// finishJob recycles a job that is finished (written to dst, or failed).
func (w *Writer) finishJob(j *job) error {
	err := j.err
	releaseJob(j)
	if err != nil {
		return w.fail(err)
	}
	return nil
}

// fail records err as the sticky error (the first error wins), stops the
// pipeline and releases the key.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.o.metrics.failed(err)
	}
	w.pipe.c.fail(w.err) // write nothing more
	w.pipe.stop()
	w.ks.close()
	return w.err
}

// release stops the pipeline, returns the buffer being filled and drops
// the keys. The chunker stays for Reset: its zstd encoder, used only
// through EncodeAll, holds no goroutine and needs no Close.
func (w *Writer) release() {
	w.pipe.stop()
	putBuf(w.buf)
	w.buf = nil
	w.n = 0
	w.ks.close()
}
