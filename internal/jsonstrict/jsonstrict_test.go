package jsonstrict_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/internal/jsonstrict"
)

// The cases a partition check can be fooled by, and the look-alikes that
// must still pass.
var cases = []struct {
	name string
	text string
	want error // for Check; nil means accepted
	fold error // for CheckFold
}{
	{"flat", `{"tenant":"victim","n":1}`, nil, nil},
	{"duplicate at the top", `{"tenant":"victim","tenant":"attacker"}`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"duplicate with whitespace", "{ \"a\" :1 ,\n\t\"a\"\r: 2 }", jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"duplicate spelled with an escape", `{"tenant":"victim","\u0074enant":"attacker"}`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"duplicate with escaped quote", `{"a\"b":1,"a\u0022b":2}`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"surrogate pair and raw UTF-8", `{"😀":1,"\ud83d\ude00":2}`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"duplicate in a nested object", `{"a":{"b":1,"c":{"d":1,"d":2}}}`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"duplicate inside an array", `[1,{"x":[{"k":1},{"k":2,"k":3}]}]`, jsonstrict.ErrDuplicateName, jsonstrict.ErrDuplicateName},
	{"same name in sibling objects", `[{"k":1},{"k":2}]`, nil, nil},
	{"same name at another depth", `{"k":{"k":{"k":1}}}`, nil, nil},
	{"name equal to a value", `{"a":"a","b":"a","c":["a","a"]}`, nil, nil},
	{"string with escaped backslash before the quote", `{"a\\":1,"a":2}`, nil, nil},
	{"value string that looks like a member", `{"a":"\"a\":1","b":"a"}`, nil, nil},
	{"names that differ in case", `{"Data":"x","data":"y"}`, nil, jsonstrict.ErrDuplicateName},
	{"Kelvin sign folds to K", `{"Key":1,"\u212aey":2}`, nil, jsonstrict.ErrDuplicateName},
	{"long s folds to S", `{"s":1,"ſ":2}`, nil, jsonstrict.ErrDuplicateName},
	{"invalid UTF-8 in a name", "{\"a\xff\":1}", jsonstrict.ErrInvalidName, jsonstrict.ErrInvalidName},
	{"invalid UTF-8 in a name with an escape", "{\"\\u0061\xff\":1}", jsonstrict.ErrInvalidName, jsonstrict.ErrInvalidName},
	{"unpaired high surrogate", `{"\ud800":1}`, jsonstrict.ErrInvalidName, jsonstrict.ErrInvalidName},
	{"unpaired low surrogate", `{"\udc00x":1}`, jsonstrict.ErrInvalidName, jsonstrict.ErrInvalidName},
	{"high surrogate then a letter", `{"\ud83d\u0041":1}`, jsonstrict.ErrInvalidName, jsonstrict.ErrInvalidName},
	{"invalid UTF-8 in a value is json.Valid's business", "{\"a\":\"\xff\"}", nil, nil},
	{"not JSON", `{"a":`, jsonstrict.ErrSyntax, jsonstrict.ErrSyntax},
	{"two values", `{} {}`, jsonstrict.ErrSyntax, jsonstrict.ErrSyntax},
	{"scalar", `"tenant"`, nil, nil},
}

func TestCheck(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := jsonstrict.Check([]byte(c.text)); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("Check(%q) = %v, want %v", c.text, err, c.want)
			}
			if err := jsonstrict.CheckFold([]byte(c.text)); !errors.Is(err, c.fold) || (c.fold == nil) != (err == nil) {
				t.Errorf("CheckFold(%q) = %v, want %v", c.text, err, c.fold)
			}
		})
	}
}

// The error names the second occurrence: its decoded name and the offset
// of its opening quote, found here by searching for its spelling.
func TestErrorNamesTheDuplicate(t *testing.T) {
	text := `{"x":{"tenant":1},"tenant":"victim","\u0074enant":"attacker"}`
	err := jsonstrict.Check([]byte(text))
	var e *jsonstrict.Error
	if !errors.As(err, &e) {
		t.Fatalf("Check = %v, want an *Error", err)
	}
	if want := strings.Index(text, `"\u0074enant"`); e.Name != "tenant" || e.Offset != want {
		t.Errorf("Error{Name: %q, Offset: %d}, want tenant at %d", e.Name, e.Offset, want)
	}
	if msg := e.Error(); !strings.Contains(msg, `"tenant"`) || !strings.Contains(msg, fmt.Sprint(e.Offset)) {
		t.Errorf("message %q lacks the name or the offset", msg)
	}
}

// A hostile name is quoted with its control characters escaped and cut
// short in the message.
func TestErrorMessageIsSafe(t *testing.T) {
	long := strings.Repeat("n", 1000)
	for _, name := range []string{"\x1b[2J\x1b[1;1Hauthenticated: yes\\u000a", long} {
		enc, _ := json.Marshal(name)
		text := fmt.Sprintf(`{%s:1,%s:2}`, enc, enc)
		err := jsonstrict.Check([]byte(text))
		if !errors.Is(err, jsonstrict.ErrDuplicateName) {
			t.Fatalf("Check = %v", err)
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\x1b\n") || len(msg) > len(long)/2 {
			t.Errorf("message is not safe to print: %q", msg)
		}
	}
}

