package sinks

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// recorder is an io.Writer that keeps what it is given and counts the
// calls. failAt > 0 makes call number failAt (and every later one) fail
// with errWrite; gate, when set, is received from before each call.
type recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	calls  int
	failAt int
	gate   chan struct{}
}

var errWrite = errors.New("test: write failed")

func (r *recorder) Write(p []byte) (int, error) {
	if r.gate != nil {
		<-r.gate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failAt > 0 && r.calls >= r.failAt {
		return 0, errWrite
	}
	return r.buf.Write(p)
}

func (r *recorder) snapshot() (calls int, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, bytes.Clone(r.buf.Bytes())
}

// randomWrites writes total pseudo-random bytes to w in pieces of random
// sizes up to maxPiece, and returns them.
func randomWrites(t *testing.T, w io.Writer, total, maxPiece int, seed uint64) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, total)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for p := data; len(p) > 0; {
		n := min(len(p), 1+rng.IntN(maxPiece))
		if m, err := w.Write(p[:n]); err != nil || m != n {
			t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
		p = p[n:]
	}
	return data
}

// Whatever the buffer count and however writes straddle the buffers, the
// bytes reach the writer whole and in order, and no more than the given
// number of buffers is ever allocated.
func TestWriteBehindKeepsOrderAndBound(t *testing.T) {
	for _, buffers := range []int{1, 2, 3, 4} {
		for _, size := range []int{1, 7, 4096} {
			r := &recorder{}
			b := newWriteBehind(r, size, buffers)
			want := randomWrites(t, b, 50*size+3, 3*size, uint64(buffers*size))
			if err := b.finish(); err != nil {
				t.Fatal(err)
			}
			if _, got := r.snapshot(); !bytes.Equal(got, want) {
				t.Errorf("%d buffers of %d: the writer got %d bytes, not the %d written in order", buffers, size, len(got), len(want))
			}
			if b.made > buffers {
				t.Errorf("%d buffers of %d: %d buffers allocated", buffers, size, b.made)
			}
			if buffers == 1 && b.done != nil {
				t.Errorf("one buffer: a goroutine was started")
			}
		}
	}
}

// What fits in one buffer is written by finish, in the caller's goroutine:
// no goroutine is started for a small file.
func TestWriteBehindSmallOutputStartsNoGoroutine(t *testing.T) {
	r := &recorder{}
	b := newWriteBehind(r, 1024, 4)
	if _, err := b.Write(make([]byte, 1023)); err != nil {
		t.Fatal(err)
	}
	if b.done != nil {
		t.Fatal("a goroutine was started for less than one buffer")
	}
	if calls, _ := r.snapshot(); calls != 0 {
		t.Fatalf("%d writes before finish", calls)
	}
	if err := b.finish(); err != nil {
		t.Fatal(err)
	}
	if calls, data := r.snapshot(); calls != 1 || len(data) != 1023 {
		t.Fatalf("finish made %d writes of %d bytes in all, want 1 of 1023", calls, len(data))
	}
}

// A background write that fails is reported by the Write that next needs a
// buffer back (at the latest once every buffer has been handed over) and
// by finish; nothing is written after it.
func TestWriteBehindErrorIsSticky(t *testing.T) {
	const size, buffers = 16, 3
	r := &recorder{failAt: 2}
	b := newWriteBehind(r, size, buffers)
	// buffers+2 full buffers: the last ones can only be filled once the
	// goroutine has returned the second buffer, which it failed to write.
	n, err := b.Write(make([]byte, (buffers+2)*size))
	if !errors.Is(err, errWrite) {
		t.Fatalf("Write = %d, %v; want the error of the failed background write", n, err)
	}
	if n >= (buffers+2)*size {
		t.Errorf("Write reported all %d bytes taken along with the error", n)
	}
	if _, err := b.Write([]byte{1}); !errors.Is(err, errWrite) {
		t.Errorf("the next Write returned %v, want the same error", err)
	}
	if err := b.finish(); !errors.Is(err, errWrite) {
		t.Errorf("finish = %v, want the same error", err)
	}
	if calls, data := r.snapshot(); calls != 2 || len(data) != size {
		t.Errorf("the writer got %d calls and %d bytes; want 2 calls (the second failing) and one buffer", calls, len(data))
	}
}

// abort waits for the write in progress and writes none of the buffers
// queued behind it.
func TestWriteBehindAbortWritesNothingMore(t *testing.T) {
	const size, buffers = 16, 4
	r := &recorder{gate: make(chan struct{})}
	b := newWriteBehind(r, size, buffers)
	// Three full buffers: the goroutine takes the first and blocks in
	// Write on the gate; two stay queued.
	if _, err := b.Write(make([]byte, 3*size)); err != nil {
		t.Fatal(err)
	}
	aborted := make(chan struct{})
	go func() {
		b.abort()
		close(aborted)
	}()
	for !b.stop.Load() {
		runtime.Gosched()
	}
	close(r.gate) // let the write in progress return
	<-aborted
	if calls, _ := r.snapshot(); calls > 1 {
		t.Errorf("%d writes; want at most the one in progress when abort was called", calls)
	}
}

// withWriter makes s's write-behind write to w instead of the temporary
// file.
func withWriter(t *testing.T, s *File, w io.Writer) {
	t.Helper()
	if s.wb == nil {
		t.Fatal("the File has no write buffer")
	}
	s.wb.w = w
}

// A File whose background write fails returns the error from a later
// Write and from Close, which leaves neither the destination nor a
// temporary file.
func TestFileBackgroundWriteErrorFailsClose(t *testing.T) {
	for _, named := range []bool{false, true} {
		if named {
			ForceNamedTemp(t)
		}
		dir := t.TempDir()
		dst := filepath.Join(dir, "out")
		const size = 4096
		s, err := CreateFile(dst, WithBuffer(size), WithWriteBehind(2))
		if err != nil {
			t.Fatal(err)
		}
		withWriter(t, s, &recorder{failAt: 1})
		if _, err := s.Write(make([]byte, 4*size)); !errors.Is(err, errWrite) {
			t.Errorf("named %v: Write = %v, want the background write's error", named, err)
		}
		if err := s.Close(); !errors.Is(err, errWrite) {
			t.Errorf("named %v: Close = %v, want the background write's error", named, err)
		}
		if _, err := os.Lstat(dst); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("named %v: the destination exists after a failed write: %v", named, err)
		}
		ents, _ := os.ReadDir(dir)
		if len(ents) != 0 {
			t.Errorf("named %v: files left behind: %v", named, ents)
		}
	}
}
