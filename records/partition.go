package records

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/enc-pipe/enc-pipe/envelope"
	"github.com/enc-pipe/enc-pipe/internal/jsonscan"
)

// PartitionSource says where a record's partition (tenant) comes from. The
// zero value is unset: an Encrypter refuses it, a Decrypter then takes each
// record's partition from the key id in its ciphertext.
type PartitionSource struct {
	kind  partitionKind
	value string   // fixed id or header name
	path  [][]byte // field path
}

type partitionKind int

const (
	partitionUnset partitionKind = iota
	partitionFixed
	partitionKey
	partitionHeader
	partitionField
)

// FixedPartition puts every record in partition id.
func FixedPartition(id string) PartitionSource {
	return PartitionSource{kind: partitionFixed, value: id}
}

// KeyPartition takes the partition from the record key (its bytes as a
// string).
func KeyPartition() PartitionSource { return PartitionSource{kind: partitionKey} }

// HeaderPartition takes the partition from the record's header name. A
// record with two headers of that name is refused: readers disagree on
// which one counts.
func HeaderPartition(name string) PartitionSource {
	return PartitionSource{kind: partitionHeader, value: name}
}

// FieldPartition takes the partition from a member of the JSON record
// value: "tenant" for a top-level member, "org.tenant" for a nested one
// (names containing "." cannot be addressed). The member must be a
// non-empty string or a number (its text is the id). A record whose object
// on the path has another member whose name differs only in letter case
// ("Tenant") is refused, since some readers would take that one.
func FieldPartition(path string) PartitionSource {
	ps := PartitionSource{kind: partitionField, value: path}
	for _, seg := range strings.Split(path, ".") {
		ps.path = append(ps.path, []byte(seg))
	}
	return ps
}

// ParsePartitionSource parses the command-line form: "key", "header:NAME",
// "field:PATH" or "fixed:ID".
func ParsePartitionSource(s string) (PartitionSource, error) {
	kind, arg, _ := strings.Cut(s, ":")
	var ps PartitionSource
	switch kind {
	case "key":
		if arg != "" {
			return ps, fmt.Errorf("partition source %q: key takes no argument", s)
		}
		return KeyPartition(), nil
	case "header":
		ps = HeaderPartition(arg)
	case "field":
		ps = FieldPartition(arg)
	case "fixed":
		ps = FixedPartition(arg)
	default:
		return ps, fmt.Errorf("partition source %q: want key, header:NAME, field:PATH or fixed:ID", s)
	}
	return ps, ps.validate()
}

// IsSet reports whether ps names a source.
func (ps PartitionSource) IsSet() bool { return ps.kind != partitionUnset }

// String is the command-line form.
func (ps PartitionSource) String() string {
	switch ps.kind {
	case partitionFixed:
		return "fixed:" + ps.value
	case partitionKey:
		return "key"
	case partitionHeader:
		return "header:" + ps.value
	case partitionField:
		return "field:" + ps.value
	}
	return "key id"
}

func (ps PartitionSource) validate() error {
	switch ps.kind {
	case partitionFixed:
		if ps.value == "" {
			return errors.New("records: fixed partition id is empty")
		}
	case partitionHeader:
		if ps.value == "" {
			return errors.New("records: partition header name is empty")
		}
	case partitionField:
		for _, seg := range ps.path {
			if len(seg) == 0 {
				return fmt.Errorf("records: partition field path %q has an empty name", ps.value)
			}
		}
	}
	return nil
}

// fromRecord returns the partition of r for the kinds that do not need the
// JSON value (fixed, key, header).
func (ps PartitionSource) fromRecord(r *Record) (string, error) {
	switch ps.kind {
	case partitionFixed:
		return ps.value, nil
	case partitionKey:
		if len(r.Key) == 0 {
			return "", recordErrf(KindPartition, "record has no key to take the partition from")
		}
		return string(r.Key), nil
	case partitionHeader:
		var found []byte
		n := 0
		for _, h := range r.Headers {
			if h.Key == ps.value {
				found = h.Value
				n++
			}
		}
		switch {
		case n == 0:
			return "", recordErrf(KindPartition, "partition header %q is missing", ps.value)
		case n > 1:
			return "", recordErrf(KindPartition, "partition header %q appears %d times", ps.value, n)
		case len(found) == 0:
			return "", recordErrf(KindPartition, "partition header %q is empty", ps.value)
		}
		return string(found), nil
	}
	panic("records: internal error: fromRecord on a field partition")
}

// fromScan returns the partition found by a jsonscan of text along ps.path.
func (ps PartitionSource) fromScan(text []byte, res *jsonscan.Result) (string, error) {
	if !res.Found {
		return "", recordErrf(KindPartition, "partition field %q is missing", ps.value)
	}
	v := text[res.ValueStart:res.ValueEnd]
	switch {
	case v[0] == '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", recordErrf(KindPartition, "partition field %q: %v", ps.value, err)
		}
		if s == "" {
			return "", recordErrf(KindPartition, "partition field %q is empty", ps.value)
		}
		return s, nil
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return string(v), nil
	}
	return "", recordErrf(KindPartition, "partition field %q is not a string or a number", ps.value)
}

// inputErr turns the jsonscan error of an input value into a record
// error: KindPartition for a case variant of the partition field's names,
// KindJSON otherwise. Its message names an offset, never content.
func inputErr(err error) error {
	kind := KindJSON
	if errors.Is(err, jsonscan.ErrAmbiguousName) {
		kind = KindPartition
	}
	return recordErr(kind, err)
}

// partitionFromKeyID recovers the partition from an intermediate key id,
// _IK_{partition}{tail}[_{region}], where tail is "_{service}_{product}".
func partitionFromKeyID(id, tail string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "_IK_")
	if !ok {
		return "", false
	}
	if p, ok := strings.CutSuffix(rest, tail); ok && p != "" {
		return p, true
	}
	i := strings.LastIndex(rest, tail+"_")
	if i <= 0 || !envelope.IsRegionSuffix(rest[i+len(tail)+1:]) {
		return "", false
	}
	return rest[:i], true
}
