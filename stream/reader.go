package stream

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// Reader decrypts a stream. Plaintext is released chunk by chunk, only
// after the chunk authenticates; a stream is authenticated as a whole
// only when Read returns io.EOF (before that, a later chunk may still
// fail, so a consumer that must not act on a partial stream should wait
// for EOF).
//
// A Reader is not safe for concurrent use. Its errors are sticky: after a
// chunk fails, the Reader first hands out the plaintext of the chunks
// before it that already authenticated, then returns the error forever
// (until Reset).
//
// Chunks are opened on worker goroutines (WithReaderConcurrency) while the
// caller's goroutine reads the next chunks from src: the Reader reads
// ahead up to max(2 × workers, 1 MiB / chunk size) chunks, so even with
// one worker, reading overlaps opening. src is only ever read, and WriteTo's
// dst only ever written, from the goroutine that calls Read or WriteTo. A
// stream that fits in one chunk starts no goroutine.
//
// Reading ahead has a cost with a source that delivers data slowly, as a
// live pipe does: a chunk's plaintext is released once the chunk has
// authenticated, which takes one byte of the next chunk (that is how the
// Reader knows whether the chunk is the final one), but while the chunk is
// being opened the Reader may already wait in src.Read for the whole next
// chunk and one byte of the one after it. Output then lags the input by up
// to one chunk more than the format requires.
type Reader struct {
	src  chunkSource
	hdr  *Header
	ks   *keySchedule
	ch   *chunker
	o    *readerOptions
	pipe *pipeline
	idx  uint64 // index of the next chunk to read from src

	srcErr  error // delivered after the chunks read before it
	srcDone bool

	out      []byte // authenticated plaintext not yet handed out
	outJob   *job   // the job that owns out
	finished bool   // the final chunk has been opened
	err      error  // sticky
	closed   bool
}

var (
	_ io.ReadCloser = (*Reader)(nil)
	_ io.WriterTo   = (*Reader)(nil)
)

// NewReader returns a Reader that decrypts the chunks that follow hdr in
// src (src must be positioned right after the header, as ReadHeader
// leaves it) with key, the stream's 32-byte data key. It first verifies
// the header MAC, so a wrong key or a modified header fails here with
// ErrAuth, before any chunk is read.
//
// The caller owns key: the Reader never closes it, and the caller must
// keep it open until the Reader is done with it, that is until Close
// returns or Read returns an error (io.EOF included); it may close it
// right after NewReader fails. NewReader does not close src; neither does
// Close.
func NewReader(src io.Reader, hdr *Header, key securebuf.Secret, opts ...ReaderOption) (*Reader, error) {
	o, err := buildReaderOptions(opts)
	if err != nil {
		return nil, err
	}
	r := &Reader{o: o}
	if err := r.begin(src, hdr, key); err != nil {
		return nil, err
	}
	return r, nil
}

// begin verifies hdr under key and resets the Reader to decrypt the
// chunks that follow it in src. The pipeline is stopped.
func (r *Reader) begin(src io.Reader, hdr *Header, key securebuf.Secret) error {
	if src == nil || hdr == nil {
		return fmt.Errorf("%w: nil source or header", ErrInvalidArgument)
	}
	ks, err := newKeySchedule(key, hdr.salt(), true)
	if err != nil {
		return err
	}
	if err := ks.verifyHeader(hdr); err != nil {
		ks.close()
		r.o.metrics.failed(err)
		return err
	}
	r.o.metrics.started()
	ch := r.ch
	if ch == nil || r.closed || ch.chunk != hdr.ChunkSize() || ch.codec != hdr.codec ||
		ch.framed != (hdr.flags&FlagCompressed != 0) {
		// First use, or the stream's chunk size or codec differs from the
		// previous one's, or Close released the decompressor.
		if ch != nil && !r.closed {
			ch.close()
		}
		r.ch, r.pipe = nil, nil
		if ch, err = newChunker(hdr, r.o.concurrency, false); err != nil {
			ks.close()
			return err
		}
		ch.testHook = r.o.testHook
		ch.metrics = r.o.metrics
		r.pipe = newPipeline(ch, opOpen, r.o.concurrency, nil)
	}
	// The workers are stopped; the next push starts them after this.
	ch.aad = hdr.mac()
	*r = Reader{hdr: hdr, ks: ks, ch: ch, o: r.o, pipe: r.pipe, idx: r.o.firstIndex}
	r.src = chunkSource{r: src, framed: ch.framed, ctSize: ch.chunk + TagSize, pos: hdr.Len()}
	if ch.framed {
		r.src.ctSize = ch.chunk + 1 + TagSize
	}
	return nil
}

