package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/location"
	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/jsonscan"
	"github.com/enc-pipe/enc-pipe/records"
	"github.com/enc-pipe/enc-pipe/sinks"
)

// recordsDrainTimeout bounds, after SIGINT or SIGTERM, the finishing of
// the records already read: well inside the grace run gives a command.
const recordsDrainTimeout = 2 * time.Second

type recordsFlags struct {
	input, output  string
	partitionField string
	fields         []string
	base64         bool
	format         string
	workers        int
	deadLetter     string
	progress       progressFlags
}

const recordsLong = `Encrypt and decrypt JSON Lines records with the Asherah record format: every
encrypted value is an Asherah DataRowRecord, {"Key":{...},"Data":"..."}, that
any Asherah client (Go, Java, C#) sharing the metastore, service and product
can decrypt, and the other way round. --format binary writes enc-pipe's
compact binary record instead (as base64), bound to its partition and field;
decrypt reads both.

Whole records (default): each input line is one JSON value, encrypted as a
whole; each output line is its DataRowRecord. Decryption writes the JSON text
back, one per line. With --base64, input lines of "records encrypt" and output
lines of "records decrypt" are the standard base64 of arbitrary bytes instead
(for records that are not JSON, such as those of other Asherah applications).

Fields in place (--fields ssn,card): each input line is a JSON object; the
named top-level fields are replaced by the DataRowRecord object of their JSON
value (the plaintext is the value's JSON text, e.g. "123-45-6789" with the
quotes), and the other fields are kept as they are, in order. Missing fields
are left out silently. Decryption puts the JSON values back.

Partitions: --partition for all records, or --partition-field NAME to take it
from each object's member (a string or a number; nested as a.b; in place only
when decrypting, since the member must be readable). When decrypting without
either, each record's partition is read from its key id
(_IK_{partition}_{service}_{product}).

Records are processed by --workers goroutines (default: the number of CPUs)
and written in input order, in bounded memory. Blank lines are skipped (with
--base64 an empty line is the empty record). Lines are at most 64 MiB, read
and written: records encrypt refuses a record whose encrypted line would be
longer, and says how large a record of its partition may be. An object with a
member name twice, at any depth, is refused: JSON readers disagree on which
value counts.

The first bad line stops the run with an error that names its number; to a
file OUT, nothing is written then. With --dead-letter FILE, bad lines are
written to FILE instead, one JSON object each ({"source":"line 3","kind":
"json","error":"...","value":"..."}), and the run goes on.`

