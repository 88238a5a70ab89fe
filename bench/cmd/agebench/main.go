// Command agebench encrypts or decrypts a file with filippo.io/age to an
// X25519 recipient, the way the age CLI does (io.Copy through age's
// writer/reader), for bench/run.sh. Benchmark use only.
//
//	agebench -mode keygen -identity FILE
//	agebench -mode enc -identity FILE -in SRC -out DST
//	agebench -mode dec -identity FILE -in SRC -out DST
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agebench:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "enc", "keygen, enc or dec")
	idPath := flag.String("identity", "", "identity file")
	in := flag.String("in", "-", "input file")
	out := flag.String("out", "-", "output file")
	flag.Parse()

	if *mode == "keygen" {
		id, err := age.GenerateX25519Identity()
		if err != nil {
			return err
		}
		return os.WriteFile(*idPath, []byte(id.String()+"\n"), 0o600)
	}
	b, err := os.ReadFile(*idPath)
	if err != nil {
		return err
	}
	id, err := age.ParseX25519Identity(strings.TrimSpace(string(b)))
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
	switch *mode {
	case "enc":
		w, err := age.Encrypt(dst, id.Recipient())
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, src); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
	case "dec":
		r, err := age.Decrypt(src, id)
		if err != nil {
			return err
		}
		if _, err := io.Copy(dst, r); err != nil {
			return err
		}
	default:
		return errors.New("-mode must be keygen, enc or dec")
	}
	return dst.Close()
}
