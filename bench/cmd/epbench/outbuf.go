package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
)

// Output buffering of epbench, to measure what the CLI's file sink costs
// and what would fix it (docs/PERFORMANCE.md, the file → file overlap):
//
//   - none: every sealed chunk is one write(2) on the goroutine that
//     sealed it (the library's own behaviour with a plain *os.File);
//   - bufio: a 1 MiB bufio.Writer, as sinks.File has: the sealing
//     goroutine copies each chunk into the buffer and makes the 1 MiB
//     write(2) itself;
//   - writebehind: the same 1 MiB buffers, but full ones go to a
//     goroutine that only writes, so sealing never waits for write(2).
type outWriter interface {
	io.Writer
	Close() error
}

func newOutWriter(f *os.File, mode string) (outWriter, error) {
	switch mode {
	case "none":
		return f, nil
	case "bufio":
		return &bufferedFile{f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
	case "writebehind":
		return newWriteBehind(f, 1<<20, 4), nil
	}
	return nil, fmt.Errorf("-outbuf %q: want none, bufio or writebehind", mode)
}

type bufferedFile struct {
	f  *os.File
	bw *bufio.Writer
}

func (b *bufferedFile) Write(p []byte) (int, error) { return b.bw.Write(p) }

func (b *bufferedFile) Close() error {
	err := b.bw.Flush()
	if cerr := b.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeBehind fills size-byte buffers and hands full ones to a goroutine
// that writes them to f in order; at most n buffers exist. The first write
// error is returned by the next Write or by Close.
type writeBehind struct {
	f    *os.File
	cur  []byte
	full chan []byte
	free chan []byte
	done chan error
	err  error
}

func newWriteBehind(f *os.File, size, n int) *writeBehind {
	w := &writeBehind{f: f, full: make(chan []byte, n), free: make(chan []byte, n), done: make(chan error, 1)}
	for range n - 1 {
		w.free <- make([]byte, 0, size)
	}
	w.cur = make([]byte, 0, size)
	go func() {
		var err error
		for b := range w.full {
			if err == nil {
				_, err = f.Write(b)
			}
			w.free <- b[:0]
		}
		w.done <- err
	}()
	return w
}

func (w *writeBehind) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		k := copy(w.cur[len(w.cur):cap(w.cur)], p)
		w.cur = w.cur[:len(w.cur)+k]
		p, n = p[k:], n+k
		if len(w.cur) == cap(w.cur) {
			w.full <- w.cur
			w.cur = <-w.free
		}
	}
	return n, nil
}

func (w *writeBehind) Close() error {
	if len(w.cur) > 0 {
		w.full <- w.cur
	}
	close(w.full)
	err := <-w.done
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}
