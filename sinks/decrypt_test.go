package sinks_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/enc-pipe/enc-pipe/securebuf"
	"github.com/enc-pipe/enc-pipe/sinks"
	"github.com/enc-pipe/enc-pipe/stream"
)

// Decrypting a stream with a modified chunk into a File: while the
// write-behind goroutine runs behind the decryption, the temporary file
// only ever holds a prefix of the plaintext of the chunks before the
// modified one (what the stream authenticated and handed over), and
// CloseWithError leaves no file at all.
func TestDecryptFailureLeavesOnlyAuthenticatedPrefix(t *testing.T) {
	sinks.ForceNamedTemp(t) // a named temporary, so the test can read it
	f, err := securebuf.NewFactory()
	if err != nil {
		t.Fatal(err)
	}
	rawKey := make([]byte, stream.KeySize)
	rand.Read(rawKey)
	key, err := f.New(rawKey)
	if err != nil {
		t.Fatal(err)
	}
	defer key.Close()

	const chunk, chunks, bad = stream.MinChunkSize, 64, 40
	plain := make([]byte, chunks*chunk-100)
	rand.Read(plain)
	var enc bytes.Buffer
	w, err := stream.NewWriter(&enc, key, stream.HeaderParams{KeyRecord: []byte(`{"test":1}`), Partition: "p"}, stream.WithChunkSize(chunk))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ct := enc.Bytes()
	hdr, err := stream.ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	ct[hdr.Len()+int64(bad)*(chunk+stream.TagSize)+7] ^= 1

	dir := t.TempDir()
	// Buffers smaller than a chunk, so that many background writes run
	// while the stream is decrypted.
	s, err := sinks.CreateFile(filepath.Join(dir, "out"), sinks.WithBuffer(1000), sinks.WithWriteBehind(3))
	if err != nil {
		t.Fatal(err)
	}
	src := bytes.NewReader(ct)
	if _, err := stream.ReadHeader(src); err != nil {
		t.Fatal(err)
	}
	r, err := stream.NewReader(src, hdr, key, stream.WithReaderConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.WriteTo(s)
	if !errors.Is(err, stream.ErrAuth) {
		t.Fatalf("WriteTo = %v, want ErrAuth", err)
	}
	got, rerr := os.ReadFile(s.TempName())
	if rerr != nil {
		t.Fatal(rerr)
	}
	if authentic := plain[:bad*chunk]; !bytes.HasPrefix(authentic, got) {
		t.Errorf("the temporary holds %d bytes that are not a prefix of the %d authenticated bytes", len(got), len(authentic))
	}
	if err := s.CloseWithError(err); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, dir); len(names) != 0 {
		t.Errorf("files left after CloseWithError: %v", names)
	}
}
