// Command recbench times envelope Encrypt and Decrypt of single records
// over a sweep of record sizes, in each secure-memory mode of the key
// caches, next to the standard library's AES-256-GCM Seal of the same
// size. It prints Go benchmark format (golang.org/x/perf/benchfmt), one
// line per cell and round, so benchstat reads it as is.
//
//	recbench [-sizes 64,1024,...] [-modes mprotect,pkey] [-rounds 1] [-time 100ms] [-first 0]
//
// Cells are interleaved: every round runs every cell once, for about -time
// each, starting one cell later than the round before (-first is the index
// of the first round, so that a driver calling recbench once per round
// still rotates). A mode that cannot run here (pkey without CPU protection
// keys) is reported as a "mode-NAME: not available: WHY" configuration line
// and not timed. Benchmark use only.
package main

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/enc-pipe/enc-pipe/bench/internal/eplib"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "recbench:", err)
		os.Exit(1)
	}
}

type cell struct {
	name string // benchmark name
	size int
	op   func() error
}

func run() error {
	sizesFlag := flag.String("sizes", "64,256,1024,4096,16384,65536,262144,1048576", "record sizes in bytes, comma-separated")
	modesFlag := flag.String("modes", eplib.ModeMprotect+","+eplib.ModePKey, "secure-memory modes, comma-separated")
	rounds := flag.Int("rounds", 1, "rounds; each runs every cell once")
	first := flag.Int("first", 0, "index of the first round (rotates the cell order)")
	d := flag.Duration("time", 100*time.Millisecond, "target time per cell and round")
	flag.Parse()

	sizes, err := parseSizes(*sizesFlag)
	if err != nil {
		return err
	}
	ctx := context.Background()
	fmt.Printf("goos: %s\ngoarch: %s\npkg: github.com/enc-pipe/enc-pipe/bench/cmd/recbench\n", runtime.GOOS, runtime.GOARCH)

	var cells []cell
	for _, n := range sizes {
		c, err := gcmCells(n)
		if err != nil {
			return err
		}
		cells = append(cells, c...)
	}
	for _, mode := range strings.Split(*modesFlag, ",") {
		if mode == eplib.ModePKey {
			if err := eplib.PKeyAvailable(); err != nil {
				fmt.Printf("mode-%s: not available: %s\n", mode, oneLine(err))
				continue
			}
		}
		recs, err := eplib.NewRecords(ctx, mode)
		if err != nil {
			return fmt.Errorf("mode %s: %w", mode, err)
		}
		defer recs.Close()
		for _, n := range sizes {
			c, err := recordCells(ctx, recs, mode, n)
			if err != nil {
				return err
			}
			cells = append(cells, c...)
		}
	}

	for r := *first; r < *first+*rounds; r++ {
		for i := range cells {
			c := cells[(i+r)%len(cells)]
			n, el, err := measure(*d, c.op)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			ns := float64(el.Nanoseconds()) / float64(n)
			fmt.Printf("%s\t%d\t%.1f ns/op\t%.2f MB/s\n", c.name, n, ns, float64(c.size)*1e3/ns)
		}
	}
	return nil
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// gcmCells are the baselines: AES-256-GCM with the cipher set up once,
// sealing into a reused buffer (the ceiling) and into a new one per call
// (what Encrypt must do, as it returns a new record).
func gcmCells(n int) ([]cell, error) {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	data := make([]byte, n)
	rand.Read(data)
	nonce := make([]byte, aead.NonceSize())
	buf := make([]byte, 0, n+aead.Overhead())
	var sink []byte
	return []cell{
		{"BenchmarkRecords/op=gcm-reuse/mode=none/size=" + sizeName(n), n, func() error {
			buf = aead.Seal(buf[:0], nonce, data, nil)
			return nil
		}},
		{"BenchmarkRecords/op=gcm-alloc/mode=none/size=" + sizeName(n), n, func() error {
			sink = aead.Seal(nil, nonce, data, nil)
			_ = sink
			return nil
		}},
	}, nil
}

// recordCells are a warm Encrypt and a warm Decrypt of one n-byte record.
// The record is checked to round-trip before anything is timed.
func recordCells(ctx context.Context, recs *eplib.Records, mode string, n int) ([]cell, error) {
	data := make([]byte, n)
	rand.Read(data)
	rec, err := recs.Encrypt(ctx, data)
	if err != nil {
		return nil, err
	}
	got, err := recs.Decrypt(ctx, rec)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(got, data) {
		return nil, errors.New("a record did not round-trip")
	}
	suffix := "/mode=" + mode + "/size=" + sizeName(n)
	return []cell{
		{"BenchmarkRecords/op=encrypt" + suffix, n, func() error {
			_, err := recs.Encrypt(ctx, data)
			return err
		}},
		{"BenchmarkRecords/op=decrypt" + suffix, n, func() error {
			_, err := recs.Decrypt(ctx, rec)
			return err
		}},
	}, nil
}

// measure runs op in batches of growing size, as testing.B does, until one
// batch takes at least d, and returns that batch's count and time.
func measure(d time.Duration, op func() error) (int, time.Duration, error) {
	n := 1
	for {
		start := time.Now()
		for range n {
			if err := op(); err != nil {
				return 0, 0, err
			}
		}
		el := time.Since(start)
		if el >= d || n >= 1e9 {
			return n, el, nil
		}
		next := 100 * n
		if el > 0 {
			next = int(float64(n) * 1.2 * float64(d) / float64(el))
		}
		n = min(max(next, n+1), 100*n)
	}
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("-sizes: %q is not a positive byte count", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
