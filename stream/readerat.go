package stream

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/enc-pipe/enc-pipe/securebuf"
)

// ReaderAt decrypts any byte range of an uncompressed stream held in an
// io.ReaderAt of known size (a file, or an object store reached with HTTP
// Range requests). NewReaderAt authenticates the header and the final
// chunk first, so a truncated or extended stream is caught before any
// plaintext is returned; ReadAt then reads and authenticates only the
// chunks a read touches. (LazyReaderAt defers the final chunk until a
// read needs it.)
//
// ReadAt is safe for concurrent use, as io.ReaderAt requires, and reads
// src concurrently. With more than one worker, a single ReadAt that spans
// several chunks opens them on up to that many goroutines, which it
// starts and waits for before returning. Wrap a ReaderAt in
// io.NewSectionReader(r, 0, r.Size()) to get an io.ReadSeeker.
type ReaderAt struct {
	src       io.ReaderAt
	hdr       *Header
	ks        *keySchedule
	conc      int
	chunk     int64
	ctSize    int64 // chunk + TagSize
	n         uint64
	lastStart int64 // plaintext offset of chunk n-1, the final one
	lastCt    int64 // ciphertext size of chunk n-1
	// size is the plaintext size that the length of src implies. It is
	// the stream's size only once the final chunk has authenticated
	// (verifyEnd): nothing about the end is reported before.
	size int64
	m    *streamMetrics

	endOnce sync.Once
	endErr  error  // result of authenticating the final chunk
	lastPT  []byte // plaintext of the final chunk, once endErr is nil

	cacheMu  sync.Mutex
	cacheIdx uint64
	cacheBuf *[]byte // plaintext of chunk cacheIdx, or nil
	cacheLen int

	closed atomic.Bool
}

var _ io.ReaderAt = (*ReaderAt)(nil)

// NewReaderAt returns a ReaderAt for the stream of size bytes (header
// included) in src, whose header is hdr, decrypting with key, the
// stream's 32-byte data key. It verifies the header MAC and authenticates
// the final chunk before returning: a wrong key or modified header gives
// ErrAuth; a stream cut at a chunk boundary ErrTruncated; one cut inside
// its last chunk, modified there, or followed by more bytes an error
// matching ErrAuth (a *ChunkError that says which). A compressed stream
// gives ErrUnsupported.
//
// The caller owns key: the ReaderAt never closes it, and the caller must
// keep it open until Close returns (and may close it right after
// NewReaderAt fails). The ReaderAt reads the key again when a read
// reaches a chunk of a new epoch (every 2^24 chunks). It does not close
// src; neither does Close.
func NewReaderAt(src io.ReaderAt, size int64, hdr *Header, key securebuf.Secret, opts ...ReaderOption) (*ReaderAt, error) {
	r, err := newReaderAt(src, size, hdr, key, opts)
	if err != nil {
		return nil, err
	}
	if err := r.verifyEnd(); err != nil {
		r.ks.close()
		r.m.failed(err)
		return nil, err
	}
	r.m.started()
	return r, nil
}

// newReaderAt checks the arguments, verifies the header MAC and lays the
// chunks out from size. It reads nothing from src.
func newReaderAt(src io.ReaderAt, size int64, hdr *Header, key securebuf.Secret, opts []ReaderOption) (*ReaderAt, error) {
	o, err := buildReaderOptions(opts)
	if err != nil {
		return nil, err
	}
	if src == nil || hdr == nil {
		return nil, fmt.Errorf("%w: nil source or header", ErrInvalidArgument)
	}
	if hdr.flags&FlagCompressed != 0 {
		return nil, errNotSeekable
	}
	ks, err := newKeySchedule(key, hdr.salt(), false)
	if err != nil {
		return nil, err
	}
	r := &ReaderAt{src: src, hdr: hdr, ks: ks, conc: o.concurrency, m: o.metrics,
		chunk: int64(hdr.ChunkSize()), ctSize: int64(hdr.ChunkSize()) + TagSize}
	if err := r.layout(size); err != nil {
		ks.close()
		r.m.failed(err)
		return nil, err
	}
	return r, nil
}

// layout verifies the header MAC and derives the chunk count and the
// apparent plaintext size from size.
func (r *ReaderAt) layout(size int64) error {
	if err := r.ks.verifyHeader(r.hdr); err != nil {
		return err
	}
	payload := size - r.hdr.Len()
	if payload <= 0 {
		// Every stream has a final chunk, of at least TagSize bytes.
		if size < r.hdr.Len() {
			return fmt.Errorf("%w: size %d is smaller than the header (%d bytes)", ErrTruncated, size, r.hdr.Len())
		}
		return ErrTruncated
	}
	n := uint64((payload + r.ctSize - 1) / r.ctSize)
	if n > MaxChunks {
		return errTooManyChunks
	}
	r.n = n
	r.lastStart = int64(n-1) * r.chunk
	r.lastCt = payload - int64(n-1)*r.ctSize
	r.size = r.lastStart + max(r.lastCt-TagSize, 0)
	return nil
}