// Objects past the size where names move from a list to a map are checked
// the same way, both for a duplicate and for distinct names.
func TestLargeObjects(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 40, 1000} {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		distinct := b.String() + `"last":0}`
		if err := jsonstrict.Check([]byte(distinct)); err != nil {
			t.Errorf("%d distinct names: %v", n+1, err)
		}
		for _, dup := range []int{0, n / 2, n - 1} {
			text := b.String() + fmt.Sprintf(`"k%d":0}`, dup)
			if err := jsonstrict.Check([]byte(text)); !errors.Is(err, jsonstrict.ErrDuplicateName) {
				t.Errorf("%d names, k%d again: %v", n+1, dup, err)
			}
		}
	}
}

// Names of a closed object do not leak into the next object at the same
// depth, even after an array took its place in between.
func TestStackSlotsAreReset(t *testing.T) {
	text := `[{"a":1,"b":{"c":1}},[[1]],{"a":2,"b":{"c":2}},{"b":[{"c":3}],"a":{"c":4}}]`
	if err := jsonstrict.Check([]byte(text)); err != nil {
		t.Errorf("Check = %v", err)
	}
}

// Nesting is limited exactly where json.Valid limits it; the depth is
// found by asking json.Valid, not typed in.
func TestNestingLimitIsJSONValids(t *testing.T) {
	nested := func(d int) []byte {
		return []byte(strings.Repeat(`{"a":`, d) + "1" + strings.Repeat("}", d))
	}
	lo, hi := 1, 1<<20 // json.Valid(nested(lo)) && !json.Valid(nested(hi))
	if !json.Valid(nested(lo)) || json.Valid(nested(hi)) {
		t.Fatalf("json.Valid has no nesting limit below %d", hi)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if json.Valid(nested(mid)) {
			lo = mid
		} else {
			hi = mid
		}
	}
	if err := jsonstrict.Check(nested(lo)); err != nil {
		t.Errorf("depth %d (json.Valid's limit): %v", lo, err)
	}
	if err := jsonstrict.Check(nested(hi)); !errors.Is(err, jsonstrict.ErrSyntax) {
		t.Errorf("depth %d (past json.Valid's limit): %v", hi, err)
	}
	deepDup := bytes.Replace(nested(lo-1), []byte(`{"a":1}`), []byte(`{"a":1,"a":2}`), 1)
	if err := jsonstrict.Check(deepDup); !errors.Is(err, jsonstrict.ErrDuplicateName) {
		t.Errorf("duplicate at depth %d: %v", lo-1, err)
	}
}

// reference is the obvious implementation: a json.Decoder token walk with
// one set of decoded names per open object. It cannot see invalid UTF-8
// (the decoder replaces it with U+FFFD).
func reference(data []byte) (dup bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // numbers out of float64's range are valid JSON
	type frame struct {
		object bool
		names  map[string]bool
		key    bool // the next string token is a name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isName := false
		if top != nil && top.object {
			isName = top.key
			top.key = !top.key
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{object: true, names: map[string]bool{}, key: true})
			case '[':
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].key = true
				}
			}
		case string:
			if isName {
				if top.names[v] {
					return true, nil
				}
				top.names[v] = true
			}
		}
	}
}

func FuzzCheckAgreesWithDecoderWalk(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.text))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := jsonstrict.Check(data)
		if errors.Is(err, jsonstrict.ErrSyntax) != !json.Valid(data) {
			t.Fatalf("Check = %v but json.Valid = %v", err, json.Valid(data))
		}
		if !json.Valid(data) {
			return
		}
		dup, rerr := reference(data)
		if rerr != nil {
			t.Fatalf("the reference walk failed on valid JSON: %v", rerr)
		}
		// Check stops at the first bad name; up to there the reference
		// decodes the same names, so the two agree unless a name was invalid.
		switch {
		case err == nil && dup:
			t.Fatalf("the reference walk found a duplicate that Check accepted")
		case errors.Is(err, jsonstrict.ErrDuplicateName) && !dup:
			t.Fatalf("Check = %v, but the reference walk found no duplicate", err)
		}
		if ferr := jsonstrict.CheckFold(data); err != nil && ferr == nil {
			t.Fatalf("Check refused (%v) what CheckFold accepted", err)
		}
	})
}

// benchRecord is a JSON Lines record of about 1 KiB with nesting.
func benchRecord() []byte {
	var b strings.Builder
	b.WriteString(`{"tenant":"acme","id":123456,"tags":["a","b","c"],"user":{"name":"Ann \"A\" Smith","email":"ann@example.com","addr":{"street":"1 Main St","city":"Springfield","zip":"12345"}},"events":[`)
	for i := range 12 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"kind":"click","at":%d,"x":%d,"y":%d,"ok":true}`, 1700000000+i, i*7, i*13)
	}
	b.WriteString(`],"note":"caf\u00e9 \ud83d\ude00"}`)
	return []byte(b.String())
}

// BenchmarkCheck compares Check with json.Valid, which it calls first, and
// with the decoder walk it replaces.
func BenchmarkCheck(b *testing.B) {
	rec := benchRecord()
	big := []byte("[" + strings.Repeat(string(rec)+",", 1023) + string(rec) + "]")
	for _, in := range []struct {
		name string
		data []byte
	}{{"record", rec}, {"1k-records", big}} {
		b.Run("Valid/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				json.Valid(in.data)
			}
		})
		b.Run("Check/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := jsonstrict.Check(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("DecoderWalk/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if dup, err := reference(in.data); dup || err != nil {
					b.Fatal(dup, err)
				}
			}
		})
	}
}
