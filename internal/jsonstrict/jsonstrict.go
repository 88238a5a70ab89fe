// Package jsonstrict refuses JSON text that different JSON readers would
// read differently.
//
// RFC 8259 (section 4) leaves objects with duplicate member names to the
// reader: encoding/json keeps the last value, some readers keep the first,
// others fail. A program that checks one member (a tenant, a partition)
// and hands the text to another reader can be made to check a value the
// other reader never sees. Check refuses such text, as I-JSON (RFC 7493)
// requires: no duplicate names, and names that are valid UTF-8 with no
// unpaired surrogate escapes, so that every reader decodes a name to the
// same string. Names are compared after unescaping: "a" and "\u0061" are
// the same name.
//
// CheckFold also refuses names that differ only in case, for text that is
// decoded into Go structs: encoding/json matches member names to fields
// without regard to case, so {"Data":1,"data":2} sets one field twice.
//
// Both accept exactly the text json.Valid accepts otherwise, nesting limit
// included (10000 levels). They allocate only for objects with more than a
// few members, and are safe for concurrent use.
package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

var (
	// ErrSyntax means the text is not one valid JSON value.
	ErrSyntax = errors.New("jsonstrict: not valid JSON")
	// ErrDuplicateName means an object has two members with the same name.
	ErrDuplicateName = errors.New("jsonstrict: duplicate member name")
	// ErrInvalidName means a member name is not valid UTF-8 or holds an
	// unpaired surrogate escape (\ud800 alone, for example).
	ErrInvalidName = errors.New("jsonstrict: member name is not valid UTF-8")
)

// Error is the error of Check and CheckFold for a member name: Err is
// ErrDuplicateName or ErrInvalidName, Name the name (decoded for a
// duplicate, as spelled in the text for an invalid one), Offset the byte
// offset of the name's opening quote in the text.
type Error struct {
	Err    error
	Name   string
	Offset int
}

// maxNameInError bounds how much of a name Error prints.
const maxNameInError = 64

