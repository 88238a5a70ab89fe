package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/enc-pipe/enc-pipe/stream"
)

// goid returns the id of the calling goroutine (tests only).
func goid() uint64 {
	var b [64]byte
	s := b[:runtime.Stack(b[:], false)]
	s = bytes.TrimPrefix(s, []byte("goroutine "))
	id, _ := strconv.ParseUint(string(s[:bytes.IndexByte(s, ' ')]), 10, 64)
	return id
}

// goroutineSet records which goroutines processed chunks.
type goroutineSet struct {
	mu  sync.Mutex
	ids map[uint64]int
}

// hooks returns the hook for a Writer and for a Reader.
func (g *goroutineSet) hooks() (stream.WriterOption, stream.ReaderOption) {
	g.ids = map[uint64]int{}
	return stream.ChunkHookForTest(func(uint64) {
		id := goid()
		g.mu.Lock()
		g.ids[id]++
		g.mu.Unlock()
	})
}

func (g *goroutineSet) others(self uint64) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for id := range g.ids {
		if id != self {
			n++
		}
	}
	return n
}

// TestOneWorkerIsOneGoroutine: with a concurrency of 1, every chunk of a
// multi-chunk stream is sealed or opened by one goroutine that is not the
// caller's (the caller reads meanwhile), and exactly one such goroutine
// runs mid-stream; a one-chunk stream is processed in the caller's
// goroutine and starts none.
func TestOneWorkerIsOneGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t)
	key := testKey(t, "onegoroutine")
	self := goid()
	pt := randBytes(40*cs+7, 61)
	for _, readFrom := range []bool{false, true} {
		var gw, gr goroutineSet
		var buf bytes.Buffer
		wHook, _ := gw.hooks()
		_, rHook := gr.hooks()
		w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(1), wHook)
		if err != nil {
			t.Fatal(err)
		}
		if readFrom {
			_, err = w.ReadFrom(onlyReader{bytes.NewReader(pt[:20*cs+1])})
		} else {
			_, err = w.Write(pt[:20*cs+1])
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := countWorkers(); n != 1 {
			t.Fatalf("writer: %d worker goroutines mid-stream, want 1", n)
		}
		w.Write(pt[20*cs+1:])
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if n := gw.others(self); n != 1 || gw.ids[self] > 1 {
			t.Fatalf("writer: chunks sealed by %d goroutines besides the caller, and %d by the caller; want 1 and at most the final one", n, gw.ids[self])
		}

		ct := buf.Bytes()
		src := bytes.NewReader(ct)
		hdr, _ := stream.ReadHeader(src)
		r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(1), rHook)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 10*cs)
		if _, err := io.ReadFull(r, got); err != nil {
			t.Fatal(err)
		}
		if n := countWorkers(); n != 1 {
			t.Fatalf("reader: %d worker goroutines mid-stream, want 1", n)
		}
		rest, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(append(got, rest...), pt) {
			t.Fatalf("round trip: %v", err)
		}
		if n := gr.others(self); n != 1 {
			t.Fatalf("reader: chunks opened by %d goroutines besides the caller, want 1", n)
		}
	}

	// A one-chunk stream: sealed and opened by the caller.
	var g goroutineSet
	wHook, rHook := g.hooks()
	ct := encrypt(t, key, pt[:cs], stream.WithChunkSize(cs), stream.WithWriterConcurrency(1), wHook)
	if _, err := decrypt(t, key, ct, rHook); err != nil {
		t.Fatal(err)
	}
	if g.others(self) != 0 {
		t.Fatal("a one-chunk stream started a goroutine")
	}
}

// countWorkers counts this package's worker goroutines.
func countWorkers() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return bytes.Count(buf, []byte("stream.startWorkers.func1"))
}

// gateReader delivers src, and closes passed once more than limit bytes
// have been read.
type gateReader struct {
	src    io.Reader
	n      atomic.Int64
	limit  int64
	passed chan struct{}
	once   sync.Once
}

func newGateReader(src io.Reader, limit int64) *gateReader {
	return &gateReader{src: src, limit: limit, passed: make(chan struct{})}
}

func (g *gateReader) Read(p []byte) (int, error) {
	n, err := g.src.Read(p)
	if g.n.Add(int64(n)) > g.limit {
		g.once.Do(func() { close(g.passed) })
	}
	return n, err
}

