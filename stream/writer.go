package stream

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Writer encrypts a stream: it writes the header to dst when it is
// created, then seals each chunk once it knows whether the chunk is the
// last one (a full chunk is held back until at least one more byte
// arrives or Close is called).
//
// A Writer is not safe for concurrent use. Its errors are sticky: after a
// Write, ReadFrom or Close fails, every later call returns the same error
// without touching dst. Bytes that a failed Writer already wrote to dst
// are an incomplete stream, which a Reader rejects.
//
// With more than one worker (WithConcurrency), chunks are sealed on worker
// goroutines and written to dst, in order, by one flusher goroutine; dst
// is then written from a goroutine other than the caller's, never
// concurrently. Close stops all of them.
type Writer struct {
	dst   io.Writer
	o     *options
	hdr   *Header
	ks    *keySchedule
	ch    *chunker
	chunk int

	buf  *[]byte // chunk being filled (plaintext in (*buf)[:n])
	obuf *[]byte // synchronous compressed path: output buffer
	n    int
	idx  uint64 // index of the chunk being filled

	sj   job        // synchronous path: the one job, reused
	pipe *writePipe // parallel path, started on first dispatch

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
// The key must stay open until Close returns unless WithKeyOwnership is
// given, in which case the Writer closes it (also when NewWriter fails).
// The Writer reads the key when it is created and again every 2^24 chunks
// (1 TiB at 64 KiB chunks) to derive the next epoch's subkey.
//
// Options: WithChunkSize, WithConcurrency, WithCompression,
// WithContentType, WithMetadata, WithKeyOwnership.
func NewWriter(dst io.Writer, key securebuf.Secret, params HeaderParams, opts ...Option) (*Writer, error) {
	o, err := buildOptions(opts)
	if err != nil {
		closeOwned(opts, key)
		return nil, err
	}
	w, err := newWriter(dst, key, params, o)
	if err != nil {
		if o.ownKey && key != nil {
			key.Close()
		}
		return nil, err
	}
	return w, nil
}

// closeOwned closes key if opts contain WithKeyOwnership, for a
// constructor that failed before its options were known to be valid.
func closeOwned(opts []Option, key securebuf.Secret) {
	var o options
	for _, opt := range opts {
		if opt != nil {
			_ = opt(&o)
		}
	}
	if o.ownKey && key != nil {
		key.Close()
	}
}

func newWriter(dst io.Writer, key securebuf.Secret, params HeaderParams, o *options) (*Writer, error) {
	if dst == nil {
		return nil, errors.New("stream: nil destination writer")
	}
	salt := make([]byte, SaltSize)
	if o.salt != nil {
		copy(salt, o.salt)
	} else if _, err := rand.Read(salt); err != nil {
		return nil, fmt.Errorf("stream: failed to generate salt: %v", err)
	}
	hdr, err := buildHeader(o, params, salt)
	if err != nil {
		return nil, err
	}
	ks, err := newKeySchedule(key, o.ownKey, salt)
	if err != nil {
		return nil, err
	}
	mac, err := ks.headerMAC(hdr.raw[:len(hdr.raw)-MACSize])
	if err != nil {
		ks.close()
		return nil, err
	}
	copy(hdr.mac(), mac)
	ch, err := newChunker(hdr, o.concurrency, true)
	if err != nil {
		ks.close()
		return nil, err
	}
	ch.testHook = o.testHook
	w := &Writer{dst: dst, o: o, hdr: hdr, ks: ks, ch: ch, chunk: hdr.ChunkSize(), idx: o.firstIndex}
	if err := writeAll(dst, hdr.raw); err != nil {
		w.release()
		return nil, err
	}
	return w, nil
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

// direct reports whether a full chunk can be sealed straight from the
// caller's slice: only on the synchronous, uncompressed path.
func (w *Writer) direct() bool { return w.o.concurrency == 1 && !w.ch.framed }

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
		if w.n == 0 && len(p) > w.chunk && w.direct() {
			if err := w.sealDirect(p[:w.chunk]); err != nil {
				return written, err
			}
			p = p[w.chunk:]
			written += w.chunk
			continue
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
// into the chunk buffers. It does not end the stream: call Close. An
// error from src is returned as is and is not sticky (the bytes read
// before it are kept and will be encrypted).
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
					extra := b[w.chunk]
					w.n = w.chunk
					if ferr := w.flush(notLast); ferr != nil {
						return total, ferr
					}
					w.buf = w.ensureBuf()
					(*w.buf)[0] = extra
					w.n = 1
				}
				return total, err
			}
		}
		extra := b[w.chunk]
		w.n = w.chunk
		if err := w.flush(notLast); err != nil {
			return total, err
		}
		w.buf = w.ensureBuf()
		(*w.buf)[0] = extra
		w.n = 1
	}
}

func (w *Writer) ensureBuf() *[]byte {
	if w.buf == nil {
		return getBuf(w.ch.bufSize())
	}
	return w.buf
}