func (e *Error) Error() string {
	name := e.Name
	if len(name) > maxNameInError {
		name = name[:maxNameInError] + "..."
	}
	// %q escapes control and format characters: the name is untrusted.
	return fmt.Sprintf("%s %q at byte %d", strings.TrimPrefix(e.Err.Error(), "jsonstrict: "), name, e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// Check returns nil when data is one valid JSON value (as json.Valid says)
// in which no object, at any depth, has two members with the same name,
// and every member name is valid UTF-8. Otherwise it returns ErrSyntax or
// an *Error.
func Check(data []byte) error { return check(data, false) }

// CheckFold is Check, and two names that are equal under Unicode simple
// case folding (as encoding/json matches names to struct fields: "Key",
// "key", "KEY" and "\u212aey", with the Kelvin sign) are duplicates too.
func CheckFold(data []byte) error { return check(data, true) }

func check(data []byte, fold bool) error {
	if !json.Valid(data) {
		return ErrSyntax
	}
	// data is valid from here on: every string is closed, brackets match,
	// and a string followed by ':' is a member name.
	w := walkers.Get().(*walker)
	defer w.release()
	w.fold = fold
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case '{':
			w.push()
			i++
		case '}':
			w.pop()
			i++
		case '[':
			w.pushArray()
			i++
		case ']':
			w.pop()
			i++
		case '"':
			end := stringEnd(data, i)
			if colon(data, end) {
				if err := w.name(data, i, end); err != nil {
					return err
				}
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// stringEnd returns the offset just past the closing quote of the string
// that opens at data[start].
func stringEnd(data []byte, start int) int {
	i := start + 1
	for {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			panic("jsonstrict: internal error: unterminated string in valid JSON")
		}
		i += q
		// The quote is escaped when an odd number of backslashes precede it.
		n := 0
		for data[i-1-n] == '\\' {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// colon reports whether the next byte after whitespace is ':'.
func colon(data []byte, i int) bool {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// smallObject is how many names an object keeps in a slice, compared one
// by one, before it builds a map.
const smallObject = 16

// names holds the member names seen so far in one open object. The names
// point into the text or into the walker's arena, never into memory that
// is written again.
type names struct {
	list [][]byte
	set  map[string]struct{}
}

func (n *names) reset() {
	clear(n.list)
	n.list = n.list[:0]
	n.set = nil
}

// add records name and reports whether it was already there.
func (n *names) add(name []byte) bool {
	if n.set != nil {
		if _, dup := n.set[string(name)]; dup {
			return true
		}
		n.set[string(name)] = struct{}{}
		return false
	}
	for _, s := range n.list {
		if bytes.Equal(s, name) {
			return true
		}
	}
	n.list = append(n.list, name)
	if len(n.list) > smallObject {
		n.set = make(map[string]struct{}, 2*len(n.list))
		for _, s := range n.list {
			n.set[string(s)] = struct{}{}
		}
	}
	return false
}

// walker tracks the open containers: for each, nil (an array) or the
// names of an object. Entries above the top are kept for reuse.
type walker struct {
	fold  bool
	stack []*names
	depth int
	arena []byte // decoded or folded names; only ever appended to
}

var walkers = sync.Pool{New: func() any { return new(walker) }}

// maxPooledArena bounds the arena a pooled walker keeps.
const maxPooledArena = 64 << 10

// release forgets the text (names point into it) and returns w to the pool.
func (w *walker) release() {
	for _, n := range w.stack {
		if n != nil {
			n.reset()
		}
	}
	w.depth = 0
	clear(w.arena)
	w.arena = w.arena[:0]
	if cap(w.arena) > maxPooledArena {
		w.arena = nil
	}
	walkers.Put(w)
}

func (w *walker) push() {
	if w.depth == len(w.stack) {
		w.stack = append(w.stack, nil)
	}
	if w.stack[w.depth] == nil {
		w.stack[w.depth] = &names{}
	}
	w.stack[w.depth].reset()
	w.depth++
}

// pushArray opens an array. Its stack slot keeps any names object that
// was there (its names are reset when an object next uses the slot).
func (w *walker) pushArray() {
	if w.depth == len(w.stack) {
		w.stack = append(w.stack, nil)
	}
	w.depth++
}

func (w *walker) pop() { w.depth-- }

// name handles the member name data[start:end] (quotes included) of the
// innermost object.
func (w *walker) name(data []byte, start, end int) error {
	raw := data[start+1 : end-1]
	name := raw
	if bytes.IndexByte(raw, '\\') >= 0 {
		var ok bool
		if name, ok = w.unescape(raw); !ok {
			return &Error{Err: ErrInvalidName, Name: string(raw), Offset: start}
		}
	} else if !utf8.Valid(raw) {
		return &Error{Err: ErrInvalidName, Name: string(raw), Offset: start}
	}
	key := name
	if w.fold {
		key = w.keep(appendFolded(w.arena, name))
	}
	if w.stack[w.depth-1].add(key) {
		return &Error{Err: ErrDuplicateName, Name: string(name), Offset: start}
	}
	return nil
}

// keep takes b, which extends w.arena, into the arena and returns it.
func (w *walker) keep(b []byte) []byte {
	n := len(w.arena)
	w.arena = b
	return b[n:len(b):len(b)]
}

// unescape returns the name that the raw string body stands for, and
// false when it is not valid UTF-8 or holds an unpaired surrogate escape.
func (w *walker) unescape(raw []byte) ([]byte, bool) {
	out := w.arena
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			r, size := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && size == 1 {
				return nil, false
			}
			out = append(out, raw[i:i+size]...)
			i += size
			continue
		}
		switch raw[i+1] {
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return nil, false
				}
				r = utf16.DecodeRune(r, hex4(raw[i+2:i+6]))
				if r == unicode.ReplacementChar {
					return nil, false
				}
				i += 6
			}
			out = utf8.AppendRune(out, r)
			continue
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default: // '"', '\\', '/'
			out = append(out, raw[i+1])
		}
		i += 2
	}
	return w.keep(out), true
}

// hex4 decodes four hex digits, which json.Valid has checked.
func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		default: // 'A' to 'F'
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendFolded appends name case-folded so that two names fold to the same
// bytes exactly when bytes.EqualFold says they are equal. It is
// encoding/json's foldName (src/encoding/json/fold.go).
func appendFolded(out, name []byte) []byte {
	for i := 0; i < len(name); {
		if c := name[i]; c < utf8.RuneSelf {
			if 'a' <= c && c <= 'z' {
				c -= 'a' - 'A'
			}
			out = append(out, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(name[i:])
		out = utf8.AppendRune(out, foldRune(r))
		i += n
	}
	return out
}

// foldRune returns the smallest rune of r's case-folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}
