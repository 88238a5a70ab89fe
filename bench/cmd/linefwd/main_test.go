package main

import (
	"bytes"
	"testing"

	"github.com/enc-pipe/enc-pipe/bench/internal/jsonlgen"
)

func TestForwardWritesTheInputUnchangedAndCountsItsLines(t *testing.T) {
	const n = 3000
	var in bytes.Buffer
	if _, err := jsonlgen.Write(&in, n, 42); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	got, err := forward(&out, bytes.NewReader(in.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Errorf("forward counted %d lines, want %d", got, n)
	}
	if !bytes.Equal(out.Bytes(), in.Bytes()) {
		t.Error("forwarded output differs from the input")
	}
}

func TestForwardEndsALastLineWithoutNewline(t *testing.T) {
	var out bytes.Buffer
	n, err := forward(&out, bytes.NewReader([]byte("{\"a\":1}\n{\"b\":2}")))
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || out.String() != "{\"a\":1}\n{\"b\":2}\n" {
		t.Errorf("got %d lines %q", n, out.String())
	}
}
