package sinks

import (
	"io"
	"sync"
	"sync/atomic"
)

// writeBehind is the write buffer of a File. Write copies into the current
// buffer; a full buffer goes to a goroutine that writes it to the file
// while the caller fills the next one, so the caller (the goroutine that
// seals or opens the chunks of a stream) does not wait for write(2), which
// on tmpfs or a page cache spends most of its time allocating pages.
//
// Memory: at most max buffers of size bytes, allocated as needed (a file
// smaller than one buffer uses one). With max = 1 there is no goroutine:
// Write writes each full buffer itself, as a bufio.Writer does.
//
// The goroutine is started by the first full buffer, so a file smaller
// than one buffer never starts it; finish and abort stop it and wait for
// it. The first write error is kept: the Write or finish that follows it
// returns it, and nothing more is written. writeBehind is not safe for
// concurrent use (File serialises its calls); the goroutine shares only
// the channels and err with it.
type writeBehind struct {
	w    io.Writer
	size int
	max  int // buffers at most
	made int // buffers allocated

	cur    []byte        // being filled; nil when none is held
	full   chan []byte   // to the goroutine, in order; never blocks (capacity max)
	free   chan []byte   // back from it, emptied; capacity max
	done   chan struct{} // closed by the goroutine as it exits; nil until it starts
	stop   atomic.Bool   // abort: the goroutine writes nothing more
	closed bool          // full is closed: finish or abort ran

	mu  sync.Mutex
	err error // the first write error
}

func newWriteBehind(w io.Writer, size, buffers int) *writeBehind {
	return &writeBehind{w: w, size: size, max: max(buffers, 1)}
}

// failed returns the first write error, if any.
func (b *writeBehind) failed() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *writeBehind) setErr(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.mu.Unlock()
}

// Write copies p into the buffers, handing each full one over. It returns
// the first write error, of this call or of an earlier buffer, with the
// number of bytes of p taken before it was seen.
func (b *writeBehind) Write(p []byte) (int, error) {
	n := 0
	for {
		if err := b.failed(); err != nil {
			return n, err
		}
		if len(p) == 0 {
			return n, nil
		}
		if b.cur == nil {
			b.cur = b.buffer() // may wait for the goroutine: check again
			continue
		}
		k := copy(b.cur[len(b.cur):cap(b.cur)], p)
		b.cur = b.cur[:len(b.cur)+k]
		p = p[k:]
		n += k
		if len(b.cur) == cap(b.cur) {
			b.send()
		}
	}
}

// buffer returns an empty buffer: a free one, a new one while fewer than
// max exist, or else the next one the goroutine is done with.
func (b *writeBehind) buffer() []byte {
	select {
	case buf := <-b.free:
		return buf
	default:
	}
	if b.made < b.max {
		b.made++
		return make([]byte, 0, b.size)
	}
	return <-b.free // every buffer handed over comes back
}

// send hands the full current buffer to the goroutine (starting it if
// need be), or writes it here when there is no write-behind (max = 1). An
// error is kept for the next Write or finish.
func (b *writeBehind) send() {
	buf := b.cur
	b.cur = nil
	if b.max == 1 {
		if err := writeFull(b.w, buf); err != nil {
			b.setErr(err)
		}
		b.cur = buf[:0]
		return
	}
	if b.done == nil {
		b.full = make(chan []byte, b.max)
		b.free = make(chan []byte, b.max)
		b.done = make(chan struct{})
		go b.run(b.full, b.free, b.done)
	}
	b.full <- buf
}

// run is the goroutine: it writes the buffers in the order they come and
// returns them emptied. After an error, or once stop is set, it only
// returns them.
// It shares nothing else with the caller's side but err and stop.
func (b *writeBehind) run(full <-chan []byte, free chan<- []byte, done chan<- struct{}) {
	defer close(done)
	for buf := range full {
		if !b.stop.Load() && b.failed() == nil {
			if err := writeFull(b.w, buf); err != nil {
				b.setErr(err)
			}
		}
		free <- buf[:0]
	}
}

// finish writes what is buffered, stops the goroutine once it has written
// everything, and returns the first write error. A buffer that is not full
// is written by the caller when no goroutine was started (the whole file
// fits in one buffer).
func (b *writeBehind) finish() error {
	if len(b.cur) > 0 && b.failed() == nil {
		if b.done == nil {
			if err := writeFull(b.w, b.cur); err != nil {
				b.setErr(err)
			}
			b.cur = b.cur[:0]
		} else {
			b.full <- b.cur
			b.cur = nil
		}
	}
	b.wait()
	return b.failed()
}

// abort stops the goroutine without writing the buffers it has not
// started on; it waits for a write(2) in progress to return.
func (b *writeBehind) abort() {
	b.stop.Store(true)
	b.wait()
}

func (b *writeBehind) wait() {
	if b.done != nil && !b.closed {
		b.closed = true
		close(b.full)
		<-b.done
	}
}

// writeFull writes p to w, turning a short write into io.ErrShortWrite.
func writeFull(w io.Writer, p []byte) error {
	n, err := w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}
