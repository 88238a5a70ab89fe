// Command linefwd is the JSON Lines scenario's baseline: a plain forwarder
// that reads lines from a file (or standard input) and writes each one,
// unchanged, to standard output, as a record pipeline without encryption
// would. It reads lines up to 64 MiB, as `enc-pipe records` does, and
// prints the number of lines to standard error with -count.
//
//	linefwd [-in FILE] [-count]
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
)

// maxLine is records.DefaultMaxLineSize: the longest line enc-pipe reads.
const maxLine = 64 << 20

func main() {
	in := flag.String("in", "", "input file (default: standard input)")
	count := flag.Bool("count", false, "print the number of lines to standard error")
	flag.Parse()
	var r io.Reader = os.Stdin
	if *in != "" {
		f, err := os.Open(*in)
		if err != nil {
			fmt.Fprintln(os.Stderr, "linefwd:", err)
			os.Exit(1)
		}
		defer f.Close()
		r = f
	}
	n, err := forward(os.Stdout, r)
	if err != nil {
		fmt.Fprintln(os.Stderr, "linefwd:", err)
		os.Exit(1)
	}
	if *count {
		fmt.Fprintln(os.Stderr, n)
	}
}

// forward copies r to w line by line, each line (its '\n' included, added
// if the last line lacks it) as one record, through 1 MiB buffers, and
// returns the number of lines.
func forward(w io.Writer, r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxLine+2)
	bw := bufio.NewWriterSize(w, 1<<20)
	var n int64
	for sc.Scan() {
		if _, err := bw.Write(sc.Bytes()); err != nil {
			return n, err
		}
		if err := bw.WriteByte('\n'); err != nil {
			return n, err
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	return n, bw.Flush()
}
