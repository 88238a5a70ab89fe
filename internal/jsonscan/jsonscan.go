// Package jsonscan checks a JSON text in one pass the way a record
// encrypter needs: it validates the text (RFC 8259, exactly what
// encoding/json.Valid accepts, nesting limit included), refuses text that
// different JSON readers would read differently, finds the value at a path
// of member names, and returns the spans of the top-level members so that
// a caller can rewrite some of them and copy the rest.
//
// Refused as ambiguous, as I-JSON (RFC 7493) requires:
//
//   - an object with two members of the same name, at any depth. Names are
//     compared after decoding escapes, so {"a":1,"\u0061":2} is a
//     duplicate. RFC 8259 leaves such objects to the reader: encoding/json
//     keeps the last value, other readers the first, so a program that
//     checks one member (a tenant) and hands the text on can be made to
//     check a value the next reader never sees.
//   - a member name that is not valid UTF-8 or holds an unpaired surrogate
//     escape ("\ud800" alone): readers decode those to different strings
//     (encoding/json to U+FFFD, others keep or drop them).
//   - with a path, a member on the path with a sibling whose name differs
//     only in letter case ("Tenant" beside "tenant"), and with Fold, any
//     two such members: encoding/json matches names to struct fields
//     without regard to case, so {"Data":1,"data":2} sets one field twice.
//     Case is compared under Unicode simple folding (bytes.EqualFold: the
//     Kelvin sign is a K), as encoding/json does.
//
// Invalid text is reported first (ErrSyntax, ErrTooDeep), then the first
// duplicate or invalid name, then the first case variant: a name error
// is returned only for valid JSON, and ErrAmbiguousName only for text
// free of other problems.
//
// Errors name a byte offset, never the text's content; the offending name
// is in Error.Name for callers that may show it.
//
// A Scanner is not safe for concurrent use; it keeps buffers between
// calls, and scanning allocates nothing once they have grown. Check uses
// pooled Scanners and is safe for concurrent use.
package jsonscan

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Errors, matched with errors.Is through *Error.
var (
	// ErrSyntax means the text is not one JSON value.
	ErrSyntax = errors.New("not valid JSON")
	// ErrDuplicateName means an object has two members with the same name.
	ErrDuplicateName = errors.New("duplicate member name")
	// ErrInvalidName means a member name is not valid UTF-8 or holds an
	// unpaired surrogate escape.
	ErrInvalidName = errors.New("member name is not valid UTF-8")
	// ErrAmbiguousName means two member names of an object differ only in
	// letter case, one of them on the path (or any two, with Fold).
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
	Offset int    // byte offset in the text (of the name's opening quote for a name)
	Err    error  // ErrSyntax, ErrDuplicateName, ErrInvalidName, ErrAmbiguousName or ErrTooDeep
	What   string // detail of a syntax error
	// Name is the offending member name: decoded for ErrDuplicateName
	// and ErrAmbiguousName (the second occurrence), as spelled in the
	// text for ErrInvalidName. It is content of the text: Error leaves it
	// out; NamedError shows it.
	Name string
}

