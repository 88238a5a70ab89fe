package main

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	encpipe "github.com/enc-pipe/enc-pipe"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/stream"
)

// streamFailure returns the error of decrypting ct with key, through
// package stream as encpipe does: the header, then the chunks.
func streamFailure(t *testing.T, key securebuf.Secret, ct []byte) error {
	t.Helper()
	src := bytes.NewReader(ct)
	hdr, err := stream.ReadHeader(src)
	if err != nil {
		return err
	}
	r, err := stream.NewReader(src, hdr, key)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	if err == nil {
		t.Fatal("the stream decrypted")
	}
	return err
}

// TestClassifyLibraryErrors: each failure the libraries report, produced
// by the libraries themselves, gets the exit code docs/CLI.md gives its
// kind and a message that names it, whatever else it wraps. The outermost
// classified error decides: a key error wrapping an integrity sentinel is
// a key problem; an I/O error is one wherever it comes from.
func TestClassifyLibraryErrors(t *testing.T) {
	sf, err := securebuf.NewFactory()
	if err != nil {
		t.Fatal(err)
	}
	kb := sha256.Sum256([]byte("classify"))
	key, err := sf.New(bytes.Clone(kb[:]))
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()
	var buf bytes.Buffer
	w, err := stream.NewWriter(&buf, key, stream.HeaderParams{KeyRecord: []byte("{}"), Partition: "p"}, stream.WithChunkSize(stream.MinChunkSize))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(make([]byte, 3*stream.MinChunkSize))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ct := buf.Bytes()
	hl := int(w.Header().Len())
	flipped := func(i int) []byte {
		b := bytes.Clone(ct)
		b[i] ^= 1
		return b
	}
	_, badOption := stream.NewWriter(io.Discard, key, stream.HeaderParams{KeyRecord: []byte("{}"), Partition: "p"}, stream.WithChunkSize(3))
	keyErr := &envelope.KeyError{Op: "load", Kind: envelope.IntermediateKey, ID: "_IK_p_svc_prod", Err: envelope.ErrNotFound}

	for _, c := range []struct {
		name string
		err  error
		code int
		msg  string // in the message
	}{
		{"not a stream", streamFailure(t, key, []byte("plain text, not a stream")), exitIntegrity, "input is not an enc-pipe stream"},
		{"newer version", streamFailure(t, key, append([]byte{ct[0], ct[1], ct[2], ct[3], stream.Version + 1}, ct[5:]...)), exitIntegrity, "cannot read: unsupported version"},
		// log2(chunk size) one above the largest
		{"malformed header", streamFailure(t, key, append([]byte{ct[0], ct[1], ct[2], ct[3], ct[4], ct[5], byte(bits.Len(stream.MaxChunkSize))}, ct[7:]...)), exitIntegrity, "not a valid enc-pipe stream: invalid header: chunk size"},
		{"modified header", streamFailure(t, key, flipped(20)), exitIntegrity, "input failed authentication"},
		{"modified chunk", streamFailure(t, key, flipped(hl+3)), exitIntegrity, "input failed authentication"},
		{"data appended", streamFailure(t, key, append(bytes.Clone(ct), 0)), exitIntegrity, "(appended or concatenated)"},
		{"cut inside a chunk", streamFailure(t, key, ct[:len(ct)-100]), exitIntegrity, "truncated or modified"},
		{"cut at a chunk boundary", streamFailure(t, key, ct[:len(ct)-stream.MinChunkSize-stream.TagSize]), exitIntegrity, "input is truncated"},
		{"empty input", streamFailure(t, key, nil), exitIntegrity, "input is truncated"},
		{"bad option", badOption, exitUsage, "chunk size 3"},
		{"key not found", fmt.Errorf("%w: partition %q: %w", encpipe.ErrKeyUnavailable, "p", keyErr), exitKey, "key not found in the metastore"},
		{"stored key does not unwrap", fmt.Errorf("%w: partition %q: %w", encpipe.ErrKeyUnavailable, "p",
			&envelope.KeyError{Op: "unwrap", Kind: envelope.SystemKey, ID: "_SK_svc_prod", Err: envelope.ErrDecrypt}), exitKey, "cannot load the stream's key, a stored key does not unwrap"},
		{"partition not allowed", fmt.Errorf("%w: %q", encpipe.ErrPartitionNotAllowed, "p"), exitKey, "another partition"},
		{"key error with an integrity cause", &envelope.KeyError{Op: "load", Kind: envelope.IntermediateKey, ID: "x", Err: envelope.ErrInvalidRecord}, exitKey, ""},
		{"input error", &inputError{syscall.EIO}, exitIO, ""},
		{"input error inside a truncation", fmt.Errorf("%w: %w", &inputError{syscall.EIO}, stream.ErrTruncated), exitIO, ""},
		{"output error", &outputError{syscall.ENOSPC}, exitIO, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := exitCode(c.err); got != c.code {
				t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.code)
			}
			ce := classifyStreamErr(c.err, "cannot decrypt")
			if got := exitCode(ce); got != c.code {
				t.Errorf("classifyStreamErr(%v) exits %d, want %d", c.err, got, c.code)
			}
			if !strings.Contains(ce.Error(), c.msg) {
				t.Errorf("message %q does not contain %q", ce.Error(), c.msg)
			}
		})
	}
	reset := &outputError{&net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}}
	if code := exitCode(classifyStreamErr(reset, "x")); code != exitIO {
		t.Errorf("a connection closed by a server (EPIPE in a *net.OpError): exit %d, want %d", code, exitIO)
	}
	if err := classifyStreamErr(&outputError{syscall.EPIPE}, "x"); !errors.Is(err, errQuietEnd) {
		t.Errorf("a closed stdout: %v, want the quiet end", err)
	}
}