// deadlockGuard bounds a wait that must end unless the code under test
// deadlocks; it measures nothing.
const deadlockGuard = 20 * time.Second

// TestOneWorkerOverlapsIO: with one worker, the caller reads chunk i+1
// while chunk i is being sealed or opened. The hook of chunk 0 blocks until
// the source has delivered all of chunk 1: a pipeline that read and sealed
// in turn would never get there.
func TestOneWorkerOverlapsIO(t *testing.T) {
	defer goleak.VerifyNone(t)
	key := testKey(t, "overlap")
	pt := randBytes(6*cs, 62)
	ct := encrypt(t, key, pt, stream.WithChunkSize(cs))
	for _, op := range []string{"seal", "open"} {
		t.Run(op, func(t *testing.T) {
			var gate *gateReader
			var overlapped atomic.Bool
			wHook, rHook := stream.ChunkHookForTest(func(idx uint64) {
				if idx != 0 {
					return
				}
				select {
				case <-gate.passed:
					overlapped.Store(true)
				case <-time.After(deadlockGuard):
				}
			})
			if op == "seal" {
				gate = newGateReader(bytes.NewReader(pt), 2*cs)
				w, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(1), wHook)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.ReadFrom(onlyReader{gate}); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			} else {
				src := bytes.NewReader(ct)
				hdr, _ := stream.ReadHeader(src)
				gate = newGateReader(src, 2*(cs+stream.TagSize))
				r, err := stream.NewReader(gate, hdr, key, stream.WithReaderConcurrency(1), rHook)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("ReadAll: %v", err)
				}
			}
			if !overlapped.Load() {
				t.Fatalf("chunk 1 was not read while chunk 0 was %sed", op)
			}
		})
	}
}

// TestReadAheadIsBounded: however fast the source, a Writer or Reader reads
// at most PipelineDepthForTest chunks beyond the oldest chunk not yet
// finished: while chunk i is being sealed or opened, the source has
// delivered at most (i + depth) chunks and the lookahead. With a
// one-chunk depth more, or an unbounded queue, this fails.
func TestReadAheadIsBounded(t *testing.T) {
	key := testKey(t, "bounded")
	const chunk = 64 << 10
	const chunks = 80
	pt := randBytes(chunks*chunk, 63)
	for _, conc := range []int{1, 2, 4} {
		for _, codec := range []stream.Codec{stream.CodecNone, stream.CodecS2} {
			t.Run(fmt.Sprintf("conc=%d/%v", conc, codec), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				depth := int64(stream.PipelineDepthForTest(conc, chunk))
				if depth >= chunks/2 {
					t.Fatalf("depth %d: the test needs more chunks", depth)
				}
				var src *gateReader
				var worst atomic.Int64 // largest excess seen, in bytes
				var size int64         // bytes per chunk on the source
				wHook, rHook := stream.ChunkHookForTest(func(idx uint64) {
					if excess := src.n.Load() - (int64(idx)+depth)*size - 1; excess > worst.Load() {
						worst.Store(excess)
					}
				})
				size = chunk
				src = newGateReader(bytes.NewReader(pt), 1<<62)
				var buf bytes.Buffer
				w, err := stream.NewWriter(&buf, key, testParams, stream.WithChunkSize(chunk), stream.WithWriterConcurrency(conc), stream.WithCompression(codec), wHook)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.ReadFrom(onlyReader{src}); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				if worst.Load() > 0 {
					t.Fatalf("writer read %d bytes beyond the bound", worst.Load())
				}
				if codec != stream.CodecNone {
					return // compressed chunks have no fixed size on the source
				}
				ct := buf.Bytes()
				hdr := mustHeader(t, ct)
				size = chunk + stream.TagSize
				src = newGateReader(bytes.NewReader(ct[hdr.Len():]), 1<<62)
				r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(conc), rHook)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("ReadAll: %v", err)
				}
				if worst.Load() > 0 {
					t.Fatalf("reader read %d bytes beyond the bound", worst.Load())
				}
			})
		}
	}
}

// notifyWriter records what is written and signals when at least want
// bytes have arrived.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want int
	got  chan struct{}
	once sync.Once
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.buf.Len() >= w.want {
		w.once.Do(func() { close(w.got) })
	}
	return len(p), nil
}

