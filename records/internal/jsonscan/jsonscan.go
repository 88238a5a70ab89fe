// Package jsonscan checks a JSON text in one pass the way a record
// encrypter needs: it validates the text (RFC 8259, as encoding/json.Valid
// accepts it), refuses objects with two members of the same name, finds the
// value at a path of member names, and returns the spans of the top-level
// members so that a caller can rewrite some of them and copy the rest.
//
// Member names are compared after decoding escapes, with invalid UTF-8 and
// lone surrogates replaced by U+FFFD as encoding/json does, so that
// {"a":1,"\u0061":2} is a duplicate. Duplicates are refused because
// decoders disagree on which one wins: encoding/json and most libraries keep
// the last, some the first, and a record whose tenant field one reader sees
// as "a" and another as "b" defeats a partition check.
//
// A Scanner is not safe for concurrent use; it keeps buffers between calls.
package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors, matched with errors.Is through *Error.
var (
	// ErrSyntax means the text is not one JSON value.
	ErrSyntax = errors.New("invalid JSON")
	// ErrDuplicateName means an object has two members with the same name.
	ErrDuplicateName = errors.New("duplicate member name")
	// ErrAmbiguousName means a member on the path has a sibling whose name
	// differs from it only in letter case: readers that match names
	// case-insensitively (encoding/json into a struct does) could read the
	// sibling instead.
	ErrAmbiguousName = errors.New("member name differs from another only in letter case")
	// ErrTooDeep means the text nests arrays and objects deeper than
	// MaxDepth.
	ErrTooDeep = errors.New("JSON nested too deeply")
)

// MaxDepth bounds the nesting of arrays and objects, as encoding/json does.
const MaxDepth = 10000

// Error reports where a text failed. Its message names a byte offset,
// never the text's content.
type Error struct {
	Offset int   // byte offset in the text
	Err    error // ErrSyntax, ErrDuplicateName, ErrAmbiguousName or ErrTooDeep
	What   string
}

func (e *Error) Error() string {
	if e.What != "" {
		return fmt.Sprintf("%v at byte %d: %s", e.Err, e.Offset, e.What)
	}
	return fmt.Sprintf("%v at byte %d", e.Err, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// Member is one member of the top-level object.
type Member struct {
	Name       []byte // decoded name; aliases the text when it has no escapes
	NameStart  int    // offset of the name's opening quote
	NameEnd    int    // offset after its closing quote
	ValueStart int    // offset of the value's first byte
	ValueEnd   int    // offset after the value's last byte
}

// Result is what Scan found.
type Result struct {
	// Members are the top-level object's members in order, when asked for
	// and the text is an object.
	Members []Member
	// Object reports whether the top-level value is an object.
	Object bool
	// Found reports whether the path named a value; Value is its span.
	Found      bool
	ValueStart int
	ValueEnd   int
}

// Scanner scans texts, reusing its buffers.
type Scanner struct {
	data    []byte
	pos     int
	path    [][]byte
	members bool
	res     Result
	names   [][][]byte            // per depth: names of the object being scanned
	sets    []map[string]struct{} // per depth: the same names, for large objects
	decoded [][]byte              // decoded names, reused
	nDec    int
}

// Scan validates data and returns what it found. path, when not empty, is
// a list of member names from the top-level object down (a.b is
// {"a":{"b":…}}); members asks for the top-level members. The Result and
// its Members are valid until the next Scan.
func (s *Scanner) Scan(data []byte, path [][]byte, members bool) (*Result, error) {
	s.data, s.pos, s.path, s.members = data, 0, path, members
	s.res = Result{Members: s.res.Members[:0]}
	s.nDec = 0
	s.skipSpace()
	if s.pos == len(data) {
		return nil, s.fail(ErrSyntax, "empty text")
	}
	if data[s.pos] == '{' {
		s.res.Object = true
	}
	pi := -1
	if len(path) > 0 {
		pi = 0
	}
	if err := s.value(0, pi); err != nil {
		return nil, err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return nil, s.fail(ErrSyntax, "data after the value")
	}
	return &s.res, nil
}

func (s *Scanner) fail(err error, what string) error {
	return &Error{Offset: s.pos, Err: err, What: what}
}

func (s *Scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value at s.pos. pi is the index in s.path of the name
// that a member of this value (if it is an object) must have to stay on the
// path, or -1 when the value is off the path.
func (s *Scanner) value(depth, pi int) error {
	if s.pos >= len(s.data) {
		return s.fail(ErrSyntax, "unexpected end")
	}
	switch c := s.data[s.pos]; {
	case c == '{':
		return s.object(depth+1, pi)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str(false)
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	}
	return s.fail(ErrSyntax, "unexpected character")
}

func (s *Scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(lit)) {
		return s.fail(ErrSyntax, "bad literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *Scanner) number() error {
	d := s.data
	i := s.pos
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		s.pos = i
		return s.fail(ErrSyntax, "bad number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.fail(ErrSyntax, "bad number")
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			s.pos = i
			return s.fail(ErrSyntax, "bad number")
		}
	}
	s.pos = i
	return nil
}

// str scans a string at s.pos. With name it returns the decoded content.
func (s *Scanner) str(name bool) ([]byte, error) {
	d := s.data
	start := s.pos + 1
	i := start
	plain := true // no escapes and ASCII only: the raw bytes are the name
	for {
		if i >= len(d) {
			s.pos = i
			return nil, s.fail(ErrSyntax, "unterminated string")
		}
		c := d[i]
		if c == '"' {
			break
		}
		if c < 0x20 {
			s.pos = i
			return nil, s.fail(ErrSyntax, "control character in string")
		}
		if c >= 0x80 {
			plain = false
			i++
			continue
		}
		if c != '\\' {
			i++
			continue
		}
		plain = false
		if i+1 >= len(d) {
			s.pos = i
			return nil, s.fail(ErrSyntax, "unterminated string")
		}
		switch d[i+1] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			i += 2
		case 'u':
			if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
				s.pos = i
				return nil, s.fail(ErrSyntax, "bad \\u escape")
			}
			i += 6
		default:
			s.pos = i
			return nil, s.fail(ErrSyntax, "bad escape")
		}
	}
	s.pos = i + 1
	if !name {
		return nil, nil
	}
	raw := d[start:i]
	if plain {
		return raw, nil
	}
	return s.decodeName(raw), nil
}

func isHex4(b []byte) bool {
	for _, c := range b[:4] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		default:
			r |= rune(c - 'A' + 10)
		}
	}
	return r
}

