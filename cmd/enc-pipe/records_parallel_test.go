package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/asherahvectors"
	"github.com/enc-pipe/enc-pipe/records"
)

// workerCounts are the --workers values every parallel run is compared
// across; 1 is the sequential result.
var workerCounts = []int{1, 2, 8}

// recordsCorpus is a generated JSON Lines input: good lines over many
// tenants (nested as org.tenant) and poison lines at known places.
type recordsCorpus struct {
	lines  []string       // every line, in order
	poison map[int]string // line number (from 1) → what is wrong
}

// newRecordsCorpus makes n good lines over the given number of tenants,
// with the poison lines inserted; long adds a line one byte over the line
// limit.
func newRecordsCorpus(n, tenants int, long bool) *recordsCorpus {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &recordsCorpus{poison: map[int]string{}}
	bad := []struct{ what, line string }{
		{"duplicate name", `{"id":-1,"org":{"tenant":"t001"},"ssn":"x","id":-2}`},
		{"bad JSON", `{"id":-3,"org":{"tenant":`},
		{"case variant of the partition member", `{"id":-4,"org":{"tenant":"t001","Tenant":"t002"},"ssn":"x"}`},
		{"no partition member", `{"id":-5,"ssn":"x"}`},
		{"invalid member name", `{"id":-6,"org":{"tenant":"t001"},"\udc00":1}`},
		{"duplicate name spelled with an escape, nested", `{"id":-7,"org":{"tenant":"t001","\u0074enant":"t002"}}`},
	}
	if long {
		bad = append(bad, struct{ what, line string }{"line too long", string(jsonString(records.DefaultMaxLineSize + 1))})
	}
	every := n / (len(bad) + 1)
	for i := range n {
		if i > 0 && i%every == 0 && i/every <= len(bad) {
			b := bad[i/every-1]
			c.lines = append(c.lines, b.line)
			c.poison[len(c.lines)] = b.what
		}
		payload := make([]byte, rng.IntN(200))
		for j := range payload {
			payload[j] = byte(rng.Uint32())
		}
		c.lines = append(c.lines, fmt.Sprintf(`{"id":%d,"org":{"tenant":"t%03d","region":"eu"},"ssn":"%03d-%02d-%04d","card":%d,"note":%q,"deep":{"a":[1,{"b":null}]}}`,
			i, rng.IntN(tenants), rng.IntN(1000), rng.IntN(100), rng.IntN(10000), rng.Int64(), base64.StdEncoding.EncodeToString(payload)))
	}
	return c
}

func (c *recordsCorpus) text() []byte { return []byte(strings.Join(c.lines, "\n") + "\n") }