// TestSealedChunksAreWrittenWithoutWaiting: once a chunk is known not to
// be the last and is sealed, it reaches dst even though the caller writes
// nothing more (Write) or waits on its input (ReadFrom from a pipe): a
// streaming writer must not hold back a chunk it could emit.
func TestSealedChunksAreWrittenWithoutWaiting(t *testing.T) {
	key := testKey(t, "emit")
	pt := randBytes(3*cs+1, 64)
	for _, conc := range []int{1, 2} {
		for _, readFrom := range []bool{false, true} {
			t.Run(fmt.Sprintf("conc=%d/readfrom=%v", conc, readFrom), func(t *testing.T) {
				defer goleak.VerifyNone(t)
				dst := &notifyWriter{got: make(chan struct{})}
				w, err := stream.NewWriter(dst, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
				if err != nil {
					t.Fatal(err)
				}
				dst.mu.Lock()
				dst.want = dst.buf.Len() + 3*(cs+stream.TagSize) // the header is there already
				dst.mu.Unlock()
				pr, pw := io.Pipe()
				done := make(chan error, 1)
				if readFrom {
					go func() {
						_, err := w.ReadFrom(pr)
						done <- err
					}()
					if _, err := pw.Write(pt); err != nil {
						t.Fatal(err)
					}
				} else if _, err := w.Write(pt); err != nil {
					t.Fatal(err)
				}
				select {
				case <-dst.got:
				case <-time.After(deadlockGuard):
					t.Fatal("the three sealed chunks never reached dst")
				}
				if readFrom {
					pw.Close()
					if err := <-done; err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				got, err := decrypt(t, key, dst.buf.Bytes())
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("round trip: %v", err)
				}
			})
		}
	}
}

// TestFirstErrorWins: when the destination fails at chunk k, later chunks
// (sealed by other workers meanwhile) are not written, and the error
// returned is the destination's, whatever the worker count.
func TestFirstErrorWins(t *testing.T) {
	key := testKey(t, "firsterr")
	pt := randBytes(64*cs, 65)
	for _, conc := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("conc=%d", conc), func(t *testing.T) {
			defer goleak.VerifyNone(t)
			var hdrLen int
			probe, err := stream.NewWriter(io.Discard, key, testParams, stream.WithChunkSize(cs))
			if err != nil {
				t.Fatal(err)
			}
			hdrLen = int(probe.Header().Len())
			probe.Close()
			limit := hdrLen + 10*(cs+stream.TagSize) + 5 // fails inside chunk 10
			dst := &failWriter{limit: limit}
			hook, _ := stream.ChunkHookForTest(func(idx uint64) {
				if idx == 40 {
					panic("later failure")
				}
			})
			w, err := stream.NewWriter(dst, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc), hook)
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(pt)
			cerr := w.Close()
			if !errors.Is(cerr, errSink) || (werr != nil && !errors.Is(werr, errSink)) {
				t.Fatalf("Write %v, Close %v; want the sink's error (chunk 10) before the panic (chunk 40)", werr, cerr)
			}
			if dst.buf.Len() != limit {
				t.Fatalf("%d bytes written, want exactly the %d the sink accepted", dst.buf.Len(), limit)
			}
		})
	}
}

// panicWriter panics on its first Write after the header.
type panicWriter struct{ n int }

func (w *panicWriter) Write(p []byte) (int, error) {
	w.n++
	if w.n > 1 {
		panic("destination exploded")
	}
	return len(p), nil
}

// TestDestinationPanicBecomesError: dst's Write runs on a worker
// goroutine, where the caller could not recover a panic; it becomes the
// stream's sticky error instead of crashing the program.
func TestDestinationPanicBecomesError(t *testing.T) {
	defer goleak.VerifyNone(t)
	key := testKey(t, "dstpanic")
	for _, conc := range []int{1, 2} {
		w, err := stream.NewWriter(&panicWriter{}, key, testParams, stream.WithChunkSize(cs), stream.WithWriterConcurrency(conc))
		if err != nil {
			t.Fatal(err)
		}
		w.Write(randBytes(8*cs, 66))
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "destination exploded") {
			t.Fatalf("conc=%d: Close = %v, want the panic as an error", conc, err)
		}
		if _, err := w.Write([]byte("x")); err == nil {
			t.Fatalf("conc=%d: the error is not sticky", conc)
		}
	}
}