// decodeName decodes an already validated string body the way
// encoding/json does: escapes resolved, surrogate pairs joined, lone
// surrogates and invalid UTF-8 bytes replaced by U+FFFD.
func (s *Scanner) decodeName(raw []byte) []byte {
	if s.nDec == len(s.decoded) {
		s.decoded = append(s.decoded, nil)
	}
	out := s.decoded[s.nDec][:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			switch raw[i+1] {
			case 'u':
				r := hex4(raw[i+2:])
				i += 6
				if utf16.IsSurrogate(r) {
					r2 := utf8.RuneError
					if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
						if dec := utf16.DecodeRune(r, hex4(raw[i+2:])); dec != utf8.RuneError {
							r2 = dec
							i += 6
						}
					}
					r = r2
				}
				out = utf8.AppendRune(out, r)
			default:
				out = append(out, unescape(raw[i+1]))
				i += 2
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			out = utf8.AppendRune(out, r)
			i += size
		}
	}
	s.decoded[s.nDec] = out
	s.nDec++
	return out
}

func unescape(c byte) byte {
	switch c {
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return c // '"', '\\', '/'
}

func (s *Scanner) array(depth int) error {
	if depth > MaxDepth {
		return s.fail(ErrTooDeep, "")
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if err := s.value(depth, -1); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail(ErrSyntax, "unterminated array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.fail(ErrSyntax, "expected , or ]")
		}
	}
}

// smallObject is the member count up to which names are compared one by
// one; larger objects use a set, so that a text of n members costs O(n).
const smallObject = 16

// seen reports whether name is among names (the names of the object at
// depth so far).
func (s *Scanner) seen(depth int, names [][]byte, name []byte) bool {
	if len(names) < smallObject {
		for _, n := range names {
			if bytes.Equal(n, name) {
				return true
			}
		}
		return false
	}
	m := s.sets[depth-1]
	if m == nil {
		m = make(map[string]struct{})
		s.sets[depth-1] = m
	}
	if len(m) == 0 {
		for _, n := range names {
			m[string(n)] = struct{}{}
		}
	}
	if _, ok := m[string(name)]; ok {
		return true
	}
	m[string(name)] = struct{}{}
	return false
}

func (s *Scanner) object(depth, pi int) error {
	if depth > MaxDepth {
		return s.fail(ErrTooDeep, "")
	}
	for len(s.names) < depth {
		s.names = append(s.names, nil)
	}
	for len(s.sets) < depth {
		s.sets = append(s.sets, nil)
	}
	names := s.names[depth-1][:0]
	defer func() {
		s.names[depth-1] = names[:0]
		if m := s.sets[depth-1]; len(m) > 0 {
			clear(m)
		}
	}()
	top := depth == 1 && s.members
	var want []byte
	if pi >= 0 {
		want = s.path[pi]
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.fail(ErrSyntax, "expected a member name")
		}
		nameStart := s.pos
		name, err := s.str(true)
		if err != nil {
			return err
		}
		nameEnd := s.pos
		if s.seen(depth, names, name) {
			s.pos = nameStart
			return s.fail(ErrDuplicateName, "")
		}
		names = append(names, name)
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail(ErrSyntax, "expected :")
		}
		s.pos++
		s.skipSpace()
		childPi := -1
		target := false
		if want != nil {
			if bytes.Equal(name, want) {
				if pi+1 == len(s.path) {
					target = true
				} else if s.pos < len(s.data) && s.data[s.pos] == '{' {
					childPi = pi + 1
				}
			} else if bytes.EqualFold(name, want) {
				s.pos = nameStart
				return s.fail(ErrAmbiguousName, "")
			}
		}
		valueStart := s.pos
		if err := s.value(depth, childPi); err != nil {
			return err
		}
		if target {
			s.res.Found, s.res.ValueStart, s.res.ValueEnd = true, valueStart, s.pos
		}
		if top {
			s.res.Members = append(s.res.Members, Member{Name: name, NameStart: nameStart, NameEnd: nameEnd, ValueStart: valueStart, ValueEnd: s.pos})
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.fail(ErrSyntax, "unterminated object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.fail(ErrSyntax, "expected , or }")
		}
	}
}
