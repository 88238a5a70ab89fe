package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/jsonstrict"
)

// maxRecordLine is the longest line, line ending excluded, that the
// records commands read, and that records encrypt writes: a record whose
// encrypted line would be longer is refused, so that records decrypt reads
// back every line records encrypt writes.
const maxRecordLine = 64 << 20

type recordsFlags struct {
	input, output  string
	partitionField string
	fields         []string
	base64         bool
	progress       progressFlags
}

const recordsLong = `Encrypt and decrypt JSON Lines records with the Asherah record format: every
encrypted value is an Asherah DataRowRecord, {"Key":{...},"Data":"..."}, that
any Asherah client (Go, Java, C#) sharing the metastore, service and product
can decrypt, and the other way round.

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
from each object's field (a string or a number; in place only when
decrypting, since the field must be readable). When decrypting without either,
each record's partition is read from its key id (_IK_{partition}_{service}_{product}).

Blank lines are skipped (with --base64 an empty line is the empty record).
Lines are at most 64 MiB, read and written: records encrypt refuses a record
whose encrypted line would be longer (a whole record holds about 48 MiB).
An object with a member name twice, at any depth, is refused: JSON readers
disagree on which value counts. The first bad line stops the run with an
error that names its number; to a file OUT, nothing is written then.`

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
  enc-pipe records decrypt --base64 --service svc --product prod < asherah-records.jsonl`
	if encrypt {
		use, short, ex = "encrypt [IN [OUT]]", "Encrypt JSON Lines records to DataRowRecords (one per line)",
			`  enc-pipe records encrypt --partition user-42 -i events.jsonl -o events.drr.jsonl
  enc-pipe records encrypt --partition-field tenant_id < events.jsonl
  enc-pipe records encrypt --fields ssn,card --partition-field tenant_id < users.jsonl`
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
	fl.StringVar(&f.partitionField, "partition-field", "", "take each record's partition from this top-level field")
	fl.StringSliceVar(&f.fields, "fields", nil, "encrypt only these top-level fields, in place (comma-separated)")
	fl.BoolVar(&f.base64, "base64", false, "whole records are standard base64 of arbitrary bytes instead of JSON")
	f.progress.register(cmd)
	return cmd
}

// recordCodec does the work of one records run.
type recordCodec struct {
	ctx            context.Context
	factory        *envelope.SessionFactory
	sessions       map[string]*envelope.Session
	service        string
	product        string
	partition      string // fixed partition, or ""
	partitionField string
	fields         map[string]bool
	base64         bool
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
	rc := &recordCodec{
		ctx:            ctx,
		sessions:       map[string]*envelope.Session{},
		service:        a.g.service,
		product:        a.g.product,
		partitionField: f.partitionField,
		base64:         f.base64,
	}
	if len(f.fields) > 0 {
		rc.fields = map[string]bool{}
		for _, name := range f.fields {
			if name = strings.TrimSpace(name); name == "" {
				return usageErrorf("--fields: empty field name")
			}
			rc.fields[name] = true
		}
		if f.base64 {
			return usageErrorf("--base64 applies to whole records, not to --fields")
		}
		if encrypt && rc.fields[f.partitionField] {
			return usageErrorf("--partition-field %s cannot be one of --fields: it must stay readable to decrypt", f.partitionField)
		}
	}
	explicit := a.partitionExplicit(cmd)
	switch {
	case explicit && f.partitionField != "":
		return usageErrorf("use either --partition or --partition-field, not both")
	case f.partitionField != "" && !encrypt && rc.fields == nil:
		return usageErrorf("--partition-field needs --fields when decrypting whole records (the field is encrypted); without it the partition comes from each record's key id")
	case f.partitionField != "" && f.base64:
		return usageErrorf("--partition-field needs JSON records, not --base64")
	case explicit || (encrypt && f.partitionField == ""):
		if a.g.partition == "" {
			return usageErrorf("--partition: empty partition id")
		}
		rc.partition = a.g.partition
	}

	in, err := a.openInput(ctx, inName)
	if err != nil {
		return err
	}
	defer in.Close()
	be, err := a.openBackend(ctx, encrypt)
	if err != nil {
		return err
	}
	defer be.Close()
	rc.factory = be.factory
	defer rc.close()
	out, err := a.openOutput(outName, in, outputOptions{})
	if err != nil {
		return err
	}
	what := "decrypting records"
	if encrypt {
		what = "encrypting records"
	}
	src, stopProgress := a.withProgress(&f.progress, in, in.size(), what)
	err = rc.run(readTagger{ctxReader{ctx, src}}, out, encrypt)
	stopProgress()
	return finish(out, err)
}

func (rc *recordCodec) close() {
	for _, s := range rc.sessions {
		s.Close()
	}
}

// session returns the (cached) session of a partition.
func (rc *recordCodec) session(partition string) (*envelope.Session, error) {
	if s, ok := rc.sessions[partition]; ok {
		return s, nil
	}
	if len(rc.sessions) >= 1024 {
		rc.close()
		clear(rc.sessions)
	}
	s, err := rc.factory.GetSession(partition)
	if err != nil {
		return nil, keyError(err, "cannot open partition %q", partition)
	}
	rc.sessions[partition] = s
	return s, nil
}

func (rc *recordCodec) run(r io.Reader, w io.Writer, encrypt bool) error {
	sc := newLineScanner(r)
	bw := bufio.NewWriterSize(writeTagger{w}, 256<<10)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Bytes()
		if len(line) > maxRecordLine {
			return lineTooLong(lineNo)
		}
		if len(bytes.TrimSpace(line)) == 0 && !rc.base64 {
			continue // blank lines separate nothing in JSON Lines
		}
		var res []byte
		var err error
		if encrypt {
			res, err = rc.encryptLine(line)
		} else {
			res, err = rc.decryptLine(line)
		}
		if err != nil {
			return lineError(lineNo, err)
		}
		bw.Write(res)
		if err := bw.WriteByte('\n'); err != nil {
			return classifyStreamErr(err, "cannot write output")
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return lineTooLong(lineNo + 1)
		}
		return err
	}
	if err := bw.Flush(); err != nil {
		return classifyStreamErr(err, "cannot write output")
	}
	return nil
}

// newLineScanner reads lines of at most maxRecordLine bytes, ending in
// "\n", "\r\n" or at the end of the input, without their ending.
func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	// The buffer holds a whole line and its "\r\n"; a line one byte too
	// long still fits (and is refused by the caller) when it ends in "\n".
	sc.Buffer(make([]byte, 0, 256<<10), maxRecordLine+2)
	return sc
}

func lineTooLong(n int) error {
	return usageErrorf("line %d: longer than %d bytes, the line limit of the records commands", n, maxRecordLine)
}

// lineError prefixes an error with its line number, keeping its exit code.
func lineError(n int, err error) error {
	code := exitCode(err)
	if code == exitFailure {
		code = exitKey
	}
	return &cliError{code: code, msg: fmt.Sprintf("line %d", n), err: err}
}

var errNotRecord = errors.New("not a DataRowRecord")

func (rc *recordCodec) encryptLine(line []byte) ([]byte, error) {
	if rc.base64 {
		pt, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(line)))
		if err != nil {
			return nil, usageErrorf("not standard base64: %v", err)
		}
		defer clear(pt)
		return rc.sealJSON(rc.partition, pt)
	}
	if rc.fields == nil && rc.partitionField == "" {
		if err := jsonstrict.Check(line); err != nil {
			return nil, jsonInputError(err)
		}
		return rc.sealJSON(rc.partition, line)
	}
	obj, err := parseObject(line)
	if err != nil {
		return nil, err
	}
	partition := rc.partition
	if rc.partitionField != "" {
		if partition, err = obj.partition(rc.partitionField); err != nil {
			return nil, err
		}
	}
	if rc.fields == nil {
		return rc.sealJSON(partition, line)
	}
	for i := range obj {
		if !rc.fields[obj[i].key] {
			continue
		}
		if obj[i].value, err = rc.seal(partition, obj[i].value); err != nil {
			return nil, err
		}
	}
	out := obj.marshal()
	if len(out) > maxRecordLine {
		return nil, usageErrorf("with its fields encrypted, this object would take %d bytes, more than the %d-byte line limit of records decrypt", len(out), maxRecordLine)
	}
	return out, nil
}

// sealJSON encrypts the whole record pt under partition and returns its
// DataRowRecord line, or an error when that line would be longer than
// maxRecordLine.
func (rc *recordCodec) sealJSON(partition string, pt []byte) ([]byte, error) {
	out, err := rc.seal(partition, pt)
	if err != nil || len(out) <= maxRecordLine {
		return out, err
	}
	return nil, usageErrorf("a record of %d bytes takes %d bytes encrypted, more than the %d-byte line limit of records decrypt; records of this partition hold at most %d bytes",
		len(pt), len(out), maxRecordLine, maxRecordPlaintext(out, len(pt)))
}

// seal encrypts pt under partition and returns the DataRowRecord JSON.
func (rc *recordCodec) seal(partition string, pt []byte) ([]byte, error) {
	s, err := rc.session(partition)
	if err != nil {
		return nil, err
	}
	drr, err := s.Encrypt(rc.ctx, pt)
	if err != nil {
		return nil, keyError(err, "cannot encrypt")
	}
	return json.Marshal(drr)
}

// maxRecordPlaintext returns the largest plaintext whose DataRowRecord line
// fits in maxRecordLine, given the line drr of a record of n bytes under
// the same key. Only the base64 of the payload, ciphertext with nonce and
// tag, grows with the plaintext; the rest (the wrapped data key and its
// key id) does not.
func maxRecordPlaintext(drr []byte, n int) int {
	var rec envelope.DataRowRecord
	if err := json.Unmarshal(drr, &rec); err != nil {
		panic("records: internal error: cannot read back a DataRowRecord: " + err.Error())
	}
	fixed := len(drr) - base64.StdEncoding.EncodedLen(len(rec.Data))
	aeadOverhead := len(rec.Data) - n
	// base64 turns each started group of 3 bytes into 4 characters.
	return (maxRecordLine-fixed)/4*3 - aeadOverhead
}

func (rc *recordCodec) decryptLine(line []byte) ([]byte, error) {
	if rc.fields == nil {
		pt, err := rc.openJSON(rc.partition, line)
		if err != nil {
			return nil, err
		}
		if rc.base64 {
			out := []byte(base64.StdEncoding.EncodeToString(pt))
			clear(pt)
			return out, nil
		}
		if !json.Valid(pt) || bytes.ContainsAny(pt, "\r\n") {
			clear(pt)
			return nil, integrityError(errors.New("plaintext is not a one-line JSON value"), "use --base64 for records that are not JSON")
		}
		return pt, nil
	}
	obj, err := parseObject(line)
	if err != nil {
		return nil, err
	}
	partition := rc.partition
	if rc.partitionField != "" {
		if partition, err = obj.partition(rc.partitionField); err != nil {
			return nil, err
		}
	}
	for i := range obj {
		if !rc.fields[obj[i].key] {
			continue
		}
		pt, err := rc.openJSON(partition, obj[i].value)
		if err != nil {
			return nil, fmt.Errorf("field %q: %w", obj[i].key, err)
		}
		if !json.Valid(pt) {
			clear(pt)
			return nil, integrityError(errors.New("plaintext is not a JSON value"), "field %q", obj[i].key)
		}
		obj[i].value = pt
	}
	return obj.marshal(), nil
}

// openJSON decrypts a DataRowRecord given as JSON. With partition "" the
// partition is read from the record's intermediate key id.
func (rc *recordCodec) openJSON(partition string, data []byte) ([]byte, error) {
	// A record is decoded into Go structs, whose fields match names
	// without regard to case: "data" and "Data" would both set Data. A
	// name that is there twice exactly is bad JSON (a usage error, as for
	// every input line); twice up to case, the text is not a record.
	if err := jsonstrict.CheckFold(data); err != nil {
		if strict := jsonstrict.Check(data); strict != nil && !errors.Is(strict, jsonstrict.ErrSyntax) {
			return nil, jsonInputError(strict)
		}
		var je *jsonstrict.Error
		if errors.As(err, &je) {
			return nil, integrityError(je, "not a DataRowRecord")
		}
	}
	var drr envelope.DataRowRecord
	if err := json.Unmarshal(data, &drr); err != nil {
		return nil, integrityError(errNotRecord, "%v", err)
	}
	if drr.Key == nil || drr.Key.ParentKeyMeta == nil || len(drr.Data) == 0 {
		return nil, integrityError(errNotRecord, "missing Key, Key.ParentKeyMeta or Data")
	}
	if partition == "" {
		p, ok := partitionFromKeyID(drr.Key.ParentKeyMeta.ID, rc.service, rc.product)
		if !ok {
			return nil, keyError(fmt.Errorf("key id %q", drr.Key.ParentKeyMeta.ID), "record's key is not an intermediate key of service %q, product %q", rc.service, rc.product)
		}
		partition = p
	}
	s, err := rc.session(partition)
	if err != nil {
		return nil, err
	}
	pt, err := s.Decrypt(rc.ctx, drr)
	if err != nil {
		return nil, classifyRecordErr(err)
	}
	return pt, nil
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

// classifyRecordErr names the failure of Session.Decrypt.
func classifyRecordErr(err error) error {
	var ke *envelope.KeyError
	switch {
	case errors.Is(err, envelope.ErrInvalidRecord):
		return integrityError(err, "not a DataRowRecord")
	case errors.Is(err, envelope.ErrPartitionMismatch):
		return keyError(err, "record belongs to another partition")
	case errors.Is(err, envelope.ErrNotFound):
		return keyError(err, "key not found in the metastore (deleted, shredded, or another metastore)")
	case errors.As(err, &ke):
		return keyError(err, "cannot load the record's key")
	case errors.Is(err, envelope.ErrDecrypt):
		return integrityError(err, "record failed authentication")
	}
	return keyError(err, "cannot decrypt")
}

// object is a JSON object with its members in input order.
type object []member

type member struct {
	key   string
	value json.RawMessage
}

// jsonInputError describes a jsonstrict error in an input line.
func jsonInputError(err error) error {
	var je *jsonstrict.Error
	switch {
	case errors.As(err, &je) && errors.Is(je, jsonstrict.ErrDuplicateName):
		return usageErrorf("%v (JSON readers disagree on which value counts)", je)
	case je != nil:
		return usageErrorf("%v", je)
	}
	return usageErrorf("not valid JSON")
}

// parseObject reads a JSON object whose member names are all different,
// at every depth.
func parseObject(line []byte) (object, error) {
	if err := jsonstrict.Check(line); err != nil && !errors.Is(err, jsonstrict.ErrSyntax) {
		return nil, jsonInputError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, usageErrorf("not a JSON object")
	}
	var obj object
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, usageErrorf("not valid JSON: %v", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, usageErrorf("not valid JSON: %v", err)
		}
		obj = append(obj, member{key, v})
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, usageErrorf("not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, usageErrorf("not valid JSON: data after the object")
	}
	return obj, nil
}

// partition reads a partition id from a string or number field.
func (o object) partition(field string) (string, error) {
	for _, m := range o {
		if m.key != field {
			continue
		}
		var s string
		if err := json.Unmarshal(m.value, &s); err == nil {
			if s == "" {
				return "", usageErrorf("partition field %q is empty", field)
			}
			return s, nil
		}
		var n json.Number
		if err := json.Unmarshal(m.value, &n); err == nil {
			return n.String(), nil
		}
		return "", usageErrorf("partition field %q is not a string or a number", field)
	}
	return "", usageErrorf("partition field %q is missing", field)
}

func (o object) marshal() []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.Encode(m.key)
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		b.Write(m.value)
	}
	b.WriteByte('}')
	return b.Bytes()
}