// Reset abandons the Reader's current stream and makes it decrypt the
// chunks that follow hdr in src under key, as NewReader would, keeping the
// options and reusing the decompressor when the codec and chunk size
// match. It verifies the header MAC first (ErrAuth). Reset works after
// Close too. As with NewReader, the caller owns key; the previous key is
// no longer used once Reset returns, and the previous stream's derived
// keys are wiped. If Reset fails, every Read returns its error until the
// next successful Reset.
func (r *Reader) Reset(src io.Reader, hdr *Header, key securebuf.Secret) error {
	r.abandon()
	if err := r.begin(src, hdr, key); err != nil {
		r.err = err
		return err
	}
	return nil
}

// abandon stops the pipeline, recycles the current chunk and drops the
// keys.
func (r *Reader) abandon() {
	if r.pipe != nil {
		r.pipe.stop()
	}
	if r.outJob != nil {
		releaseJob(r.outJob)
		r.outJob = nil
	}
	r.out = nil
	if r.ks != nil {
		r.ks.close()
	}
}

// Header returns the header the Reader was created with.
func (r *Reader) Header() *Header { return r.hdr }

// Read reads decrypted plaintext into p. It returns io.EOF after the
// final chunk; an error matching ErrAuth, ErrTruncated or ErrUnsupported
// if the stream is broken (see ErrAuth for what each covers); or src's
// error, as it is.
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		if r.closed {
			return 0, ErrClosed
		}
		return 0, nil
	}
	for len(r.out) == 0 {
		if err := r.advance(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// WriteTo writes the decrypted plaintext to dst, each chunk straight from
// the buffer it was decrypted into, until the end of the stream or an
// error. An error from dst is returned but is not sticky.
func (r *Reader) WriteTo(dst io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.out) > 0 {
			n, err := dst.Write(r.out)
			total += int64(n)
			r.out = r.out[n:]
			if err == nil && len(r.out) > 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if err := r.advance(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
	}
}

// Close stops the workers, returns the buffers and wipes the derived
// keys. It closes neither src nor the data key. Reads after Close return
// ErrClosed (until Reset). Close is idempotent and returns nil.
func (r *Reader) Close() error {
	if r.closed {
		return nil
	}
	r.abandon()
	r.closed = true
	if r.ch != nil {
		r.ch.close()
	}
	r.err = ErrClosed
	return nil
}

// advance makes the next chunk's plaintext current in r.out: it recycles
// the current chunk and reads ahead from src while the workers open the
// chunks read before, until the oldest chunk in flight is done. When the
// queue is full, it waits until only a few queued chunks are left
// unopened.
func (r *Reader) advance() error {
	if r.outJob != nil {
		releaseJob(r.outJob)
		r.outJob = nil
	}
	r.out = nil
	if r.err != nil {
		return r.err
	}
	if r.finished {
		return io.EOF
	}
	p := r.pipe
	for p.empty() || !p.ready() {
		switch {
		case !r.srcDone && !p.full():
			r.readNext()
		case p.empty():
			if r.srcErr != nil {
				return r.fail(r.srcErr)
			}
			panic("stream: internal error: no chunk in flight and no error")
		default:
			if !r.srcDone {
				p.waitLow()
			}
			p.wait(p.at(0))
		}
	}
	j := p.pop()
	if j.err != nil {
		err := j.err
		releaseJob(j)
		return r.fail(err)
	}
	r.out, r.outJob = j.out, j
	if j.last {
		r.finish()
	}
	return nil
}

// readNext reads the next chunk from src and queues it (a final chunk
// with nothing queued is opened at once, in the caller's goroutine: there
// is nothing to overlap with).
func (r *Reader) readNext() {
	j := newJob()
	if err := r.readJob(j, getBuf(r.ch.bufSize())); err != nil {
		releaseJob(j) // returns the buffer
		r.srcErr, r.srcDone = err, true
		return
	}
	p := r.pipe
	if j.last {
		r.srcDone = true
		if p.empty() {
			p.runHere(j)
			return
		}
	}
	p.push(j)
}

// readJob reads the next chunk from src into job j with buffer a, which j
// owns from then on.
func (r *Reader) readJob(j *job, a *[]byte) error {
	j.a = a
	if r.idx >= MaxChunks {
		return errTooManyChunks
	}
	ct, last, full, err := r.src.next(*a)
	if err == io.EOF {
		return ErrTruncated // no chunk at all after the header
	}
	if err != nil {
		return err
	}
	aead, err := r.ks.aeadFor(r.idx)
	if err != nil {
		return err
	}
	*j = job{idx: r.idx, last: last, full: full, aead: aead, ks: r.ks, a: a, in: ct, done: j.done}
	r.idx++
	return nil
}

// finish is called once the final chunk has been opened.
func (r *Reader) finish() {
	r.finished = true
	r.pipe.stop()
	r.ks.close()
}

// fail records err as the sticky error (the first error wins), stops the
// workers and drops the keys.
func (r *Reader) fail(err error) error {
	if r.err == nil {
		r.err = err
		r.o.metrics.failed(err)
	}
	r.pipe.stop()
	r.ks.close()
	return r.err
}

// chunkSource cuts the ciphertext that follows the header into chunks and
// decides, by reading ahead, whether each is the last one.
type chunkSource struct {
	r       io.Reader
	framed  bool
	ctSize  int // fixed: full chunk ciphertext size; framed: largest frame
	look    [frameSize]byte
	nLook   int
	pending error // framed: error found while reading ahead
	done    bool
	pos     int64 // stream offset of the next byte to read from r
}

// align is the offset inside a buffer at which the chunk that starts at
// stream offset off is placed. Keeping buffer addresses and file offsets
// congruent modulo 64 lets the kernel copy from the page cache at full
// speed: a read(2) into a destination misaligned with its file offset
// copied about 3x slower on the test machine (1.5 vs 4.5 GB/s).
func align(off int64) int { return int(off & 63) }

// next reads one chunk's ciphertext into buf (which has room for
// ctSize+1 bytes) and reports whether it is the last chunk and whether it
// has its full size. It returns io.EOF when no chunk follows at all.
func (s *chunkSource) next(buf []byte) (ct []byte, last, full bool, err error) {
	if s.done {
		return nil, false, false, io.EOF
	}
	if s.framed {
		return s.nextFramed(buf)
	}
	buf = buf[align(s.pos-int64(s.nLook)):]
	n0 := copy(buf, s.look[:s.nLook])
	s.nLook = 0
	m, err := io.ReadFull(s.r, buf[n0:s.ctSize+1])
	s.pos += int64(m)
	total := n0 + m
	switch err {
	case nil:
		s.look[0] = buf[s.ctSize]
		s.nLook = 1
		return buf[:s.ctSize], false, true, nil
	case io.EOF, io.ErrUnexpectedEOF:
		s.done = true
		if total == 0 {
			return nil, false, false, io.EOF
		}
		return buf[:total], true, total == s.ctSize, nil
	default:
		s.done = true
		return nil, false, false, err
	}
}

func (s *chunkSource) nextFramed(buf []byte) (ct []byte, last, full bool, err error) {
	if s.pending != nil {
		s.done = true
		return nil, false, false, s.pending
	}
	if s.nLook < frameSize {
		m, err := io.ReadFull(s.r, s.look[s.nLook:])
		s.nLook += m
		s.pos += int64(m)
		if err != nil {
			s.done = true
			if err == io.EOF && s.nLook == 0 {
				return nil, false, false, io.EOF
			}
			return nil, false, false, readErr(err)
		}
	}
	n := binary.BigEndian.Uint32(s.look[:])
	s.nLook = 0
	if n < TagSize+1 || n > uint32(s.ctSize) {
		// No writer produces this length: the frame was modified.
		s.done = true
		return nil, false, false, ErrAuth
	}
	buf = buf[align(s.pos):]
	m, err := io.ReadFull(s.r, buf[:n])
	s.pos += int64(m)
	if err != nil {
		s.done = true
		return nil, false, false, readErr(err)
	}
	m, err = io.ReadFull(s.r, s.look[:])
	s.nLook = m
	s.pos += int64(m)
	switch err {
	case nil:
		return buf[:n], false, true, nil
	case io.EOF:
		s.done = true
		return buf[:n], true, true, nil
	case io.ErrUnexpectedEOF:
		s.pending = ErrTruncated
		return buf[:n], false, true, nil
	default:
		s.done = true
		return nil, false, false, err
	}
}
