package main

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/stream"
)

// startEncrypt starts "enc-pipe encrypt" reading a pipe that the caller
// keeps open, and returns its stdin and stdout.
func startEncrypt(t *testing.T, home string, args ...string) (io.WriteCloser, io.ReadCloser, func() error) {
	cmd := command(t, home, append([]string{"encrypt"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdin, stdout, cmd.Wait
}

// Encryption streams: once one chunk and one more byte have arrived on a
// pipe that stays open, the header and that chunk's ciphertext come out,
// without waiting for more input (time to first byte is one chunk plus one
// key unwrap, not the whole input).
func TestEncryptStreamsChunkByChunk(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	mustRun(t, command(t, home, "init"))
	for _, workers := range []string{"1", "2"} {
		stdin, stdout, wait := startEncrypt(t, home, "--chunk-size", "4KiB", "--workers", workers)
		if _, err := stdin.Write(pseudoRandom(4096 + 1)); err != nil {
			t.Fatal(err)
		}
		// The header is at least 100 bytes; the first sealed chunk 4112.
		got := make([]byte, 100+4112)
		if _, err := io.ReadFull(stdout, got); err != nil {
			t.Fatalf("workers=%s: %v", workers, err)
		}
		stdin.Close()
		rest, _ := io.ReadAll(stdout)
		if err := wait(); err != nil {
			t.Fatal(err)
		}
		// And the whole stream decrypts to what was written.
		dec := command(t, home, "decrypt")
		dec.Stdin = bytes.NewReader(append(got, rest...))
		pt, err := dec.Output()
		if err != nil || !bytes.Equal(pt, pseudoRandom(4097)) {
			t.Fatalf("workers=%s: round trip failed: %v", workers, err)
		}
	}
}

// BenchmarkFirstOutputByte measures, for "encrypt" from a pipe to a pipe,
// the time from starting the process and writing one 64 KiB chunk (plus one
// byte) to the first byte of ciphertext on stdout. BenchmarkEmptyRun is the
// same process with an empty input (start-up, metastore, key unwrap, header)
// for comparison, in the same run.
func BenchmarkFirstOutputByte(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	mustRunB(b, home, "init")
	mustRunB(b, home, "encrypt", "-i", "/dev/null", "-o", "/dev/null") // create the keys
	chunk := pseudoRandom(64<<10 + 1)
	b.ResetTimer()
	for b.Loop() {
		cmd := command(nil, home, "encrypt")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stdin.Write(chunk)
		one := make([]byte, 1)
		if _, err := io.ReadFull(stdout, one); err != nil {
			b.Fatal(err)
		}
		b.StopTimer() // ns/op is the time from start to the first byte
		stdin.Close()
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		b.StartTimer()
	}
}

func BenchmarkEmptyRun(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	mustRunB(b, home, "init")
	mustRunB(b, home, "encrypt", "-i", "/dev/null", "-o", "/dev/null")
	for b.Loop() {
		mustRunB(b, home, "encrypt", "-i", "/dev/null", "-o", "/dev/null")
	}
}

func mustRunB(b *testing.B, home string, args ...string) {
	b.Helper()
	cmd := command(nil, home, args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// BenchmarkColdKeyUnwrap is the key work before the first output byte, in
// process: open the SQLite metastore and the static master key, load and
// unwrap the system and intermediate keys (cold caches), make and wrap a
// data key and write the stream header.
func BenchmarkColdKeyUnwrap(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	mustRunB(b, home, "encrypt", "-i", "/dev/null", "-o", "/dev/null")
	a := &app{stderr: io.Discard, getenv: func(k string) string {
		if k == "ENC_PIPE_HOME" {
			return home
		}
		return ""
	}}
	a.g = globalFlags{service: defaultService, product: defaultProduct, partition: defaultPartition}
	ctx := b.Context()
	for b.Loop() {
		be, err := a.openBackend(ctx, false)
		if err != nil {
			b.Fatal(err)
		}
		sess, err := be.factory.GetSession(defaultPartition)
		if err != nil {
			b.Fatal(err)
		}
		w, err := encpipe.NewWriter(ctx, io.Discard, sess)
		if err != nil {
			b.Fatal(err)
		}
		w.Close()
		sess.Close()
		be.Close()
	}
}

// BenchmarkSealOneChunk is the chunk work before the first output byte:
// one 64 KiB chunk through a stream writer with warm keys.
func BenchmarkSealOneChunk(b *testing.B) {
	home := filepath.Join(b.TempDir(), "home")
	mustRunB(b, home, "encrypt", "-i", "/dev/null", "-o", "/dev/null")
	a := &app{stderr: io.Discard, getenv: func(k string) string {
		if k == "ENC_PIPE_HOME" {
			return home
		}
		return ""
	}}
	a.g = globalFlags{service: defaultService, product: defaultProduct, partition: defaultPartition}
	ctx := b.Context()
	be, err := a.openBackend(ctx, false)
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	sess, err := be.factory.GetSession(defaultPartition)
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close()
	chunk := pseudoRandom(64 << 10)
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		w, err := encpipe.NewWriter(ctx, io.Discard, sess, stream.WithWriterConcurrency(1))
		if err != nil {
			b.Fatal(err)
		}
		w.Write(chunk)
		w.Close()
	}
}