// verifyEnd authenticates the final chunk, once: every later call, from
// any goroutine, returns the first one's result (an error is sticky).
func (r *ReaderAt) verifyEnd() error {
	r.endOnce.Do(func() { r.endErr = r.authenticateEnd() })
	return r.endErr
}

// authenticateEnd opens chunk n-1 as the final chunk and keeps its
// plaintext. If it does not open, it names the error: a final chunk that
// opens as non-final means a cut at a chunk boundary (ErrTruncated); if
// chunk n-2 opens as final, the bytes after it were appended.
func (r *ReaderAt) authenticateEnd() error {
	n, lastCt := r.n, r.lastCt
	ct := make([]byte, lastCt)
	if err := r.readCt(ct, n-1); err != nil {
		return err
	}
	pt, err := r.open(n-1, true, lastCt == r.ctSize, nil, ct)
	if err != nil {
		// A failed final chunk may be garbage after a real final chunk.
		if n >= 2 && (err != ErrTruncated || lastCt < TagSize) {
			prev := make([]byte, r.ctSize)
			if rerr := r.readCt(prev, n-2); rerr == nil {
				_, perr := r.open(n-2, true, true, nil, prev)
				switch {
				case perr == nil:
					return chunkErr(n-2, reasonTrailing)
				case perr != ErrTruncated && lastCt < TagSize:
					// Neither of the last two chunks is authentic.
					return ErrAuth
				}
			}
		}
		return err
	}
	if len(pt) == 0 && n > 1 {
		return chunkErr(n-1, "invalid chunk: empty final chunk after other chunks")
	}
	r.lastPT = pt
	return nil
}

// readCt reads the ciphertext of chunk i into ct.
func (r *ReaderAt) readCt(ct []byte, i uint64) error {
	off := r.hdr.Len() + int64(i)*r.ctSize
	n, err := r.src.ReadAt(ct, off)
	if n == len(ct) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = ErrTruncated
	}
	return err
}

// open authenticates and decrypts chunk i. It holds the key schedule's
// use lock shared, so that Close, which may run concurrently, wipes the
// cipher only once no chunk is being opened with it, and fails with
// ErrClosed once Close has begun.
func (r *ReaderAt) open(i uint64, last, full bool, dst, ct []byte) ([]byte, error) {
	r.ks.use.RLock()
	defer r.ks.use.RUnlock()
	aead, err := r.ks.aeadFor(i)
	if err != nil {
		return nil, err
	}
	var n [12]byte
	pt, err := openChunk(aead, &n, i, last, full, r.hdr.mac(), dst, ct)
	if err == nil {
		r.m.chunk(len(pt))
	}
	return pt, err
}

// Size returns the plaintext size of the stream (authenticated by
// NewReaderAt).
func (r *ReaderAt) Size() int64 { return r.size }

// Header returns the header the ReaderAt was created with.
func (r *ReaderAt) Header() *Header { return r.hdr }

