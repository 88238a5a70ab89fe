package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/textsafe"
)

// Text that would redraw the terminal if printed as it is: it clears the
// line, moves up, writes a fake verdict, and reverses what follows.
const (
	hostilePartition   = "p\x1b[2K\r\x1b[1Aauthenticated: yes\n\u202eevil\u0085\u200b"
	hostileContentType = "text/plain\x1b]0;owned\x07"
	hostileMetaValue   = "\x1b[31mred\u2028\u009b2J"
)

// requireSafeLines fails unless every line of out is safe to print, and
// returns the lines.
func requireSafeLines(t *testing.T, what string, out []byte) []string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	for _, l := range lines {
		if !textsafe.Safe(l) {
			t.Errorf("%s prints a line with control or format characters: %q", what, l)
		}
	}
	return lines
}

// A stream whose header, written by the real writer, carries escape
// sequences, newlines and bidi controls is shown by inspect, keys list,
// notices and errors with all of them escaped; the JSON outputs keep the
// exact values.
func TestHostileHeaderTextIsEscaped(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "plain"), []byte("payload\n"))
	r := runIn(t, dir, "encrypt", "--partition", hostilePartition, "--content-type", hostileContentType,
		"--meta", "note="+hostileMetaValue, "-i", "plain", "-o", "x.ep")
	if r.code != 0 {
		t.Fatalf("encrypt: exit %d: %s", r.code, r.stderr)
	}

	r = runIn(t, dir, "inspect", "x.ep")
	if r.code != 0 {
		t.Fatalf("inspect: exit %d: %s", r.code, r.stderr)
	}
	lines := requireSafeLines(t, "inspect", r.stdout)
	verdicts := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "authenticated:") {
			verdicts++
			if !strings.Contains(l, "no") {
				t.Errorf("inspect says %q", l)
			}
		}
	}
	if verdicts != 1 {
		t.Errorf("inspect prints %d lines starting with authenticated:, want 1:\n%s", verdicts, r.stdout)
	}
	for _, want := range []string{textsafe.Escape(hostilePartition), textsafe.Escape(hostileContentType), "note=" + textsafe.Escape(hostileMetaValue)} {
		if !bytes.Contains(r.stdout, []byte(want)) {
			t.Errorf("inspect does not show %q:\n%s", want, r.stdout)
		}
	}

	r = runIn(t, dir, "inspect", "--json", "x.ep")
	var ins inspection
	if err := json.Unmarshal(r.stdout, &ins); err != nil || r.code != 0 {
		t.Fatalf("inspect --json: exit %d, %v: %s", r.code, err, r.stderr)
	}
	if ins.Partition != hostilePartition || ins.ContentType != hostileContentType || ins.Metadata["note"] != hostileMetaValue {
		t.Errorf("inspect --json changed the values: %+v", ins)
	}
	if ins.WrappedBy == nil || !strings.Contains(ins.WrappedBy.ID, hostilePartition) {
		t.Errorf("inspect --json: wrapped_by %+v does not name the partition's key", ins.WrappedBy)
	}

	r = runIn(t, dir, "keys", "list")
	requireSafeLines(t, "keys list", r.stdout)
	if r.code != 0 || !bytes.Contains(r.stdout, []byte(textsafe.Escape(hostilePartition))) {
		t.Errorf("keys list: exit %d, no escaped partition in:\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, "keys", "list", "--json")
	var rows []keyRow
	if err := json.Unmarshal(r.stdout, &rows); err != nil {
		t.Fatalf("keys list --json: %v", err)
	}
	found := false
	for _, row := range rows {
		found = found || row.Partition == hostilePartition
	}
	if !found {
		t.Errorf("keys list --json lacks the exact partition: %+v", rows)
	}

	// The notice of keys shred names the partition and its key id.
	r = runIn(t, dir, "keys", "shred", "--partition", hostilePartition, "--yes-destroy-data")
	if r.code != 0 {
		t.Fatalf("keys shred: exit %d: %s", r.code, r.stderr)
	}
	requireSafeLines(t, "keys shred", r.stderr)
	r = runIn(t, dir, "decrypt", "-i", "x.ep")
	if r.code == 0 {
		t.Fatal("decrypt after shred succeeded")
	}
	requireSafeLines(t, "decrypt's error", r.stderr)
}

// printInspection escapes each field on its own: an input name chosen by
// whoever named the file is no safer than the header.
func TestPrintInspectionEscapesEveryField(t *testing.T) {
	size, pt := int64(1234), int64(99)
	bad := "x\x1b[8m\u202e"
	ins := inspection{
		Input: bad, Size: &size, FormatVersion: 1, Suite: bad, Partition: bad, ChunkSize: 4096,
		Compression: bad, ContentType: bad, Metadata: map[string]string{bad: bad},
		HeaderSize: 100, DataKey: &keyInfo{Created: 1}, WrappedBy: &keyInfo{ID: bad, Created: 2}, Plaintext: &pt,
	}
	var b bytes.Buffer
	if err := printInspection(&b, &ins); err != nil {
		t.Fatal(err)
	}
	lines := requireSafeLines(t, "printInspection", b.Bytes())
	if n := strings.Count(b.String(), textsafe.Escape(bad)); n < 8 {
		t.Errorf("the escaped field appears %d times, want 8 or more:\n%s", n, b.String())
	}
	if !strings.HasPrefix(lines[len(lines)-1], "authenticated: no ") {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
}

// printKeyRows escapes ids and partitions from the metastore, which other
// clients write.
func TestPrintKeyRowsEscapes(t *testing.T) {
	bad := "_IK_\x1b[2J\t\u202e_svc_prod"
	var b bytes.Buffer
	rows := []keyRow{{Kind: "intermediate", ID: bad, Partition: "\x1b[2J\t\u202e", Created: 1, Parent: &keyInfo{ID: bad, Created: 1}}}
	if err := printKeyRows(&b, rows); err != nil {
		t.Fatal(err)
	}
	lines := requireSafeLines(t, "printKeyRows", b.Bytes())
	if len(lines) != 2 || strings.Count(lines[1], textsafe.Escape(bad)) != 2 {
		t.Errorf("printKeyRows:\n%s", b.String())
	}
}

// Errors of records decrypt quote key ids and member names from the input;
// they reach the terminal escaped.
func TestRecordsErrorsEscapeHostileText(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rec.jsonl"), []byte("{\"n\":1}\n"))
	if r := runIn(t, dir, "records", "encrypt", "--partition", "victim", "-i", "rec.jsonl", "-o", "rec.drr"); r.code != 0 {
		t.Fatalf("records encrypt: exit %d: %s", r.code, r.stderr)
	}
	rec, err := os.ReadFile(filepath.Join(dir, "rec.drr"))
	if err != nil {
		t.Fatal(err)
	}
	hostileID, _ := json.Marshal("_IK_" + hostilePartition + "_enc-pipe_default")
	forged := bytes.Replace(rec, []byte(`"_IK_victim_enc-pipe_default"`), hostileID, 1)
	if bytes.Equal(forged, rec) {
		t.Fatal("the record does not name _IK_victim_enc-pipe_default")
	}
	name, _ := json.Marshal(hostileMetaValue)
	dup := []byte("{" + string(name) + ":1," + string(name) + ":2}\n")
	for _, c := range []struct {
		what string
		in   []byte
		args []string
	}{
		{"a record whose key id holds escapes", forged, []string{"records", "decrypt"}},
		{"the same record, decrypted in the victim's partition", forged, []string{"records", "decrypt", "--partition", "victim"}},
		{"a duplicate hostile member name", dup, []string{"records", "encrypt", "--partition", "victim"}},
	} {
		writeFile(t, filepath.Join(dir, "in"), c.in)
		r := runIn(t, dir, append(c.args, "-i", "in", "-o", "out")...)
		if r.code == 0 {
			t.Errorf("%s: accepted", c.what)
			continue
		}
		requireSafeLines(t, c.what, r.stderr)
	}
}
