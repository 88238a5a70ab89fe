// Command tinkbench encrypts or decrypts a file with tink-go's streaming
// AEAD (AES256_GCM_HKDF_1MB), io.CopyBuffer with a 1 MiB buffer, for
// bench/run.sh. The keyset is kept in a cleartext file: benchmark use only.
//
//	tinkbench -mode keygen -keyset FILE
//	tinkbench -mode enc -keyset FILE -in SRC -out DST
//	tinkbench -mode dec -keyset FILE -in SRC -out DST
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/streamingaead"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "tinkbench:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "enc", "keygen, enc or dec")
	ksPath := flag.String("keyset", "", "cleartext keyset file")
	in := flag.String("in", "-", "input file")
	out := flag.String("out", "-", "output file")
	flag.Parse()

	if *mode == "keygen" {
		h, err := keyset.NewHandle(streamingaead.AES256GCMHKDF1MBKeyTemplate())
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := insecurecleartextkeyset.Write(h, keyset.NewBinaryWriter(&buf)); err != nil {
			return err
		}
		return os.WriteFile(*ksPath, buf.Bytes(), 0o600)
	}
	b, err := os.ReadFile(*ksPath)
	if err != nil {
		return err
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewBinaryReader(bytes.NewReader(b)))
	if err != nil {
		return err
	}
	a, err := streamingaead.New(h)
	if err != nil {
		return err
	}
	src := os.Stdin
	if *in != "-" {
		if src, err = os.Open(*in); err != nil {
			return err
		}
	}
	dst := os.Stdout
	if *out != "-" {
		if dst, err = os.Create(*out); err != nil {
			return err
		}
	}
	buf := make([]byte, 1<<20)
	aad := []byte("bench")
	switch *mode {
	case "enc":
		w, err := a.NewEncryptingWriter(dst, aad)
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(w, onlyReader{src}, buf); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	case "dec":
		r, err := a.NewDecryptingReader(src, aad)
		if err != nil {
			return err
		}
		if _, err := io.CopyBuffer(dst, onlyReader{r}, buf); err != nil {
			return err
		}
	default:
		return errors.New("-mode must be keygen, enc or dec")
	}
	return dst.Close()
}

// onlyReader hides WriterTo so that io.CopyBuffer uses the 1 MiB buffer.
type onlyReader struct{ io.Reader }