// ReadAt reads len(p) bytes of plaintext starting at off. It returns
// io.EOF when fewer bytes remain. A chunk that fails to authenticate ends
// the read: n counts the bytes before it and p[n:] is zeroed.
func (r *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if r.closed.Load() {
		return 0, ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("%w: negative offset %d", ErrInvalidArgument, off)
	}
	// Anything said about an offset in or after the final chunk depends
	// on the end of the stream: authenticate it first. (NewReaderAt has;
	// a LazyReaderAt does it here, or in readChunks when a read that
	// starts earlier gets to the final chunk, in order.)
	if off >= r.lastStart {
		if err := r.verifyEnd(); err != nil {
			r.m.failed(err)
			return 0, err
		}
		if off >= r.size {
			if len(p) == 0 && off == r.size {
				return 0, nil
			}
			return 0, io.EOF
		}
	}
	var eof error
	if rem := r.size - off; int64(len(p)) > rem {
		p = p[:rem]
		eof = io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := r.readRange(p, off)
	if err == nil && eof != nil {
		// io.EOF is a statement about the end. The read got to the
		// final chunk and authenticated it, unless that chunk holds no
		// plaintext (then it fails to authenticate: see authenticateEnd).
		err = r.verifyEnd()
	}
	if err != nil {
		clear(p[n:])
		r.m.failed(err)
		return n, err
	}
	return n, eof
}

// readRange fills p, the plaintext at off (all before r.size), from the
// chunks that hold it, on up to r.conc goroutines.
func (r *ReaderAt) readRange(p []byte, off int64) (int, error) {
	first := uint64(off / r.chunk)
	lastIdx := uint64((off + int64(len(p)) - 1) / r.chunk)
	spans := lastIdx - first + 1

	workers := min(uint64(r.conc), spans)
	if workers <= 1 {
		return r.readChunks(p, off, first, lastIdx)
	}

	// Split the chunks into contiguous groups, one goroutine each.
	type result struct {
		n   int
		err error
	}
	res := make([]result, workers)
	var wg sync.WaitGroup
	per := spans / workers
	extra := spans % workers
	start := first
	for g := range workers {
		cnt := per
		if g < extra {
			cnt++
		}
		lo, hi := start, start+cnt-1
		start += cnt
		pLo := max(int64(lo)*r.chunk-off, 0)
		pHi := min(int64(hi+1)*r.chunk-off, int64(len(p)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if v := recover(); v != nil {
					res[g].err = fmt.Errorf("stream: internal error: panic in ReadAt: %v", v)
				}
			}()
			res[g].n, res[g].err = r.readChunks(p[pLo:pHi], off+pLo, lo, hi)
		}()
	}
	wg.Wait()
	total := 0
	for _, rs := range res {
		total += rs.n
		if rs.err != nil {
			return total, rs.err
		}
	}
	return total, nil
}

// readChunks fills p, the plaintext at off, from chunks first..last.
func (r *ReaderAt) readChunks(p []byte, off int64, first, last uint64) (int, error) {
	n := 0
	var ct *[]byte
	defer func() { putBuf(ct) }()
	for i := first; i <= last; i++ {
		cStart := int64(i) * r.chunk
		within := off + int64(n) - cStart // offset inside chunk i
		if i == r.n-1 {
			if err := r.verifyEnd(); err != nil {
				return n, err
			}
			n += copy(p[n:], r.lastPT[within:])
			continue
		}
		if r.fromCache(i, p[n:], within, &n) {
			continue
		}
		if ct == nil {
			ct = getBuf(int(r.chunk) + 128)
		}
		// Congruent with the file offset modulo 64: see align.
		d := align(r.hdr.Len() + int64(i)*r.ctSize)
		c := (*ct)[d : d+int(r.ctSize)]
		if err := r.readCt(c, i); err != nil {
			return n, err
		}
		if within == 0 && len(p)-n >= int(r.chunk) {
			// The whole chunk is wanted: decrypt straight into p.
			if _, err := r.open(i, false, true, p[n:n], c); err != nil {
				return n, err
			}
			n += int(r.chunk)
			continue
		}
		pt := getBuf(int(r.chunk) + 128)
		plain, err := r.open(i, false, true, (*pt)[:0], c)
		if err != nil {
			putBuf(pt)
			return n, err
		}
		n += copy(p[n:], plain[within:])
		r.toCache(i, pt, len(plain))
	}
	return n, nil
}

// fromCache copies chunk i's cached plaintext from within into p.
func (r *ReaderAt) fromCache(i uint64, p []byte, within int64, n *int) bool {
	r.cacheMu.Lock()
	defer r.cacheMu.Unlock()
	if r.cacheBuf == nil || r.cacheIdx != i {
		return false
	}
	*n += copy(p, (*r.cacheBuf)[within:r.cacheLen])
	return true
}

// toCache keeps the plaintext of the last partially read chunk, so that
// small sequential reads (an io.SectionReader) decrypt each chunk once.
func (r *ReaderAt) toCache(i uint64, pt *[]byte, n int) {
	r.cacheMu.Lock()
	old := r.cacheBuf
	r.cacheIdx, r.cacheBuf, r.cacheLen = i, pt, n
	r.cacheMu.Unlock()
	putBuf(old)
}

// Close wipes and drops the derived keys, and drops the cache. It closes
// neither src nor the data key. It waits for chunks being opened by
// concurrent ReadAt calls; those calls may then fail with ErrClosed (the
// bytes before the failing chunk are delivered, the rest of p is zeroed);
// later ones do. Close is idempotent and returns nil.
func (r *ReaderAt) Close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.cacheMu.Lock()
	putBuf(r.cacheBuf)
	r.cacheBuf = nil
	r.cacheMu.Unlock()
	r.ks.close()
	return nil
}

