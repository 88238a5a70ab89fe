package stream

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"sync"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// job is one chunk travelling through the pipeline: the owner fills in, a
// worker (or the owner) fills out or err and then signals done, and the
// owner receives done exactly once (got records that it has). Jobs come
// from jobPool with a done channel of capacity 1 that is reused, so that
// the steady state allocates nothing (a garbage-free pipeline keeps the
// heap, and so the RSS, flat).
//
// A queued job holds one buffer, a (a Writer's plaintext, a Reader's
// ciphertext). Processing takes a second buffer, b, from the pool when
// the chunk needs one (compression on the Writer, every chunk on the
// Reader) and returns whichever of the two the result does not live in,
// so a job that is done holds one buffer again.
type job struct {
	idx  uint64
	last bool
	full bool // reader: the chunk has its full ciphertext size
	aead cipher.AEAD
	ks   *keySchedule // aead's: once it is closed, aead is wiped
	a, b *[]byte      // pooled buffers owned by the job
	in   []byte       // writer: plaintext; reader: ciphertext (in *a)
	out  []byte       // writer: bytes to write; reader: authenticated plaintext
	err  error
	done chan struct{}
	got  bool // the owner has received the done signal

	nonce [12]byte // scratch, so that no nonce escapes to the heap
}

// chunker seals and opens single chunks. It is safe for concurrent use.
type chunker struct {
	chunk  int    // plaintext chunk size
	aad    []byte // the header MAC
	framed bool   // compressed streams: length-framed chunks
	codec  Codec
	zenc   *zstd.Encoder
	zdec   *zstd.Decoder

	testHook func(*job)     // tests only: runs before each chunk is processed
	metrics  *streamMetrics // nil: none
}

func newChunker(h *Header, concurrency int, forWriting bool) (*chunker, error) {
	c := &chunker{
		chunk:  h.ChunkSize(),
		aad:    h.mac(),
		framed: h.flags&FlagCompressed != 0,
		codec:  h.codec,
	}
	if c.codec == CodecZstd {
		var err error
		if forWriting {
			c.zenc, err = zstd.NewWriter(nil,
				zstd.WithEncoderLevel(zstd.SpeedFastest),
				zstd.WithEncoderConcurrency(concurrency),
				zstd.WithEncoderCRC(false), // GCM authenticates every chunk
				zstd.WithWindowSize(max(c.chunk, zstd.MinWindowSize)),
				zstd.WithLowerEncoderMem(true))
		} else {
			c.zdec, err = zstd.NewReader(nil,
				zstd.WithDecoderConcurrency(concurrency),
				zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxMemory(uint64(c.chunk)),
				zstd.WithDecodeAllCapLimit(true),
				zstd.IgnoreChecksum(true))
		}
		if err != nil {
			return nil, fmt.Errorf("stream: failed to set up zstd: %v", err)
		}
	}
	return c, nil
}

func (c *chunker) close() {
	if c.zenc != nil {
		c.zenc.Close()
	}
	if c.zdec != nil {
		c.zdec.Close()
	}
}

// bufSize is the size of every pooled buffer of a stream: a chunk plus
// room for the tag, the compression marker, the frame prefix, the
// one-byte lookahead, and up to 63 bytes of offset (see chunkSource.next).
func (c *chunker) bufSize() int { return c.chunk + 128 }

// outSize is the size of the writer's second buffer for compressed
// streams: the largest compressor output plus the framing.
func (c *chunker) outSize() int { return s2.MaxEncodedLen(c.chunk) + 64 }

// Operations for run.
const (
	opSeal = iota
	opOpen
)

// run seals or opens j, turning a panic into j.err. It does not signal
// j.done: the pipeline does, once the job is finished (see
// pipeline.process).
func (c *chunker) run(j *job, op int) {
	defer func() {
		if r := recover(); r != nil {
			j.err = fmt.Errorf("stream: internal error: panic while processing chunk %d: %v", j.idx, r)
			j.out = nil
		}
	}()
	if c.testHook != nil {
		c.testHook(j)
	}
	if j.ks.closed.Load() {
		// The owner stops the pipeline before it closes the keys, so this
		// does not happen; if it did, the wiped cipher must not be used.
		j.err, j.out = ErrClosed, nil
		return
	}
	if op == opSeal {
		n := len(j.in)
		c.seal(j)
		c.metrics.chunk(n)
	} else {
		c.open(j)
		if j.err == nil {
			c.metrics.chunk(len(j.out))
		}
	}
}

// seal encrypts j.in (in *j.a) as chunk j.idx and sets j.out to the bytes
// to write. Uncompressed chunks are sealed in place.
func (c *chunker) seal(j *job) {
	n := &j.nonce
	nonce(n, j.idx, j.last)
	if !c.framed {
		// In place when j.in is (*j.a)[:len(j.in)], as it is except on
		// the Writer's direct path, which seals from the caller's slice.
		j.out = j.aead.Seal((*j.a)[:0], n[:], j.in, c.aad)
		return
	}
	if j.b == nil {
		j.b = getBuf(c.outSize())
	}
	ob := (*j.b)[:cap(*j.b)]
	body := ob[frameSize+1 : frameSize+1]
	var packed []byte
	switch c.codec {
	case CodecZstd:
		packed = c.zenc.EncodeAll(j.in, body)
	case CodecS2:
		packed = s2.Encode(body, j.in)
	}
	marker := byte(markerCompress)
	if len(packed) >= len(j.in) || &packed[:1][0] != &body[:1][0] {
		// Not smaller (or the compressor did not write into our buffer,
		// which cannot happen with these capacities): store raw.
		marker = markerStored
		packed = ob[frameSize+1 : frameSize+1+copy(ob[frameSize+1:], j.in)]
	}
	ob[frameSize] = marker
	pt := ob[frameSize : frameSize+1+len(packed)]
	sealed := j.aead.Seal(pt[:0], n[:], pt, c.aad)
	binary.BigEndian.PutUint32(ob[:frameSize], uint32(len(sealed)))
	j.out = ob[:frameSize+len(sealed)]
	putBuf(j.a) // the plaintext is no longer needed
	j.a, j.in = nil, nil
}

