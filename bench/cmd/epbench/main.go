// Command epbench encrypts or decrypts a file with package stream (through
// bench/internal/eplib), for the macro benchmarks of cmd/benchrun. It uses
// the library directly (no KMS, no metastore): the 32-byte data key is read
// from -key, a file of raw key bytes that benchrun creates on tmpfs and
// deletes. A file -out is a plain os.Create (no temporary, no fsync), so
// that it measures the library, not the CLI's atomic file sink. Benchmark
// use only.
//
//	epbench -mode enc -key K -in SRC -out DST [-workers N] [-chunk BYTES] [-compress none|zstd|s2] [-outbuf none|bufio|writebehind]
//	epbench -mode dec -key K -in SRC -out DST [-workers N]
//	epbench -mode gcm -size BYTES [-workers N] [-chunk BYTES]
//
// Mode gcm is the hardware baseline: it seals size bytes of 64 KiB chunks
// in memory with the standard library's AES-256-GCM on N goroutines, no I/O.
//
// "-" means stdin or stdout.
package main

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"

	"github.com/enc-pipe/enc-pipe/bench/internal/eplib"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "epbench:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "enc", "enc or dec")
	keyPath := flag.String("key", "", "file holding the 32-byte data key")
	in := flag.String("in", "-", "input file")
	out := flag.String("out", "-", "output file")
	workers := flag.Int("workers", 0, "worker goroutines (0 = GOMAXPROCS)")
	chunk := flag.Int("chunk", eplib.DefaultChunkSize, "plaintext chunk size")
	compress := flag.String("compress", "none", "none, zstd or s2")
	size := flag.Int64("size", 1<<30, "mode gcm: bytes to seal")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	outbuf := flag.String("outbuf", "none", "output buffering: none, bufio (1 MiB, as the CLI's file sink) or writebehind (1 MiB buffers written by another goroutine)")
	flag.Parse()

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	if *mode == "gcm" {
		n := *workers
		if n == 0 {
			n = runtime.GOMAXPROCS(0)
		}
		return gcm(*size, *chunk, n)
	}

	key, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	src, err := openIn(*in)
	if err != nil {
		return err
	}
	defer src.Close()
	f, err := openOut(*out)
	if err != nil {
		return err
	}
	dst, err := newOutWriter(f, *outbuf)
	if err != nil {
		f.Close()
		return err
	}
	switch *mode {
	case "enc":
		err = eplib.Encrypt(dst, src, key, eplib.StreamConfig{Workers: *workers, ChunkSize: *chunk, Compress: *compress})
	case "dec":
		err = eplib.Decrypt(dst, src, key, *workers)
	default:
		err = errors.New("-mode must be enc, dec or gcm")
	}
	if err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// gcm seals size bytes as chunks of chunk bytes on n goroutines.
func gcm(size int64, chunk, n int) error {
	block, err := aes.NewCipher(make([]byte, 32))
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return err
	}
	chunks := size / int64(chunk)
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, chunk+16)
			nonce := make([]byte, 12)
			aad := make([]byte, 32)
			for i := int64(g); i < chunks; i += int64(n) {
				binary.BigEndian.PutUint64(nonce[4:], uint64(i))
				aead.Seal(buf[:0], nonce, buf[:chunk], aad)
			}
		}()
	}
	wg.Wait()
	return nil
}

func openIn(p string) (*os.File, error) {
	if p == "-" {
		return os.Stdin, nil
	}
	return os.Open(p)
}

func openOut(p string) (*os.File, error) {
	if p == "-" {
		return os.Stdout, nil
	}
	return os.Create(p)
}
