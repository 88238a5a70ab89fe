package jsonlgen

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestWriteIsDeterministicPerSeedAndDiffersAcrossSeeds(t *testing.T) {
	var a, b, c bytes.Buffer
	na, err := Write(&a, 500, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&b, 500, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := Write(&c, 500, 8); err != nil {
		t.Fatal(err)
	}
	if na != int64(a.Len()) {
		t.Errorf("Write reported %d bytes, wrote %d", na, a.Len())
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two runs with seed 7 wrote different bytes")
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Error("seeds 7 and 8 wrote the same bytes")
	}
	// A longer run starts with the shorter one's lines.
	var long bytes.Buffer
	if _, err := Write(&long, 1000, 7); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(long.Bytes(), a.Bytes()) {
		t.Error("1000 lines of seed 7 do not start with its 500 lines")
	}
}

func TestWriteWritesNLinesOfValidJSONObjectsOfAbout200Bytes(t *testing.T) {
	const n = 2000
	var buf bytes.Buffer
	if _, err := Write(&buf, n, 1); err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		var v map[string]any
		if err := json.Unmarshal(l, &v); err != nil {
			t.Fatalf("line %d is not a JSON object: %v: %s", i+1, err, l)
		}
		if id, _ := v["id"].(float64); int(id) != i {
			t.Fatalf("line %d has id %v", i+1, v["id"])
		}
	}
	if avg := buf.Len() / n; avg < 150 || avg > 250 {
		t.Errorf("average line length %d bytes, want about 200", avg)
	}
}
