package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/records"
)

// cliRun is one finished run of the enc-pipe binary.
type cliRun struct {
	stdout, stderr []byte
	code           int
}

// runIn runs the enc-pipe binary in dir, with ENC_PIPE_HOME=dir/home and
// no other ENC_PIPE_* setting of the caller.
func runIn(t *testing.T, dir string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(binPath, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENC_PIPE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "ENC_PIPE_HOME="+filepath.Join(dir, "home"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := cliRun{stdout: out.Bytes(), stderr: errOut.Bytes()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("enc-pipe %v: %v", args, err)
	}
	return r
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// jsonString returns a JSON string value of exactly n bytes (n >= 2).
func jsonString(n int) []byte {
	b := bytes.Repeat([]byte("a"), n)
	b[0], b[n-1] = '"', '"'
	return b
}

// recordLimitFor measures, on a small record encrypted by the binary in
// format, what an encrypted line of the partition holds besides what grows
// with the plaintext, and from it the largest whole record whose line fits
// in records.DefaultMaxLineSize. A DataRowRecord line is a fixed part plus
// the base64 of the payload (plaintext, nonce and tag); a binary line is
// the base64 of a fixed header plus the ciphertext and tag.
func recordLimitFor(t *testing.T, dir, partition string, format records.Format) int {
	t.Helper()
	small := []byte(`{"probe":true}`)
	writeFile(t, filepath.Join(dir, "probe.jsonl"), append(small, '\n'))
	r := runIn(t, dir, "records", "encrypt", "--format", format.String(), "--partition", partition, "-i", "probe.jsonl")
	if r.code != 0 {
		t.Fatalf("records encrypt: exit %d: %s", r.code, r.stderr)
	}
	line := bytes.TrimSuffix(r.stdout, []byte("\n"))
	if format == records.FormatBinary {
		bin, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil {
			t.Fatal(err)
		}
		// The line may hold DefaultMaxLineSize/4*3 bytes of binary record.
		return records.DefaultMaxLineSize/4*3 - (len(bin) - len(small))
	}
	var drr envelope.DataRowRecord
	if err := json.Unmarshal(line, &drr); err != nil {
		t.Fatal(err)
	}
	fixed := len(line) - base64.StdEncoding.EncodedLen(len(drr.Data))
	payloadOverhead := len(drr.Data) - len(small)
	// The payload's base64 may use at most DefaultMaxLineSize-fixed
	// characters: 4 for each started group of 3 bytes.
	return (records.DefaultMaxLineSize-fixed)/4*3 - payloadOverhead
}

// records encrypt writes only lines that records decrypt reads, in both
// formats: a whole record of the largest size that fits round-trips, one
// byte more is refused with its line number and nothing written.
func TestRecordsEncryptRefusesWhatDecryptCannotRead(t *testing.T) {
	dir := t.TempDir()
	const partition = "limits"
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		maxPlain := recordLimitFor(t, dir, partition, format)
		first := []byte(`{"first":1}`)
		for _, n := range []int{maxPlain, maxPlain + 1} {
			t.Run(fmt.Sprintf("%v/plaintext=max%+d", format, n-maxPlain), func(t *testing.T) {
				in := append(append(append([]byte{}, first...), '\n'), jsonString(n)...)
				writeFile(t, filepath.Join(dir, "big.jsonl"), in)
				os.Remove(filepath.Join(dir, "big.enc"))
				r := runIn(t, dir, "records", "encrypt", "--format", format.String(), "--partition", partition, "-i", "big.jsonl", "-o", "big.enc")
				if n > maxPlain {
					msg := string(r.stderr)
					limit := records.LineOptions{Base64: format == records.FormatBinary}.MaxValueSize()
					if r.code != exitUsage || !strings.HasPrefix(msg, "enc-pipe: error: line 2: ") || strings.Count(msg, "error:") != 1 ||
						!strings.Contains(msg, strconv.Itoa(limit)) || !strings.Contains(msg, "at most "+strconv.Itoa(maxPlain)+" bytes") {
						t.Errorf("a record of %d bytes (max %d): exit %d, stderr %q", n, maxPlain, r.code, msg)
					}
					if _, err := os.Stat(filepath.Join(dir, "big.enc")); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("a refused run left its output: %v", err)
					}
					return
				}
				if r.code != 0 {
					t.Fatalf("a record of %d bytes (max %d): exit %d: %s", n, maxPlain, r.code, r.stderr)
				}
				out, err := os.ReadFile(filepath.Join(dir, "big.enc"))
				if err != nil {
					t.Fatal(err)
				}
				lines := bytes.Split(bytes.TrimSuffix(out, []byte("\n")), []byte("\n"))
				if len(lines) != 2 || len(lines[1]) > records.DefaultMaxLineSize || len(lines[1]) <= records.DefaultMaxLineSize-4 && n == maxPlain {
					t.Fatalf("%d output lines, the last %d bytes (limit %d)", len(lines), len(lines[len(lines)-1]), records.DefaultMaxLineSize)
				}
				r = runIn(t, dir, "records", "decrypt", "-i", "big.enc", "-o", "back.jsonl")
				if r.code != 0 {
					t.Fatalf("records decrypt: exit %d: %s", r.code, r.stderr)
				}
				back, err := os.ReadFile(filepath.Join(dir, "back.jsonl"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(back, append(in, '\n')) {
					t.Errorf("the records came back different (%d bytes, want %d)", len(back), len(in)+1)
				}
			})
		}
	}
}

// In place, an object whose encrypted fields would take it past the line
// limit is refused the same way.
func TestRecordsEncryptFieldsRefusesOverlongObject(t *testing.T) {
	dir := t.TempDir()
	prefix := `{"tenant":"limits","f":`
	// The field's base64 alone (4 characters per 3 bytes) passes the limit.
	n := records.DefaultMaxLineSize/4*3 + 3
	in := append(append([]byte(prefix), jsonString(n)...), '}', '\n')
	writeFile(t, filepath.Join(dir, "big.jsonl"), in)
	r := runIn(t, dir, "records", "encrypt", "--fields", "f", "--partition-field", "tenant", "-i", "big.jsonl", "-o", "big.drr")
	if r.code != exitUsage || !bytes.Contains(r.stderr, []byte("\nenc-pipe: error: line 1: with its fields encrypted, this object would take")) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "big.drr")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused run left its output: %v", err)
	}
}

// The reader takes lines of up to records.DefaultMaxLineSize bytes, with either line
// ending or none at the end of the input, and names the first longer line.
// A DataRowRecord line padded with JSON whitespace makes a line of any
// length that decrypt accepts.
func TestRecordsLineLimitOfTheReader(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "rec.jsonl"), []byte("{\"n\":1}\n"))
	if r := runIn(t, dir, "records", "encrypt", "--partition", "limits", "-i", "rec.jsonl", "-o", "rec.drr"); r.code != 0 {
		t.Fatalf("records encrypt: exit %d: %s", r.code, r.stderr)
	}
	rec, err := os.ReadFile(filepath.Join(dir, "rec.drr"))
	if err != nil {
		t.Fatal(err)
	}
	line := bytes.TrimSuffix(rec, []byte("\n"))
	// At the limit, "\r\n" needs the most room; one byte over, "\n" and
	// no ending get past the scanner's buffer and are refused by its
	// caller, "\r\n" is refused by the scanner itself.
	for _, c := range []struct {
		n      int
		ending string
	}{{records.DefaultMaxLineSize, "\r\n"}, {records.DefaultMaxLineSize, ""}, {records.DefaultMaxLineSize + 1, "\n"}, {records.DefaultMaxLineSize + 1, "\r\n"}, {records.DefaultMaxLineSize + 1, ""}} {
		t.Run(fmt.Sprintf("len=%d,ending=%q", c.n, c.ending), func(t *testing.T) {
			// Line 1 is rec, line 2 rec padded with spaces to c.n bytes.
			in := append(append([]byte{}, rec...), line...)
			in = append(in, bytes.Repeat([]byte(" "), c.n-len(line))...)
			in = append(in, c.ending...)
			writeFile(t, filepath.Join(dir, "in.drr"), in)
			r := runIn(t, dir, "records", "decrypt", "-i", "in.drr", "-o", "out.jsonl")
			if c.n <= records.DefaultMaxLineSize {
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl"))
				if want := "{\"n\":1}\n{\"n\":1}\n"; string(out) != want {
					t.Errorf("decrypted %q, want %q", out, want)
				}
				return
			}
			want := fmt.Sprintf("enc-pipe: error: line 2: longer than %d bytes", records.DefaultMaxLineSize)
			if r.code != exitUsage || !bytes.HasPrefix(r.stderr, []byte(want)) {
				t.Errorf("exit %d, stderr %q, want %q", r.code, r.stderr, want)
			}
		})
	}
}

// docs/CLI.md states the line limit and the largest whole record for the
// default partition in both formats, as computed from records the binary
// writes.
func TestCLIDocStatesTheRecordLimit(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "CLI.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	maxDRR := recordLimitFor(t, dir, defaultPartition, records.FormatDRR)
	maxBinary := recordLimitFor(t, dir, defaultPartition, records.FormatBinary)
	for _, want := range []int{records.DefaultMaxLineSize, maxDRR, maxBinary} {
		if !bytes.Contains(doc, []byte(strconv.Itoa(want))) {
			t.Errorf("docs/CLI.md does not mention %d", want)
		}
	}
}