func (e *Error) Error() string {
	if e.What != "" {
		return fmt.Sprintf("%v at byte %d: %s", e.Err, e.Offset, e.What)
	}
	return fmt.Sprintf("%v at byte %d", e.Err, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// maxNameShown bounds how much of a name NamedError shows.
const maxNameShown = 64

// NamedError is Error's message with the member name, for a user who may
// see the text anyway: `duplicate member name "tenant" at byte 31` (`…,
// up to letter case` for ErrAmbiguousName). The
// name is quoted with Go escapes (control and format characters are made
// visible) and cut to 64 bytes.
func (e *Error) NamedError() string {
	name := e.Name
	if len(name) > maxNameShown {
		name = name[:maxNameShown] + "..."
	}
	switch e.Err {
	case ErrDuplicateName, ErrInvalidName:
		return fmt.Sprintf("%v %s at byte %d", e.Err, strconv.Quote(name), e.Offset)
	case ErrAmbiguousName:
		return fmt.Sprintf("duplicate member name %s at byte %d, up to letter case", strconv.Quote(name), e.Offset)
	}
	return e.Error()
}

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

// Options say what Scan looks for besides validity and duplicate names.
type Options struct {
	// Path, when not empty, is a list of member names from the top-level
	// object down (a.b is {"a":{"b":…}}): Scan reports the value there,
	// and refuses a member on the path with a case variant beside it.
	Path [][]byte
	// Members asks for the top-level object's members.
	Members bool
	// Fold refuses any two names of an object that differ only in letter
	// case, at every depth (text to be decoded into Go structs).
	Fold bool
}

// Scanner scans texts, reusing its buffers.
type Scanner struct {
	data    []byte
	pos     int
	opt     Options
	res     Result
	nameErr *Error   // the first duplicate or invalid name, reported if the text is valid
	ambig   *Error   // the first case variant, reported if nothing worse
	levels  []level  // per object depth
	decoded [][]byte // decoded names, reused
	nDec    int
	seed    maphash.Seed
	foldBuf []byte
}

// Check reports whether data is one valid JSON text with no ambiguous
// member names (Scan with no options). It is safe for concurrent use.
func Check(data []byte) error {
	s := scanners.Get().(*Scanner)
	_, err := s.Scan(data, Options{})
	s.forget()
	scanners.Put(s)
	return err
}

var scanners = sync.Pool{New: func() any { return new(Scanner) }}

// forget drops the references to the last text.
func (s *Scanner) forget() {
	s.data = nil
	clear(s.res.Members)
	s.res.Members = s.res.Members[:0]
	for i := range s.decoded {
		clear(s.decoded[i])
	}
	clear(s.foldBuf)
}

// Scan validates data and returns what it found. The Result and its
// Members are valid until the next Scan; an error is an *Error.
func (s *Scanner) Scan(data []byte, opt Options) (*Result, error) {
	s.data, s.pos, s.opt = data, 0, opt
	s.res = Result{Members: s.res.Members[:0]}
	s.nameErr, s.ambig = nil, nil
	s.nDec = 0
	s.skipSpace()
	if s.pos == len(data) {
		return nil, s.fail(ErrSyntax, "empty text")
	}
	if data[s.pos] == '{' {
		s.res.Object = true
	}
	pi := -1
	if len(opt.Path) > 0 {
		pi = 0
	}
	if err := s.value(0, pi); err != nil {
		return nil, err
	}
	s.skipSpace()
	if s.pos != len(data) {
		return nil, s.fail(ErrSyntax, "data after the value")
	}
	if s.nameErr != nil {
		return nil, s.nameErr
	}
	if s.ambig != nil {
		return nil, s.ambig
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

// value scans one value at s.pos. pi is the index in s.opt.Path of the
// name that a member of this value (if it is an object) must have to stay
// on the path, or -1 when the value is off the path.
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
		return s.skipString()
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

// stringEnd scans the string opening at s.pos up to its closing quote and
// returns the offset of that quote, whether the body holds an escape, and
// whether it holds a byte outside ASCII. Invalid UTF-8 is accepted, as
// encoding/json accepts it in strings.
func (s *Scanner) stringEnd() (end int, escaped, nonASCII bool, err error) {
	d := s.data
	i := s.pos + 1
	for {
		if i >= len(d) {
			s.pos = i
			return 0, false, false, s.fail(ErrSyntax, "unterminated string")
		}
		c := d[i]
		switch {
		case c == '"':
			return i, escaped, nonASCII, nil
		case c < 0x20:
			s.pos = i
			return 0, false, false, s.fail(ErrSyntax, "control character in string")
		case c >= 0x80:
			nonASCII = true
			i++
		case c != '\\':
			i++
		default:
			escaped = true
			if i+1 >= len(d) {
				s.pos = i
				return 0, false, false, s.fail(ErrSyntax, "unterminated string")
			}
			switch d[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(d) || !isHex4(d[i+2:i+6]) {
					s.pos = i
					return 0, false, false, s.fail(ErrSyntax, "bad \\u escape")
				}
				i += 6
			default:
				s.pos = i
				return 0, false, false, s.fail(ErrSyntax, "bad escape")
			}
		}
	}
}

func (s *Scanner) skipString() error {
	end, _, _, err := s.stringEnd()
	if err != nil {
		return err
	}
	s.pos = end + 1
	return nil
}

// name scans a member name at s.pos and returns it decoded, and whether
// it is valid (UTF-8, no unpaired surrogate); an invalid name is returned
// as spelled.
func (s *Scanner) name() (name []byte, valid bool, err error) {
	start := s.pos
	end, escaped, nonASCII, err := s.stringEnd()
	if err != nil {
		return nil, false, err
	}
	s.pos = end + 1
	raw := s.data[start+1 : end]
	switch {
	case !escaped && !nonASCII:
		return raw, true, nil
	case !escaped:
		return raw, utf8.Valid(raw), nil
	}
	if name, ok := s.decodeName(raw); ok {
		return name, true, nil
	}
	return raw, false, nil
}

// nameError records the first duplicate or invalid name.
func (s *Scanner) nameError(err error, offset int, name []byte) {
	if s.nameErr == nil {
		s.nameErr = &Error{Offset: offset, Err: err, Name: string(name)}
	}
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

// decodeName decodes an already scanned string body: escapes resolved and
// surrogate pairs joined. It returns false for invalid UTF-8 and unpaired
// surrogates.
func (s *Scanner) decodeName(raw []byte) ([]byte, bool) {
	if s.nDec == len(s.decoded) {
		s.decoded = append(s.decoded, nil)
	}
	out := s.decoded[s.nDec][:0]
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\' && raw[i+1] == 'u':
			r := hex4(raw[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return nil, false
				}
				if r = utf16.DecodeRune(r, hex4(raw[i+2:])); r == unicode.ReplacementChar {
					return nil, false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
		case c == '\\':
			out = append(out, unescape(raw[i+1]))
			i += 2
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false
			}
			out = append(out, raw[i:i+size]...)
			i += size
		}
	}
	s.decoded[s.nDec] = out
	s.nDec++
	return out, true
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

func (s *Scanner) object(depth, pi int) error {
	if depth > MaxDepth {
		return s.fail(ErrTooDeep, "")
	}
	for len(s.levels) < depth {
		s.levels = append(s.levels, level{})
	}
	lv := &s.levels[depth-1]
	lv.reset()
	top := depth == 1 && s.opt.Members
	var want []byte
	if pi >= 0 {
		want = s.opt.Path[pi]
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
		name, valid, err := s.name()
		if err != nil {
			return err
		}
		nameEnd := s.pos
		variant := false
		if !valid {
			s.nameError(ErrInvalidName, nameStart, name)
		} else if s.nameErr == nil {
			var dup bool
			if dup, variant = s.add(lv, name); dup {
				s.nameError(ErrDuplicateName, nameStart, name)
			}
		}
		childPi := -1
		target := false
		if want != nil {
			if bytes.Equal(name, want) {
				if pi+1 == len(s.opt.Path) {
					target = true
				} else {
					childPi = pi + 1
				}
			} else if bytes.EqualFold(name, want) {
				variant = true
			}
		}
		if variant && s.ambig == nil {
			s.ambig = &Error{Offset: nameStart, Err: ErrAmbiguousName, Name: string(name)}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.fail(ErrSyntax, "expected :")
		}
		s.pos++
		s.skipSpace()
		valueStart := s.pos
		if childPi >= 0 && (s.pos >= len(s.data) || s.data[s.pos] != '{') {
			childPi = -1
		}
		if err := s.value(depth, childPi); err != nil {
			return err
		}
		// The child object reused the levels above this one; lv is
		// still valid (levels only grow before lv is taken).
		lv = &s.levels[depth-1]
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

// smallObject is the member count up to which names are compared one by
// one; larger objects use hash indexes, so that a text of n members costs
// O(n).
const smallObject = 16

// level holds the member names of the object being scanned at one depth.
// The names point into the text or into the Scanner's decoded buffers,
// which stay put until the next Scan.
type level struct {
	names [][]byte
	// A hash index, built once an object passes smallObject members:
	// hash → 1 + index of the last name with that hash, and for each name
	// 1 + index of the previous one with the same hash (0: none). With
	// Fold the hash is of the case-folded name, so that names equal up to
	// case, exactly equal ones included, share a chain.
	index map[uint64]int32
	next  []int32
}

func (lv *level) reset() {
	clear(lv.names) // no reference to an old text stays reachable
	lv.names = lv.names[:0]
	if len(lv.index) > 0 {
		clear(lv.index)
	}
	lv.next = lv.next[:0]
}

// add records name in lv and reports whether lv already had it (dup) and,
// with Fold, whether it had a name equal to it up to case (variant).
func (s *Scanner) add(lv *level, name []byte) (dup, variant bool) {
	fold := s.opt.Fold
	if len(lv.names) < smallObject {
		for _, n := range lv.names {
			if bytes.Equal(n, name) {
				return true, false
			}
			if fold && !variant && bytes.EqualFold(n, name) {
				variant = true
			}
		}
		lv.names = append(lv.names, name)
		if len(lv.names) == smallObject {
			s.buildIndex(lv)
		}
		return false, variant
	}
	h := s.hash(name)
	for i := lv.index[h]; i != 0; i = lv.next[i-1] {
		n := lv.names[i-1]
		if bytes.Equal(n, name) {
			return true, false
		}
		if fold && bytes.EqualFold(n, name) {
			variant = true
		}
	}
	lv.names = append(lv.names, name)
	lv.insert(len(lv.names)-1, h)
	return false, variant
}

// buildIndex builds lv's hash index from its names.
func (s *Scanner) buildIndex(lv *level) {
	if s.seed == (maphash.Seed{}) {
		s.seed = maphash.MakeSeed()
	}
	if lv.index == nil {
		lv.index = make(map[uint64]int32)
	}
	for i, n := range lv.names {
		lv.insert(i, s.hash(n))
	}
}

func (lv *level) insert(i int, h uint64) {
	lv.next = append(lv.next, lv.index[h])
	lv.index[h] = int32(i + 1)
}

// hash hashes name, case-folded with Fold so that names equal under
// bytes.EqualFold hash alike: each rune is replaced by the smallest rune
// of its simple folding orbit (names are valid UTF-8 by then).
func (s *Scanner) hash(name []byte) uint64 {
	if !s.opt.Fold {
		return maphash.Bytes(s.seed, name)
	}
	b := s.foldBuf[:0]
	for i := 0; i < len(name); {
		c := name[i]
		if c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			b = append(b, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		b = utf8.AppendRune(b, foldRune(r))
		i += n
	}
	s.foldBuf = b
	return maphash.Bytes(s.seed, b)
}

// foldRune returns the smallest rune of r's simple case folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