func (a *app) newRecordsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "records",
		Short: "Encrypt and decrypt JSON Lines records as Asherah DataRowRecords",
		Long:  recordsLong,
		Example: `  enc-pipe records encrypt --partition-field tenant_id -i events.jsonl -o events.drr.jsonl
  enc-pipe records decrypt -i events.drr.jsonl
  enc-pipe records encrypt --fields ssn,card --partition-field tenant_id < users.jsonl > users.enc.jsonl
  enc-pipe records decrypt --fields ssn,card --partition-field tenant_id < users.enc.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("records needs a subcommand: encrypt or decrypt")
		},
	}
	cmd.AddCommand(a.newRecordsSubcommand(true), a.newRecordsSubcommand(false))
	return cmd
}

func (a *app) newRecordsSubcommand(encrypt bool) *cobra.Command {
	f := &recordsFlags{}
	use, short, ex := "decrypt [IN [OUT]]", "Decrypt DataRowRecords (one per line) back to JSON Lines",
		`  enc-pipe records decrypt -i events.drr.jsonl -o events.jsonl
  enc-pipe records decrypt --fields ssn --partition-field tenant_id < users.enc.jsonl
  enc-pipe records decrypt --base64 --service svc --product prod < asherah-records.jsonl
  enc-pipe records decrypt --workers 4 --dead-letter bad.jsonl -i events.drr.jsonl -o events.jsonl`
	if encrypt {
		use, short, ex = "encrypt [IN [OUT]]", "Encrypt JSON Lines records to DataRowRecords (one per line)",
			`  enc-pipe records encrypt --partition user-42 -i events.jsonl -o events.drr.jsonl
  enc-pipe records encrypt --partition-field tenant_id < events.jsonl
  enc-pipe records encrypt --partition-field org.tenant --format binary -i events.jsonl -o events.bin.jsonl
  enc-pipe records encrypt --fields ssn,card --partition-field tenant_id --dead-letter bad.jsonl < users.jsonl`
	}
	cmd := &cobra.Command{
		Use:     use,
		Short:   short,
		Long:    recordsLong,
		Example: ex,
		Args:    maxArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRecords(cmd, args, f, encrypt)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.input, "input", "i", "", "input file, or - for standard input")
	fl.StringVarP(&f.output, "output", "o", "", "output file, or - for standard output")
	fl.StringVar(&f.partitionField, "partition-field", "", "take each record's partition from this member (nested as a.b)")
	fl.StringSliceVar(&f.fields, "fields", nil, "encrypt only these top-level fields, in place (comma-separated)")
	fl.BoolVar(&f.base64, "base64", false, "whole records are standard base64 of arbitrary bytes instead of JSON")
	fl.IntVar(&f.workers, "workers", 0, "records transformed at once (default: the number of CPUs)")
	fl.StringVar(&f.deadLetter, "dead-letter", "", "write bad lines to this file, with their reason, and go on (default: stop at the first)")
	if encrypt {
		fl.StringVar(&f.format, "format", "drr", "encrypted record format: drr (Asherah DataRowRecord JSON) or binary (enc-pipe's, as base64)")
	}
	f.progress.register(cmd)
	return cmd
}

// recordsRun is what one records command does, as the flags chose it.
type recordsRun struct {
	encrypt   bool
	ps        records.PartitionSource
	fields    []string
	format    records.Format
	base64    bool
	srcOpt    records.LineOptions
	outOpt    records.LineOptions // the output lines: base64 or not
	workers   int
	deadName  string
	fieldPart bool // the partition comes from a member of each record
}

// recordsPlan checks the flags and settles what the run does, before
// anything is opened.
func (a *app) recordsPlan(cmd *cobra.Command, f *recordsFlags, encrypt bool) (*recordsRun, error) {
	p := &recordsRun{encrypt: encrypt, base64: f.base64, workers: f.workers, format: records.FormatDRR}
	if f.workers < 0 {
		return nil, usageErrorf("--workers must not be negative")
	}
	for _, name := range f.fields {
		if name = strings.TrimSpace(name); name == "" {
			return nil, usageErrorf("--fields: empty field name")
		}
		p.fields = append(p.fields, name)
	}
	if len(p.fields) > 0 && f.base64 {
		return nil, usageErrorf("--base64 applies to whole records, not to --fields")
	}
	if encrypt {
		format, err := records.ParseFormat(f.format)
		if err != nil {
			return nil, usageErrorf("--format %q: want drr or binary", f.format)
		}
		p.format = format
	}
	explicit := a.partitionExplicit(cmd)
	switch {
	case explicit && f.partitionField != "":
		return nil, usageErrorf("use either --partition or --partition-field, not both")
	case f.partitionField != "" && !encrypt && p.fields == nil:
		return nil, usageErrorf("--partition-field needs --fields when decrypting whole records (the field is encrypted); without it the partition comes from each record's key id")
	case f.partitionField != "" && f.base64:
		return nil, usageErrorf("--partition-field needs JSON records, not --base64")
	case f.partitionField != "":
		ps, err := records.ParsePartitionSource("field:" + f.partitionField)
		if err != nil {
			return nil, usageErrorf("--partition-field: %s", strings.TrimPrefix(err.Error(), "records: "))
		}
		p.ps, p.fieldPart = ps, true
		top, _, _ := strings.Cut(f.partitionField, ".")
		for _, name := range p.fields {
			if encrypt && name == top {
				return nil, usageErrorf("--partition-field %s cannot be in one of --fields: it must stay readable to decrypt", f.partitionField)
			}
		}
	case explicit || encrypt:
		if a.g.partition == "" {
			return nil, usageErrorf("--partition: empty partition id")
		}
		p.ps = records.FixedPartition(a.g.partition)
	}
	// Whole binary records are base64 lines; with --base64 the plaintext
	// is too. Output lines are base64-encoded by the workers (lineTransform),
	// not by the sink, which runs on one goroutine.
	p.srcOpt = records.LineOptions{Base64: encrypt && f.base64}
	p.outOpt = records.LineOptions{Base64: (!encrypt && f.base64) || (encrypt && p.format == records.FormatBinary && p.fields == nil)}
	p.deadName = f.deadLetter
	return p, nil
}

func (a *app) runRecords(cmd *cobra.Command, args []string, f *recordsFlags, encrypt bool) error {
	ctx := cmd.Context()
	inName, outName, err := resolveIO(args, f.input, f.output)
	if err != nil {
		return err
	}
	if err := f.progress.check(); err != nil {
		return err
	}
	p, err := a.recordsPlan(cmd, f, encrypt)
	if err != nil {
		return err
	}
	if err := checkDeadLetterName(p.deadName, outName); err != nil {
		return err
	}

	in, err := a.openInput(ctx, inName)
	if err != nil {
		return err
	}
	defer in.Close()
	// Outputs before keys: an output that is refused (the input itself, a
	// link) must not leave a new home behind.
	out, err := a.openOutput(outName, in, outputOptions{})
	if err != nil {
		return err
	}
	var dead sinks.Sink
	if p.deadName != "" {
		if dead, err = a.openOutput(p.deadName, in, outputOptions{}); err != nil {
			out.CloseWithError(err)
			return err
		}
	}
	abort := func(err error) error {
		if dead != nil {
			dead.CloseWithError(err)
		}
		out.CloseWithError(err)
		return err
	}
	be, err := a.openBackend(ctx, encrypt)
	if err != nil {
		return abort(err)
	}
	defer be.Close()
	xf, err := p.transformer(be.factory)
	if err != nil {
		return abort(err)
	}
	defer xf.Close()
	what := "decrypting records"
	if encrypt {
		what = "encrypting records"
	}
	src, stopProgress := a.withProgress(&f.progress, in, in.size(), what)
	pl := &records.Pipeline{
		Source:       records.NewLineSource(readTagger{ctxReader{ctx, src}}, p.srcOpt),
		Transform:    xf,
		Sink:         records.NewLineSink(writeTagger{out}, records.LineOptions{}),
		Workers:      p.workers,
		DrainTimeout: recordsDrainTimeout,
		Metrics:      a.obs.provider,
	}
	if dead != nil {
		pl.DeadLetter = records.NewLineDeadLetterSink(writeTagger{dead})
	}
	err = pl.Run(ctx)
	stopProgress()
	if err != nil {
		err = p.runError(err)
	}
	if dead != nil {
		if derr := finish(dead, err); err == nil {
			err = derr
		}
	}
	if err := finish(out, err); err != nil {
		return err
	}
	if st := pl.Stats(); st.DeadLettered > 0 {
		a.noticef("%d of %d records set aside in %s (%s)", st.DeadLettered, st.Read, p.deadName, kindCounts(st.Errors))
	}
	return nil
}

// checkDeadLetterName refuses a dead-letter file that is standard output
// or the output.
func checkDeadLetterName(dead, out string) error {
	if dead == "" {
		return nil
	}
	loc, err := location.Parse(dead)
	if err != nil {
		return usageErrorf("--dead-letter: %v", err)
	}
	if loc.Kind != location.File {
		return usageErrorf("--dead-letter %s: give a file (standard output carries the records)", dead)
	}
	if o, err := location.Parse(out); err == nil && o.Kind == location.File && filepath.Clean(o.Path) == filepath.Clean(loc.Path) {
		return usageErrorf("--dead-letter %s is the output: give another file", dead)
	}
	return nil
}

func kindCounts(m map[records.ErrorKind]int64) string {
	var parts []string
	for _, k := range []records.ErrorKind{records.KindFormat, records.KindJSON, records.KindPartition, records.KindKey, records.KindAuth, records.KindSize} {
		if n := m[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// closingTransformer is an Encrypter or a Decrypter with the CLI's framing.
type closingTransformer interface {
	records.Transformer
	Close() error
}

// transformer builds the Encrypter or the Decrypter of the run, wrapped in
// what the JSON Lines framing of the CLI adds.
func (p *recordsRun) transformer(factory *envelope.SessionFactory) (closingTransformer, error) {
	if p.encrypt {
		enc, err := records.NewEncrypter(records.EncryptConfig{
			Factory: factory, Partition: p.ps, Format: p.format, JSON: !p.base64, Fields: p.fields,
			// The one line limit: decryption reads back every line.
			MaxValueSize: p.outOpt.MaxValueSize(),
		})
		if err != nil {
			return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), "records: "))
		}
		return &lineTransform{xf: enc, closer: enc, encodeBase64: p.outOpt.Base64}, nil
	}
	// In place, the library keeps the object on one line; whole records
	// are checked by lineTransform, which says what to do about them.
	dec, err := records.NewDecrypter(records.DecryptConfig{Factory: factory, Partition: p.ps, Fields: p.fields, SingleLine: p.fields != nil})
	if err != nil {
		return nil, usageErrorf("%s", strings.TrimPrefix(err.Error(), "records: "))
	}
	whole := p.fields == nil
	return &lineTransform{xf: dec, closer: dec, decrypt: true, unwrapBinary: whole, checkJSON: whole && !p.base64, encodeBase64: p.outOpt.Base64}, nil
}

// lineTransform adapts a Transformer to JSON Lines: decrypting whole
// records, a line that is not a DataRowRecord is taken as the base64 of a
// binary record, and the plaintext must be one line of JSON unless it goes
// out as base64. Output lines that are base64 are encoded here, on the
// workers. A failure that is not the record's (a backend) is given the
// record's position.
type lineTransform struct {
	xf           records.Transformer
	closer       interface{ Close() error }
	decrypt      bool
	unwrapBinary bool
	checkJSON    bool
	encodeBase64 bool
}

func (t *lineTransform) Close() error { return t.closer.Close() }

func (t *lineTransform) Transform(ctx context.Context, r *records.Record) error {
	if t.unwrapBinary {
		if f, ok := records.DetectFormat(r.Value); !ok || f != records.FormatDRR {
			v, err := base64.StdEncoding.AppendDecode(nil, bytes.TrimSpace(r.Value))
			if err != nil || len(v) == 0 || v[0] != records.BinaryMagic {
				return &records.RecordError{Kind: records.KindFormat, Err: errors.New("neither a DataRowRecord nor the base64 of a binary record")}
			}
			r.Value = v
		}
	}
	if err := t.xf.Transform(ctx, r); err != nil {
		var re *records.RecordError
		if !errors.As(err, &re) {
			return &atRecordError{pos: r.Source, decrypt: t.decrypt, err: err}
		}
		return err
	}
	if t.checkJSON {
		// %v, not %w: the error describes the plaintext and must not be
		// shown with the names it holds.
		err := jsonscan.Check(r.Value)
		if err == nil && bytes.ContainsAny(r.Value, "\r\n") {
			err = errors.New("it spans lines")
		}
		if err != nil {
			clear(r.Value)
			return &records.RecordError{Kind: records.KindFormat, Err: fmt.Errorf("the decrypted record is not one line of JSON (%v): use --base64 for records that are not JSON", err)}
		}
	}
	if t.encodeBase64 {
		v := base64.StdEncoding.AppendEncode(make([]byte, 0, base64.StdEncoding.EncodedLen(len(r.Value))), r.Value)
		if t.decrypt {
			clear(r.Value)
		}
		r.Value = v
	}
	return nil
}

// atRecordError is a failure that stops the run while a record was being
// transformed: a metastore or KMS failure, a key that does not unwrap.
type atRecordError struct {
	pos     records.Position
	decrypt bool
	err     error
}

func (e *atRecordError) Error() string {
	return e.pos.String() + ": " + strings.TrimPrefix(e.err.Error(), "records: ")
}

func (e *atRecordError) Unwrap() error { return e.err }

// runError gives the error of a records run its exit code and message.
func (p *recordsRun) runError(err error) error {
	var re *records.RecordError
	var ae *atRecordError
	switch {
	case errors.As(err, &re):
		return p.recordError(re)
	case errors.As(err, &ae):
		code := classify(ae.err)
		if code == 0 || code == exitFailure {
			code = exitKey // the backends: metastore, KMS
		}
		var ke *envelope.KeyError
		switch {
		case errors.As(ae.err, &ke) && ae.decrypt:
			return &cliError{code: code, msg: ae.pos.String() + ": cannot load the record's key", err: errors.New(strings.TrimPrefix(ae.err.Error(), "records: "))}
		case errors.As(ae.err, &ke):
			return &cliError{code: code, msg: ae.pos.String() + ": cannot load the partition's key", err: errors.New(strings.TrimPrefix(ae.err.Error(), "records: "))}
		}
		return &cliError{code: code, msg: ae.Error(), err: ae.err, terse: true}
	}
	code := classify(err)
	switch code {
	case exitSIGPIPE:
		return errQuietEnd
	case 0:
		code = exitFailure
	}
	msg := strings.TrimPrefix(err.Error(), "records: ")
	msg = strings.TrimPrefix(strings.TrimPrefix(msg, "read: "), "write: ")
	return &cliError{code: code, msg: msg, err: err, terse: true}
}

// recordError is the message and exit code of a bad record: 2 for bad
// input (JSON, a duplicate name, a missing partition member, a line too
// long), 3 for what is not an intact record, 4 for keys and partitions
// that do not match.
func (p *recordsRun) recordError(re *records.RecordError) error {
	msg := re.Err.Error()
	// The input's member names may be shown (escaped by run): they help
	// find the problem. Names in decrypted values are never in the chain.
	var je *jsonscan.Error
	if errors.As(re.Err, &je) {
		msg = strings.Replace(msg, je.Error(), je.NamedError(), 1)
	}
	code := exitIntegrity
	switch re.Kind {
	case records.KindJSON, records.KindSize:
		code = exitUsage
	case records.KindKey:
		code = exitKey
		msg = "key not found in the metastore (deleted, shredded, or another metastore): " + msg
	case records.KindAuth:
		if !strings.Contains(msg, "failed authentication") {
			msg = "record failed authentication: " + msg
		}
	case records.KindPartition:
		// When encrypting, and when the member is missing or ambiguous,
		// the line is at fault; a record of another partition is a key
		// matter.
		code = exitKey
		if p.encrypt || (p.fieldPart && !errors.Is(re, envelope.ErrPartitionMismatch)) {
			code = exitUsage
		}
	}
	return &cliError{code: code, msg: re.Pos.String() + ": " + msg, err: re, terse: true, input: true}
}

// partitionFromKeyID recovers the partition from an intermediate key id,
// _IK_{partition}_{service}_{product}[_{region}].
func partitionFromKeyID(id, service, product string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "_IK_")
	if !ok {
		return "", false
	}
	tail := "_" + service + "_" + product
	i := strings.LastIndex(rest, tail)
	if i <= 0 {
		return "", false
	}
	if after := rest[i+len(tail):]; after != "" && (after[0] != '_' || strings.Contains(after[1:], "_")) {
		return "", false
	}
	return rest[:i], true
}