// Close seals the final chunk, waits until every chunk is written to dst,
// stops the workers and, with WithKeyOwnership, closes the data key. It
// does not close dst. A second Close returns the first one's result;
// Write and ReadFrom after Close return ErrClosed.
func (w *Writer) Close() error {
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	if w.err == nil {
		if err := w.flush(isLast); err == nil {
			if w.pipe != nil {
				err = w.pipe.shutdown()
				w.pipe = nil
				if err != nil {
					w.fail(err)
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

// flush seals the buffered chunk (w.buf[:w.n]) as chunk w.idx.
func (w *Writer) flush(last bool) error {
	if w.idx >= MaxChunks {
		return w.fail(ErrTooLarge)
	}
	aead, err := w.ks.aeadFor(w.idx)
	if err != nil {
		return w.fail(err)
	}
	if w.buf == nil {
		w.buf = getBuf(w.ch.bufSize())
	}
	if w.o.concurrency == 1 {
		j := &w.sj
		*j = job{idx: w.idx, last: last, aead: aead, a: w.buf, in: (*w.buf)[:w.n]}
		w.idx++
		w.n = 0
		if w.ch.framed {
			if w.obuf == nil {
				w.obuf = getBuf(w.ch.outSize())
			}
			j.b = w.obuf
		}
		w.ch.run(j, opSeal)
		if j.err != nil {
			return w.fail(j.err)
		}
		if err := writeAll(w.dst, j.out); err != nil {
			return w.fail(err)
		}
		return nil
	}
	// Parallel: the job takes the buffer.
	j := newJob()
	*j = job{idx: w.idx, last: last, aead: aead, a: w.buf, in: (*w.buf)[:w.n], done: j.done}
	w.idx++
	w.n = 0
	w.buf = nil
	if w.ch.framed {
		j.b = getBuf(w.ch.outSize())
	}
	if w.pipe == nil {
		if last {
			// A one-chunk stream: no reason to start goroutines.
			w.ch.run(j, opSeal)
			err := j.err
			if err == nil {
				err = writeAll(w.dst, j.out)
			}
			releaseJob(j)
			if err != nil {
				return w.fail(err)
			}
			return nil
		}
		w.pipe = startWritePipe(w.dst, w.ch, w.o.concurrency)
	}
	if err := w.pipe.dispatch(j); err != nil {
		return w.fail(err)
	}
	return nil
}

// sealDirect seals p, a full non-final chunk, straight from the caller's
// slice into the chunk buffer (synchronous uncompressed path only).
func (w *Writer) sealDirect(p []byte) error {
	if w.idx >= MaxChunks {
		return w.fail(ErrTooLarge)
	}
	aead, err := w.ks.aeadFor(w.idx)
	if err != nil {
		return w.fail(err)
	}
	if w.buf == nil {
		w.buf = getBuf(w.ch.bufSize())
	}
	j := &w.sj
	*j = job{idx: w.idx, last: notLast, aead: aead, a: w.buf, in: p}
	w.idx++
	w.ch.run(j, opSeal)
	if j.err != nil {
		return w.fail(j.err)
	}
	if err := writeAll(w.dst, j.out); err != nil {
		return w.fail(err)
	}
	return nil
}

// fail records err as the sticky error (the first error wins), stops the
// pipeline and releases the key.
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	if w.pipe != nil {
		w.pipe.shutdown()
		w.pipe = nil
	}
	w.ks.close()
	return w.err
}

// release returns the buffers and drops the keys (the pipeline is
// already stopped).
func (w *Writer) release() {
	if w.pipe != nil {
		w.pipe.shutdown()
		w.pipe = nil
	}
	putBuf(w.buf)
	putBuf(w.obuf)
	w.buf, w.obuf = nil, nil
	w.ch.close()
	w.ks.close()
}

// writePipe is the parallel path of a Writer, the ordered job/flusher
// pattern of klauspost/compress/zstd: every job is sent to the ordered
// results channel and to the workers; the flusher receives results in
// dispatch order, waits until each is sealed, and writes it. The capacity
// of results bounds the jobs in flight (backpressure). The Writer owns
// the workers and the flusher and stops both in shutdown.
type writePipe struct {
	dst     io.Writer
	ch      *chunker
	w       *workers
	results chan *job
	flushed chan struct{}

	mu  sync.Mutex
	err error // first error wins
}

func startWritePipe(dst io.Writer, ch *chunker, n int) *writePipe {
	p := &writePipe{
		dst:     dst,
		ch:      ch,
		w:       startWorkers(n, ch, opSeal),
		results: make(chan *job, n),
		flushed: make(chan struct{}),
	}
	go p.flusher()
	return p
}

func (p *writePipe) setErr(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *writePipe) getErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *writePipe) dispatch(j *job) error {
	if err := p.getErr(); err != nil {
		releaseJob(j)
		return err
	}
	p.send(p.results, j)
	p.send(p.w.jobs, j)
	return nil
}

// send sends j on ch. While ch is full, the caller seals queued jobs
// itself instead of waiting idle: on a busy machine, where the workers may
// not get a CPU, the pipeline then runs no slower than the caller alone.
func (p *writePipe) send(ch chan *job, j *job) {
	for {
		select {
		case ch <- j:
			return
		case x := <-p.w.jobs:
			p.ch.run(x, opSeal)
		}
	}
}

// flusher writes sealed chunks in order. After the first error it keeps
// draining (waiting for each job and recycling its buffers) so that
// nothing blocks.
func (p *writePipe) flusher() {
	defer close(p.flushed)
	for j := range p.results {
		<-j.done
		if p.getErr() == nil {
			err := j.err
			if err == nil {
				err = writeAll(p.dst, j.out)
			}
			if err != nil {
				p.setErr(err)
			}
		}
		releaseJob(j)
	}
}

// shutdown stops the workers, then the flusher, and returns the first
// error: close the jobs, wait for the workers, close the results, wait
// for the flusher.
func (p *writePipe) shutdown() error {
	p.w.stop()
	close(p.results)
	<-p.flushed
	return p.getErr()
}