// LazyReaderAt is a ReaderAt that does not authenticate the final chunk
// up front: it reads only the chunks that its reads touch, so a ranged
// read of a remote object fetches the header and the chunks of the range,
// and the final chunk only when the range reaches it.
//
// This is as safe as ReaderAt. Every chunk's nonce binds its index and
// whether it is the final chunk, and the header MAC binds the stream (its
// salt, hence its keys), so the plaintext of chunk i opened as "index i,
// not final" is exactly chunk i of the stream the writer wrote, whatever
// the length of src claims. Only statements about the end of the stream
// depend on the final chunk: its size (Size), io.EOF, an offset at or
// after the end, and the bytes of the apparent final chunk. A
// LazyReaderAt makes none of them before the final chunk has
// authenticated: the chunk at the last index that the length of src
// implies must open as final. So a stream cut at a chunk boundary still
// gives the authentic bytes of the chunks before the cut, and ErrTruncated
// to a read that reaches the cut; bytes appended give the errors
// NewReaderAt gives, to a read that reaches the end.
//
// The final chunk is authenticated at most once, by the first read that
// needs it (concurrent ones wait for it); its error is sticky. ReadAt is
// safe for concurrent use. Close is as ReaderAt's.
type LazyReaderAt struct {
	r *ReaderAt
}

var _ io.ReaderAt = (*LazyReaderAt)(nil)

// NewLazyReaderAt is NewReaderAt without authenticating the final chunk:
// it verifies the header MAC and checks that size leaves room for a
// chunk, and reads nothing from src. Key ownership is as for NewReaderAt.
func NewLazyReaderAt(src io.ReaderAt, size int64, hdr *Header, key securebuf.Secret, opts ...ReaderOption) (*LazyReaderAt, error) {
	r, err := newReaderAt(src, size, hdr, key, opts)
	if err != nil {
		return nil, err
	}
	r.m.started()
	return &LazyReaderAt{r: r}, nil
}

// ReadAt reads len(p) bytes of plaintext starting at off, as
// ReaderAt.ReadAt does. A read that starts in or after the apparent final
// chunk authenticates that chunk before anything else; one that starts
// before it does so when it gets to it, after the chunks before, and
// returns those bytes with the error if it fails. A read that ends before
// the apparent final chunk reads only its own chunks (a len(p) == 0 read
// there returns 0, nil).
func (l *LazyReaderAt) ReadAt(p []byte, off int64) (int, error) { return l.r.ReadAt(p, off) }

// Size authenticates the final chunk (once: see LazyReaderAt) and returns
// the plaintext size of the stream.
func (l *LazyReaderAt) Size() (int64, error) {
	if err := l.r.verifyEnd(); err != nil {
		return 0, err
	}
	return l.r.size, nil
}

// UnverifiedSize returns the plaintext size that the length of src
// implies, without reading anything. It is the stream's size only if
// Size succeeds: use it to plan reads (a read that reaches the end
// authenticates it), never to report the end of the stream.
func (l *LazyReaderAt) UnverifiedSize() int64 { return l.r.size }

// Header returns the header the LazyReaderAt was created with
// (authenticated).
func (l *LazyReaderAt) Header() *Header { return l.r.hdr }

// Close is ReaderAt.Close.
func (l *LazyReaderAt) Close() error { return l.r.Close() }

// CiphertextRange maps the plaintext byte range [off, off+n) of a stream
// with header hdr to the ciphertext byte range [cOff, cOff+cLen) that holds
// the chunks it touches: one HTTP or S3 Range request. The range may run
// past the end of the stream when it touches the final chunk; clip it to
// the object size. To decrypt, NewReaderAt also needs the header
// ([0, hdr.Len())) and the final chunk; NewLazyReaderAt needs the header,
// and the final chunk only when the range reaches it (it is then the last
// chunk of the range, read after the others). n = 0 gives cLen = 0.
// Compressed streams give ErrUnsupported.
func CiphertextRange(hdr *Header, off, n int64) (cOff, cLen int64, err error) {
	if hdr.flags&FlagCompressed != 0 {
		return 0, 0, errNotSeekable
	}
	if off < 0 || n < 0 || off > (1<<62)-n {
		return 0, 0, fmt.Errorf("%w: invalid plaintext range off=%d n=%d", ErrInvalidArgument, off, n)
	}
	chunk := int64(hdr.ChunkSize())
	ct := chunk + TagSize
	first := off / chunk
	cOff = hdr.Len() + first*ct
	if n == 0 {
		return cOff, 0, nil
	}
	last := (off + n - 1) / chunk
	return cOff, (last - first + 1) * ct, nil
}