// good returns the lines that are not poison, up to (not including) line
// number upTo (0: all).
func (c *recordsCorpus) good(upTo int) string {
	var b strings.Builder
	for i, l := range c.lines {
		if upTo > 0 && i+1 >= upTo {
			break
		}
		if _, bad := c.poison[i+1]; !bad {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (c *recordsCorpus) firstPoison() int {
	first := len(c.lines) + 1
	for n := range c.poison {
		first = min(first, n)
	}
	return first
}

// deadLetter is one line of a --dead-letter file.
type deadLetter struct {
	Source, Kind, Error, Value string
}

func readDeadLetters(t *testing.T, path string) []deadLetter {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []deadLetter
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		var d deadLetter
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		out = append(out, d)
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tamper changes one base64 character of line's ciphertext, away from
// padding, so that the record fails authentication: in a DataRowRecord the
// first character of Data, in a binary record (a line, or the ssn string)
// one near its end, in the tag.
func tamper(line string, format records.Format, fields bool) string {
	var i int
	switch {
	case format == records.FormatDRR:
		i = strings.Index(line, `"Data":"`) + len(`"Data":"`)
	case fields:
		start := strings.Index(line, `"ssn":"`) + len(`"ssn":"`)
		i = start + strings.IndexByte(line[start:], '"') - 6
	default:
		i = len(strings.TrimRight(line, "=")) - 4
	}
	c := byte('A')
	if line[i] == 'A' {
		c = 'B'
	}
	return line[:i] + string(c) + line[i+1:]
}

// Parallel runs give, line by line, what the sequential run gives: over a
// generated file with many tenants, a nested partition member, whole
// records and --fields, both formats, and poison lines (duplicate and
// invalid names, bad JSON, case variants, a missing partition, a line over
// the limit) set aside with --dead-letter or stopping the run without it.
// Decryption is compared the same way, with tampered and foreign lines.
func TestRecordsParallelRunsMatchSequential(t *testing.T) {
	dir := t.TempDir()
	small, long := newRecordsCorpus(3000, 400, false), newRecordsCorpus(3000, 400, true)
	writeFile(t, filepath.Join(dir, "small.jsonl"), small.text())
	writeFile(t, filepath.Join(dir, "long.jsonl"), long.text())
	for _, format := range []records.Format{records.FormatDRR, records.FormatBinary} {
		for _, fields := range []bool{false, true} {
			name := fmt.Sprintf("%v/fields=%v", format, fields)
			t.Run(name, func(t *testing.T) {
				modeArgs := []string{"--partition-field", "org.tenant"}
				if fields {
					modeArgs = append(modeArgs, "--fields", "ssn,card")
				}
				// The line over the limit costs a 64 MiB read per run:
				// whole records only.
				corpus, input := small, "small.jsonl"
				if !fields {
					corpus, input = long, "long.jsonl"
				}
				tag := strings.NewReplacer("/", "-", "=", "-").Replace(name)
				var firstDead []deadLetter
				for _, w := range workerCounts {
					enc, dead, dec := fmt.Sprintf("%s.enc.%d", tag, w), fmt.Sprintf("%s.dead.%d", tag, w), fmt.Sprintf("%s.dec.%d", tag, w)
					args := append([]string{"records", "encrypt", "--format", format.String(), "--workers", fmt.Sprint(w), "--dead-letter", dead, "-i", input, "-o", enc}, modeArgs...)
					if r := runIn(t, dir, args...); r.code != 0 || !bytes.Contains(r.stderr, []byte(fmt.Sprintf("%d of %d records set aside", len(corpus.poison), len(corpus.lines)))) {
						t.Fatalf("workers %d: exit %d: %s", w, r.code, r.stderr)
					}
					ds := readDeadLetters(t, filepath.Join(dir, dead))
					checkDeadLetters(t, ds, corpus)
					if w == workerCounts[0] {
						firstDead = ds
					} else if !slices.Equal(ds, firstDead) {
						t.Errorf("workers %d: dead letters differ from the sequential run's", w)
					}
					args = append([]string{"records", "decrypt", "--workers", fmt.Sprint(w), "-i", enc, "-o", dec}, modeArgs...)
					if !fields {
						args = []string{"records", "decrypt", "--workers", fmt.Sprint(w), "-i", enc, "-o", dec}
					}
					if r := runIn(t, dir, args...); r.code != 0 {
						t.Fatalf("workers %d: decrypt: exit %d: %s", w, r.code, r.stderr)
					}
					if got := mustRead(t, filepath.Join(dir, dec)); string(got) != corpus.good(0) {
						t.Fatalf("workers %d: the decrypted records are not the good input lines, in order", w)
					}
				}
				checkDecryptPoisonInParallel(t, dir, tag, format, fields, modeArgs, corpus)
				checkStopsAtFirstPoisonInParallel(t, dir, tag, input, format, modeArgs, corpus)
			})
		}
	}
}

// checkDeadLetters checks that ds are the poison lines of c, in order,
// with their line numbers and, except the line too long, their text.
func checkDeadLetters(t *testing.T, ds []deadLetter, c *recordsCorpus) {
	t.Helper()
	var want []int
	for n := range c.poison {
		want = append(want, n)
	}
	slices.Sort(want)
	if len(ds) != len(want) {
		t.Fatalf("%d dead letters, want %d", len(ds), len(want))
	}
	for i, d := range ds {
		n := want[i]
		if d.Source != fmt.Sprintf("line %d", n) || d.Kind == "" || d.Error == "" {
			t.Errorf("dead letter %d: %+v, want line %d (%s)", i, d, n, c.poison[n])
		}
		if tooLong := c.poison[n] == "line too long"; tooLong != (d.Kind == string(records.KindSize)) || tooLong != (d.Value == "") || (!tooLong && d.Value != c.lines[n-1]) {
			t.Errorf("line %d (%s): kind %s, value of %d bytes", n, c.poison[n], d.Kind, len(d.Value))
		}
	}
}

// checkDecryptPoisonInParallel decrypts the sequential run's output with
// tampered, foreign and duplicated-name lines added, with --dead-letter:
// every worker count writes the same records and sets aside the same lines.
func checkDecryptPoisonInParallel(t *testing.T, dir, tag string, format records.Format, fields bool, modeArgs []string, c *recordsCorpus) {
	t.Helper()
	enc := strings.Split(strings.TrimSuffix(string(mustRead(t, filepath.Join(dir, tag+".enc.1"))), "\n"), "\n")
	plain := strings.Split(strings.TrimSuffix(c.good(0), "\n"), "\n")
	if len(enc) != len(plain) {
		t.Fatalf("%d encrypted lines for %d good ones", len(enc), len(plain))
	}
	var in []string
	var want strings.Builder
	bad := map[int]bool{}
	for i, l := range enc {
		switch i % 500 {
		case 7:
			in = append(in, tamper(l, format, fields))
			bad[len(in)] = true
			continue
		case 100:
			in = append(in, `{"not":"a record"}`, "plain text")
			bad[len(in)-1], bad[len(in)] = true, true
		case 300:
			if format == records.FormatDRR {
				in = append(in, strings.Replace(l, `"Data":`, `"data":"AAAA","Data":`, 1))
				bad[len(in)] = true
			}
		}
		in = append(in, l)
		want.WriteString(plain[i] + "\n")
	}
	writeFile(t, filepath.Join(dir, tag+".poisoned"), []byte(strings.Join(in, "\n")+"\n"))
	var first []deadLetter
	for _, w := range workerCounts {
		dec, dead := fmt.Sprintf("%s.pdec.%d", tag, w), fmt.Sprintf("%s.pdead.%d", tag, w)
		args := []string{"records", "decrypt", "--workers", fmt.Sprint(w), "--dead-letter", dead, "-i", tag + ".poisoned", "-o", dec}
		if fields {
			args = append(args, modeArgs...)
		}
		if r := runIn(t, dir, args...); r.code != 0 {
			t.Fatalf("workers %d: exit %d: %s", w, r.code, r.stderr)
		}
		if string(mustRead(t, filepath.Join(dir, dec))) != want.String() {
			t.Fatalf("workers %d: decrypting the poisoned file did not give the good records in order", w)
		}
		ds := readDeadLetters(t, filepath.Join(dir, dead))
		if len(ds) != len(bad) {
			t.Fatalf("workers %d: %d dead letters, want %d", w, len(ds), len(bad))
		}
		for _, d := range ds {
			var n int
			fmt.Sscanf(d.Source, "line %d", &n)
			if !bad[n] || d.Value != in[n-1] {
				t.Errorf("workers %d: dead letter %s is not a poisoned line as read", w, d.Source)
			}
		}
		if w == workerCounts[0] {
			first = ds
		} else if !slices.Equal(ds, first) {
			t.Errorf("workers %d: dead letters differ from the sequential run's", w)
		}
	}
}

// checkStopsAtFirstPoisonInParallel runs without --dead-letter: to a file,
// every worker count fails the same way and leaves no file; to standard
// output, it writes exactly the records before the first bad line.
func checkStopsAtFirstPoisonInParallel(t *testing.T, dir, tag, input string, format records.Format, modeArgs []string, c *recordsCorpus) {
	t.Helper()
	first := c.firstPoison()
	var firstErr []byte
	for _, w := range workerCounts {
		out := fmt.Sprintf("%s.stop.%d", tag, w)
		args := append([]string{"records", "encrypt", "--format", format.String(), "--workers", fmt.Sprint(w), "-i", input, "-o", out}, modeArgs...)
		r := runIn(t, dir, args...)
		if r.code != exitUsage || !bytes.HasPrefix(r.stderr, []byte(fmt.Sprintf("enc-pipe: error: line %d: ", first))) {
			t.Fatalf("workers %d: exit %d, stderr %q; want exit 2 naming line %d", w, r.code, r.stderr, first)
		}
		if _, err := os.Stat(filepath.Join(dir, out)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("workers %d: a failed run left its output (%v)", w, err)
		}
		if w == workerCounts[0] {
			firstErr = r.stderr
		} else if !bytes.Equal(r.stderr, firstErr) {
			t.Errorf("workers %d: stderr %q, the sequential run's %q", w, r.stderr, firstErr)
		}
		args = append([]string{"records", "encrypt", "--format", format.String(), "--workers", fmt.Sprint(w), "-i", input}, modeArgs...)
		r = runIn(t, dir, args...)
		if r.code != exitUsage {
			t.Fatalf("workers %d, to stdout: exit %d", w, r.code)
		}
		writeFile(t, filepath.Join(dir, out+".partial"), r.stdout)
		dec := runIn(t, dir, append([]string{"records", "decrypt", "-i", out + ".partial"}, modeArgsForDecrypt(modeArgs)...)...)
		if dec.code != 0 || string(dec.stdout) != c.good(first) {
			t.Fatalf("workers %d: standard output before the error is not the records before line %d (decrypt exit %d: %s)", w, first, dec.code, dec.stderr)
		}
	}
}

// modeArgsForDecrypt keeps the partition member only with --fields.
func modeArgsForDecrypt(modeArgs []string) []string {
	if slices.Contains(modeArgs, "--fields") {
		return modeArgs
	}
	return nil
}

// Asherah's DataRowRecords decrypt in parallel as in sequence: the
// positive vectors in order, with tampered copies, negative vectors that
// fail under any session of the service and lines that are not records set
// aside, the same way for every worker count.
func TestRecordsAsherahVectorsInParallel(t *testing.T) {
	flags := vectorStore(t)
	set := asherahvectors.MustLoad(t)
	var in []string
	var want strings.Builder
	bad := map[int]string{}
	positives := 0
	for _, r := range set.Records {
		if r.Session.RegionSuffix != "" || r.Session.Service != "svc" || r.Session.Product != "prod" {
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, asherahJSON(t, r)); err != nil {
			t.Fatal(err)
		}
		line := compact.String()
		in = append(in, tamper(line, records.FormatDRR, false))
		bad[len(in)] = "tampered " + r.Name
		in = append(in, line)
		pt, err := r.Plaintext.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		want.WriteString(base64.StdEncoding.EncodeToString(pt) + "\n")
		positives++
	}
	negatives := 0
	for _, n := range set.Negatives {
		// Only those refused whatever the expected partition: of this
		// service and product, naming their session's partition.
		var drr struct {
			Key *struct{ ParentKeyMeta *struct{ KeyId string } }
		}
		json.Unmarshal(n.DRR, &drr)
		if n.Session.Service != "svc" || n.Session.Product != "prod" || n.Session.RegionSuffix != "" ||
			(drr.Key != nil && drr.Key.ParentKeyMeta != nil && drr.Key.ParentKeyMeta.KeyId != "_IK_"+n.Session.Partition+"_svc_prod") {
			continue
		}
		var compact bytes.Buffer
		json.Compact(&compact, n.DRR)
		in = append(in, compact.String())
		bad[len(in)] = "negative " + n.Name
		negatives++
	}
	in = append(in, "not a record")
	bad[len(in)] = "not a record"
	if positives < 10 || negatives < 4 {
		t.Fatalf("%d positive and %d negative vectors used", positives, negatives)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "in.drr"), []byte(strings.Join(in, "\n")+"\n"))
	var first []deadLetter
	for _, w := range workerCounts {
		dead := fmt.Sprintf("dead.%d", w)
		args := append([]string{"records", "decrypt", "--base64", "--workers", fmt.Sprint(w), "--dead-letter", dead, "-i", "in.drr"}, flags...)
		r := runIn(t, dir, args...)
		if r.code != 0 || string(r.stdout) != want.String() {
			t.Fatalf("workers %d: exit %d (%s); the positive vectors did not come back in order", w, r.code, r.stderr)
		}
		ds := readDeadLetters(t, filepath.Join(dir, dead))
		if len(ds) != len(bad) {
			t.Fatalf("workers %d: %d dead letters, want %d", w, len(ds), len(bad))
		}
		for _, d := range ds {
			var n int
			fmt.Sscanf(d.Source, "line %d", &n)
			if _, ok := bad[n]; !ok || d.Value != in[n-1] || d.Kind == string(records.KindJSON) {
				t.Errorf("workers %d: dead letter %+v", w, d)
			}
		}
		if w == workerCounts[0] {
			first = ds
		} else if !slices.Equal(ds, first) {
			t.Errorf("workers %d: dead letters differ from the sequential run's", w)
		}
	}
}

// Exit codes of bad records, by kind and direction, as docs/CLI.md states
// them: 2 for input at fault, 3 for what is not an intact record, 4 for
// keys and partitions that do not match.
func TestRecordErrorExitCodes(t *testing.T) {
	mismatch := fmt.Errorf("wrapped: %w", envelope.ErrPartitionMismatch)
	missing := errors.New(`partition field "t" is missing`)
	for _, c := range []struct {
		run  recordsRun
		kind records.ErrorKind
		err  error
		want int
	}{
		{recordsRun{encrypt: true}, records.KindJSON, missing, exitUsage},
		{recordsRun{encrypt: true}, records.KindSize, missing, exitUsage},
		{recordsRun{encrypt: true, fieldPart: true}, records.KindPartition, missing, exitUsage},
		{recordsRun{fieldPart: true}, records.KindPartition, missing, exitUsage},
		{recordsRun{fieldPart: true}, records.KindPartition, mismatch, exitKey},
		{recordsRun{}, records.KindPartition, missing, exitKey},
		{recordsRun{}, records.KindKey, missing, exitKey},
		{recordsRun{}, records.KindAuth, missing, exitIntegrity},
		{recordsRun{}, records.KindFormat, missing, exitIntegrity},
		{recordsRun{}, records.KindJSON, missing, exitUsage},
	} {
		re := &records.RecordError{Kind: c.kind, Pos: records.Position{Offset: 7}, Err: c.err}
		err := c.run.runError(fmt.Errorf("records: %w", re))
		if got := exitCode(err); got != c.want || !strings.HasPrefix(err.Error(), "line 7: ") {
			t.Errorf("%+v %s: exit %d (%v), want %d", c.run, c.kind, got, err, c.want)
		}
	}
}