// open authenticates and decrypts j.in (in *j.a) as chunk j.idx into *j.b
// and sets j.out, or sets j.err. No byte of a chunk that fails is exposed.
func (c *chunker) open(j *job) {
	if j.b == nil {
		j.b = getBuf(c.bufSize())
	}
	pt, err := openChunk(j.aead, &j.nonce, j.idx, j.last, j.full, c.aad, (*j.b)[:0], j.in)
	if err != nil {
		j.err = err
		return
	}
	if !c.framed {
		if j.last && len(pt) == 0 && j.idx != 0 {
			j.err = chunkErr(j.idx, "invalid chunk: empty final chunk after other chunks")
			return
		}
		j.out = pt
		putBuf(j.a) // the ciphertext is no longer needed
		j.a, j.in = nil, nil
		return
	}
	out, err := c.unpack(pt, (*j.a)[:0])
	if err != nil {
		j.err = chunkErr(j.idx, "invalid chunk: %v", err)
		return
	}
	switch {
	case !j.last && len(out) != c.chunk:
		j.err = chunkErr(j.idx, "invalid chunk: holds %d bytes, not %d", len(out), c.chunk)
	case j.last && len(out) == 0 && j.idx != 0:
		j.err = chunkErr(j.idx, "invalid chunk: empty final chunk after other chunks")
	default:
		j.out = out
		putBuf(j.b) // the decompressed plaintext is in j.a
		j.b, j.in = nil, nil
	}
}

// unpack undoes the compression of an opened chunk (marker ‖ data) into
// dst, which has room for one chunk.
func (c *chunker) unpack(pt, dst []byte) ([]byte, error) {
	if len(pt) < 1 {
		return nil, fmt.Errorf("missing compression marker")
	}
	data := pt[1:]
	switch pt[0] {
	case markerStored:
		if len(data) > c.chunk {
			return nil, fmt.Errorf("stored chunk of %d bytes", len(data))
		}
		return append(dst[:0], data...), nil
	case markerCompress:
	default:
		return nil, fmt.Errorf("unknown compression marker %#02x", pt[0])
	}
	switch c.codec {
	case CodecS2:
		n, err := s2.DecodedLen(data)
		if err != nil {
			return nil, err
		}
		if n > c.chunk {
			return nil, fmt.Errorf("decompresses to %d bytes", n)
		}
		return s2.Decode(dst[:n], data)
	case CodecZstd:
		return c.zdec.DecodeAll(data, dst[:0:c.chunk])
	}
	return nil, fmt.Errorf("codec %v", c.codec)
}

// openChunk opens one chunk into dst (which must not overlap ct). last
// says whether the stream ended right after this chunk; full whether the
// chunk had its full ciphertext size (always true for framed chunks).
// On failure it tries the other last-chunk flag, only to name the error:
// a chunk that opens as final although data follows means data was
// appended (a *ChunkError of class ErrAuth); a chunk at the end that opens
// as non-final means the stream was cut at that chunk boundary
// (ErrTruncated). A short chunk at the end that opens neither way was cut
// inside or modified (a *ChunkError of class ErrAuth). Nothing is returned
// from a failed chunk.
func openChunk(aead cipher.AEAD, n *[12]byte, idx uint64, last, full bool, aad, dst, ct []byte) ([]byte, error) {
	if len(ct) < TagSize {
		return nil, ErrTruncated
	}
	nonce(n, idx, last)
	pt, err := aead.Open(dst, n[:], ct, aad)
	if err == nil {
		return pt, nil
	}
	nonce(n, idx, !last)
	pt, err = aead.Open(dst, n[:], ct, aad)
	if err == nil {
		clear(pt)
		if last {
			return nil, ErrTruncated
		}
		return nil, chunkErr(idx, reasonTrailing)
	}
	if last && !full {
		return nil, chunkErr(idx, reasonCutOrChanged)
	}
	return nil, ErrAuth
}

var jobPool = sync.Pool{New: func() any { return &job{done: make(chan struct{}, 1)} }}

// newJob returns a pooled job for the parallel paths.
func newJob() *job { return jobPool.Get().(*job) }

// releaseJob returns j's buffers and, for a pooled job, j itself. The
// caller must have received j's done signal, or j must never have run.
func releaseJob(j *job) {
	putBuf(j.a)
	putBuf(j.b)
	done := j.done
	*j = job{done: done}
	if done != nil {
		select {
		case <-done: // a job that ran but was never waited for
		default:
		}
		jobPool.Put(j)
	}
}

// Buffer pools, one per size. Buffers hold plaintext and ciphertext of
// chunks, never keys.
var pools sync.Map // int -> *sync.Pool

func getBuf(size int) *[]byte {
	p, ok := pools.Load(size)
	if !ok {
		p, _ = pools.LoadOrStore(size, &sync.Pool{New: func() any {
			b := make([]byte, size)
			return &b
		}})
	}
	return p.(*sync.Pool).Get().(*[]byte)
}

func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	if p, ok := pools.Load(cap(*b)); ok {
		*b = (*b)[:cap(*b)]
		p.(*sync.Pool).Put(b)
	}
}
