// Package jsonlgen writes the benchmark suite's JSON Lines inputs: event
// records of about 200 bytes, drawn from a fixed seed so that every run
// (and every machine) encrypts the same bytes.
package jsonlgen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
)

var events = []string{"login", "logout", "purchase", "refund", "view", "search", "signup", "password_reset"}

const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "

// Line appends record i of the stream drawn from rng to b, without the
// line ending: one JSON object of about 200 bytes (tenant, user, event,
// amount, card number, free text).
func Line(b []byte, rng *rand.Rand, i int) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = fmt.Appendf(b, `,"tenant":"tenant-%02d","user":"user-%06d","event":%q,"ts":"2026-%02d-%02dT%02d:%02d:%02dZ"`,
		rng.IntN(16), rng.IntN(1_000_000), events[rng.IntN(len(events))],
		1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(24), rng.IntN(60), rng.IntN(60))
	b = fmt.Appendf(b, `,"amount":%d.%02d,"card":"4%015d","note":"`, rng.IntN(10000), rng.IntN(100), rng.Int64N(1e15))
	for range 40 + rng.IntN(40) {
		b = append(b, letters[rng.IntN(len(letters))])
	}
	return append(b, `"}`...)
}

// Write writes n lines (each ending in '\n') drawn from seed to w and
// returns the number of bytes written. The same n and seed give the same
// bytes.
func Write(w io.Writer, n int, seed uint64) (int64, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var total int64
	var b []byte
	for i := range n {
		b = append(Line(b[:0], rng, i), '\n')
		k, err := bw.Write(b)
		total += int64(k)
		if err != nil {
			return total, err
		}
	}
	return total, bw.Flush()
}
