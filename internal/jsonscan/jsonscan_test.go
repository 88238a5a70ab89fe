package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/enc-pipe/enc-pipe/internal/jsonscan"
)

func path(p string) [][]byte {
	if p == "" {
		return nil
	}
	var out [][]byte
	for _, s := range strings.Split(p, ".") {
		out = append(out, []byte(s))
	}
	return out
}

// walk is the oracle: it walks the text with encoding/json's tokenizer,
// which decodes names the way consumers see them (invalid UTF-8 and lone
// surrogates become U+FFFD), and reports whether an object repeats a name,
// whether one has two names equal up to case (bytes.EqualFold), and whether
// a decoded name holds U+FFFD.
func walk(t testing.TB, text []byte) (dup, foldDup, replaced bool) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber() // numbers out of float64's range are valid JSON
	type frame struct {
		obj    bool
		names  []string
		expect bool // next string token in an object is a name
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("oracle: %v", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		isName := top != nil && top.obj && top.expect
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{obj: true, expect: true})
			case '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{})
			default:
				stack = stack[:len(stack)-1]
			}
			continue
		case string:
			if isName {
				for _, n := range top.names {
					dup = dup || n == v
					foldDup = foldDup || strings.EqualFold(n, v)
				}
				replaced = replaced || strings.ContainsRune(v, utf8.RuneError)
				top.names = append(top.names, v)
				top.expect = false
				continue
			}
		}
		if top != nil && top.obj {
			top.expect = true
		}
	}
}

func scan(text string, opt jsonscan.Options) error {
	var s jsonscan.Scanner
	_, err := s.Scan([]byte(text), opt)
	return err
}

// The cases a partition check can be fooled by, and the look-alikes that
// must still pass, with the error of a plain scan and of a Fold scan.
var cases = []struct {
	name string
	text string
	want error // nil means accepted
	fold error
}{
	{"flat", `{"tenant":"victim","n":1}`, nil, nil},
	{"duplicate at the top", `{"tenant":"victim","tenant":"attacker"}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"duplicate with whitespace", "{ \"a\" :1 ,\n\t\"a\"\r: 2 }", jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"duplicate spelled with an escape", `{"tenant":"victim","\u0074enant":"attacker"}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"duplicate with escaped quote", `{"a\"b":1,"a\u0022b":2}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"raw UTF-8 and its escape", `{"é":1,"\u00e9":2}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"surrogate pair and raw UTF-8", `{"😀":1,"\ud83d\ude00":2}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"duplicate in a nested object", `{"a":{"b":1,"c":{"d":1,"d":2}}}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"duplicate inside an array", `[1,{"x":[{"k":1},{"k":2,"k":3}]}]`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"later duplicate after a nested object", `{"a":{"b":1},"c":2,"a":{"b":1}}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"same name in sibling objects", `[{"k":1},{"k":2}]`, nil, nil},
	{"same name at another depth", `{"k":{"k":{"k":1}}}`, nil, nil},
	{"name equal to a value", `{"a":"a","b":"a","c":["a","a"]}`, nil, nil},
	{"string with escaped backslash before the quote", `{"a\\":1,"a":2}`, nil, nil},
	{"value string that looks like a member", `{"a":"\"a\":1","b":"a"}`, nil, nil},
	{"names that differ in case", `{"Data":"x","data":"y"}`, nil, jsonscan.ErrAmbiguousName},
	{"Kelvin sign folds to K", `{"Key":1,"\u212aey":2}`, nil, jsonscan.ErrAmbiguousName},
	{"long s folds to S", `{"s":1,"ſ":2}`, nil, jsonscan.ErrAmbiguousName},
	{"case variant, then a duplicate: the duplicate is reported", `{"Data":1,"data":2,"Data":3}`, jsonscan.ErrDuplicateName, jsonscan.ErrDuplicateName},
	{"case variant before invalid JSON: the syntax error is reported", `{"Data":1,"data":2`, jsonscan.ErrSyntax, jsonscan.ErrSyntax},
	{"invalid UTF-8 in a name", "{\"a\xff\":1}", jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"invalid UTF-8 in a name with an escape", "{\"\\u0061\xff\":1}", jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"two invalid names that encoding/json reads alike", "{\"\xff\":1,\"\xfe\":2}", jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"unpaired high surrogate", `{"\ud800":1}`, jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"unpaired low surrogate", `{"\udc00x":1}`, jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"high surrogate then a letter", `{"\ud83d\u0041":1}`, jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"two lone surrogates", `{"\ud800":1,"\udc00":2}`, jsonscan.ErrInvalidName, jsonscan.ErrInvalidName},
	{"invalid UTF-8 in a value is accepted, as json.Valid does", "{\"a\":\"\xff\"}", nil, nil},
	{"lone surrogate in a value is accepted", `{"a":"\ud800"}`, nil, nil},
	{"not JSON", `{"a":`, jsonscan.ErrSyntax, jsonscan.ErrSyntax},
	{"two values", `{} {}`, jsonscan.ErrSyntax, jsonscan.ErrSyntax},
	{"scalar", `"tenant"`, nil, nil},
}

func TestScanRefusesAmbiguousNames(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dup, foldDup, _ := walk(t, []byte(c.text))
			if (c.want == jsonscan.ErrDuplicateName && !dup) || (c.want == nil && dup) {
				t.Fatalf("test bug: the oracle says duplicate=%v", dup)
			}
			if c.fold == jsonscan.ErrAmbiguousName && !foldDup {
				t.Fatalf("test bug: the oracle finds no names equal up to case")
			}
			for _, fold := range []bool{false, true} {
				want := c.want
				if fold {
					want = c.fold
				}
				err := scan(c.text, jsonscan.Options{Fold: fold})
				if !errors.Is(err, want) || (want == nil) != (err == nil) {
					t.Errorf("Scan(%q, Fold: %v) = %v, want %v", c.text, fold, err, want)
				}
			}
			if err := jsonscan.Check([]byte(c.text)); !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
				t.Errorf("Check(%q) = %v, want %v", c.text, err, c.want)
			}
		})
	}
}

func TestScanAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	valid := []string{
		`0`, `-0.5e+7`, `"x"`, `true`, ` null `, `[]`, `{}`, `[1,[2,[3]]]`,
		`{"a":{"b":[1,2,{"c":null}]},"d":"\u00e9\ud83d\ude00\n"}`,
		"\"\xff invalid utf-8 is accepted as encoding/json does\"",
		`{"a":1,"A":2}`,
		"1" + strings.Repeat("0", 300), // out of float64's range
	}
	var s jsonscan.Scanner
	for _, v := range valid {
		if !json.Valid([]byte(v)) {
			t.Fatalf("test bug: %q is not valid for encoding/json", v)
		}
		if _, err := s.Scan([]byte(v), jsonscan.Options{}); err != nil {
			t.Errorf("Scan(%q): %v", v, err)
		}
	}
}

func TestScanRefusesInvalidText(t *testing.T) {
	invalid := []string{
		``, ` `, `{`, `[1,]`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, `tru`, `"\x"`, `"\u12"`,
		"\"a\x01\"", `{"a" 1}`, `{1:2}`, `[1 2]`, `1 2`, `"unterminated`, `{"a":1}}`,
	}
	var s jsonscan.Scanner
	for _, v := range invalid {
		if json.Valid([]byte(v)) {
			t.Fatalf("test bug: %q is valid for encoding/json", v)
		}
		_, err := s.Scan([]byte(v), jsonscan.Options{})
		if !errors.Is(err, jsonscan.ErrSyntax) {
			t.Errorf("Scan(%q) = %v, want ErrSyntax", v, err)
		}
	}
}

func TestScanFindsNestedPathValue(t *testing.T) {
	text := []byte(`{"t":"top", "a" : {"b": 42 , "c":{"b":"deep"}}, "z":[{"b":1}]}`)
	var s jsonscan.Scanner
	for _, tc := range []struct {
		path  string
		want  string
		found bool
	}{
		{"t", `"top"`, true},
		{"a.b", `42`, true},
		{"a.c.b", `"deep"`, true},
		{"a.c", `{"b":"deep"}`, true},
		{"z.b", "", false}, // arrays are not on paths
		{"a.x", "", false},
		{"t.x", "", false}, // t is not an object
		{"b", "", false},
	} {
		res, err := s.Scan(text, jsonscan.Options{Path: path(tc.path)})
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		got := ""
		if res.Found {
			got = string(text[res.ValueStart:res.ValueEnd])
		}
		if res.Found != tc.found || got != tc.want {
			t.Errorf("path %s: found %v %q, want %v %q", tc.path, res.Found, got, tc.found, tc.want)
		}
	}
}

func TestScanRefusesCaseVariantsOfThePathOnly(t *testing.T) {
	var s jsonscan.Scanner
	for _, c := range []string{`{"tenant":"a","TENANT":"b"}`, `{"Tenant":"b","tenant":"a"}`, `{"a":{"tenant":1,"tenanT":2}}`} {
		p := "tenant"
		if strings.HasPrefix(c, `{"a"`) {
			p = "a.tenant"
		}
		if _, err := s.Scan([]byte(c), jsonscan.Options{Path: path(p)}); !errors.Is(err, jsonscan.ErrAmbiguousName) {
			t.Errorf("Scan(%s, %s) = %v, want ErrAmbiguousName", c, p, err)
		}
		if _, err := s.Scan([]byte(c), jsonscan.Options{}); err != nil {
			t.Errorf("Scan(%s) without a path: %v", c, err)
		}
	}
}

func TestScanMembersSpansRebuildTheObject(t *testing.T) {
	text := []byte(` { "a" : 1 , "b\n":{"x":[1, 2]},"c":"s" } `)
	var s jsonscan.Scanner
	res, err := s.Scan(text, jsonscan.Options{Members: true})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range res.Members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(text[m.NameStart:m.NameEnd])
		b.WriteByte(':')
		b.Write(text[m.ValueStart:m.ValueEnd])
	}
	b.WriteByte('}')
	// Values are copied as they are; the rebuilt object is the same JSON.
	var got, want bytes.Buffer
	if err := json.Compact(&got, b.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := json.Compact(&want, text); err != nil {
		t.Fatal(err)
	}
	if got.String() != want.String() {
		t.Fatalf("rebuilt %s, want %s", got.String(), want.String())
	}
	if !res.Object || len(res.Members) != 3 || string(res.Members[1].Name) != "b\n" {
		t.Fatalf("members %+v", res.Members)
	}
}

// Objects past the size where names move from a list to hash indexes are
// checked the same way, for a duplicate, a case variant and distinct
// names, at the top and nested.
func TestLargeObjects(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 40, 1000} {
		var b strings.Builder
		b.WriteString("{")
		for i := range n {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		head := b.String()
		for _, nest := range []bool{false, true} {
			wrap := func(obj string) string {
				if nest {
					return `{"x":1,"y":[` + obj + `]}`
				}
				return obj
			}
			distinct := wrap(head + `"last":0,"\u212a":1}`) // the Kelvin sign folds to K, not to any k%d
			if err := scan(distinct, jsonscan.Options{Fold: true}); err != nil {
				t.Errorf("%d distinct names (nested %v): %v", n+2, nest, err)
			}
			for _, dup := range []int{0, n / 2, n - 1} {
				text := wrap(head + fmt.Sprintf(`"k%d":0}`, dup))
				if err := scan(text, jsonscan.Options{}); !errors.Is(err, jsonscan.ErrDuplicateName) {
					t.Errorf("%d names, k%d again (nested %v): %v", n+1, dup, nest, err)
				}
				variant := wrap(head + fmt.Sprintf(`"\u212a%d":0}`, dup))
				if err := scan(variant, jsonscan.Options{}); err != nil {
					t.Errorf("%d names, Kelvin-sign k%d without Fold (nested %v): %v", n+1, dup, nest, err)
				}
				if err := scan(variant, jsonscan.Options{Fold: true}); !errors.Is(err, jsonscan.ErrAmbiguousName) {
					t.Errorf("%d names, Kelvin-sign k%d with Fold (nested %v): %v", n+1, dup, nest, err)
				}
			}
		}
	}
}

// Names of a closed object do not leak into the next object at the same
// depth, even after an array took its place in between, nor into the next
// text.
func TestNamesDoNotLeakBetweenObjectsOrTexts(t *testing.T) {
	var s jsonscan.Scanner
	large := func(prefix string) string {
		var b strings.Builder
		b.WriteString("{")
		for i := range 40 {
			fmt.Fprintf(&b, `"%s%d":1,`, prefix, i)
		}
		b.WriteString(`"end":1}`)
		return b.String()
	}
	texts := []string{
		`[{"a":1,"b":{"c":1}},[[1]],{"a":2,"b":{"c":2}},{"b":[{"c":3}],"a":{"c":4}}]`,
		`[` + large("k") + `,` + large("k") + `]`,
		large("k"),
		large("k"),
	}
	for _, text := range texts {
		for _, fold := range []bool{false, true} {
			if _, err := s.Scan([]byte(text), jsonscan.Options{Fold: fold}); err != nil {
				t.Errorf("Scan(%.40q…, Fold: %v) = %v", text, fold, err)
			}
		}
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
	var s jsonscan.Scanner
	if _, err := s.Scan(nested(lo), jsonscan.Options{}); err != nil {
		t.Errorf("depth %d (json.Valid's limit): %v", lo, err)
	}
	if _, err := s.Scan(nested(hi), jsonscan.Options{}); !errors.Is(err, jsonscan.ErrTooDeep) {
		t.Errorf("depth %d (past json.Valid's limit): %v", hi, err)
	}
	arrays := []byte(strings.Repeat("[", hi) + strings.Repeat("]", hi))
	if _, err := s.Scan(arrays, jsonscan.Options{}); json.Valid(arrays) || !errors.Is(err, jsonscan.ErrTooDeep) {
		t.Errorf("arrays of depth %d: %v", hi, err)
	}
	deepDup := bytes.Replace(nested(lo-1), []byte(`{"a":1}`), []byte(`{"a":1,"a":2}`), 1)
	if _, err := s.Scan(deepDup, jsonscan.Options{}); !errors.Is(err, jsonscan.ErrDuplicateName) {
		t.Errorf("duplicate at depth %d: %v", lo-1, err)
	}
}

// The error names the second occurrence: its offset (found here by
// searching for its spelling) and, in Name and NamedError only, the
// decoded name.
func TestErrorNamesTheDuplicateOnlyWhenAsked(t *testing.T) {
	text := `{"x":{"tenant":1},"tenant":"victim","\u0074enant":"attacker"}`
	err := scan(text, jsonscan.Options{})
	var e *jsonscan.Error
	if !errors.As(err, &e) {
		t.Fatalf("Scan = %v, want an *Error", err)
	}
	want := strings.Index(text, `"\u0074enant"`)
	if e.Name != "tenant" || e.Offset != want {
		t.Errorf("Error{Name: %q, Offset: %d}, want tenant at %d", e.Name, e.Offset, want)
	}
	if msg := e.Error(); strings.Contains(msg, "tenant") || !strings.Contains(msg, fmt.Sprint(want)) {
		t.Errorf("Error() = %q: shows the name, or lacks the offset", msg)
	}
	if msg := e.NamedError(); msg != fmt.Sprintf(`duplicate member name "tenant" at byte %d`, want) {
		t.Errorf("NamedError() = %q", msg)
	}
	for _, c := range []struct {
		text, opt string
		want      error
	}{
		{`{"secret-name":"s3cr3t","secret-name":1}`, "", jsonscan.ErrDuplicateName},
		{`{"secret-Name":"s3cr3t","secret-name":1}`, "fold", jsonscan.ErrAmbiguousName},
		{`{"secret-Name":"s3cr3t","secret-name":1}`, "path", jsonscan.ErrAmbiguousName},
		{"{\"secret\xff\":\"s3cr3t\"}", "", jsonscan.ErrInvalidName},
		{`{"secret":"s3cr3t",}`, "", jsonscan.ErrSyntax},
	} {
		err := scan(c.text, jsonscan.Options{Fold: c.opt == "fold", Path: map[bool][][]byte{true: path("secret-name")}[c.opt == "path"]})
		if !errors.Is(err, c.want) || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("Scan(%q, %s) = %v: want %v, without content", c.text, c.opt, err, c.want)
		}
	}
}

// A hostile name is quoted with its control characters escaped and cut
// short by NamedError.
func TestNamedErrorIsSafeToPrint(t *testing.T) {
	long := strings.Repeat("n", 1000)
	for _, name := range []string{"\x1b[2J\x1b[1;1Hauthenticated: yes\\u000a", long, "\u202eevil"} {
		enc, _ := json.Marshal(name)
		text := fmt.Sprintf(`{%s:1,%s:2}`, enc, enc)
		var e *jsonscan.Error
		if err := scan(text, jsonscan.Options{}); !errors.As(err, &e) || e.Err != jsonscan.ErrDuplicateName {
			t.Fatalf("Scan = %v", err)
		}
		msg := e.NamedError()
		if strings.ContainsAny(msg, "\x1b\n\u202e") || len(msg) > len(long)/2 {
			t.Errorf("message is not safe to print: %q", msg)
		}
	}
}

// Once its buffers have grown, a Scanner allocates nothing, wide objects
// and escaped names included.
func TestScanDoesNotAllocateOnceWarm(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"tenant":"acme","n\u00e9":{`)
	for i := range 200 {
		fmt.Fprintf(&b, `"key%d":[%d,{"v":"x"}],`, i, i)
	}
	b.WriteString(`"end":true}}`)
	text := []byte(b.String())
	var s jsonscan.Scanner
	for _, opt := range []jsonscan.Options{{}, {Fold: true}, {Path: path("tenant"), Members: true}} {
		if _, err := s.Scan(text, opt); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(20, func() { s.Scan(text, opt) }); n != 0 {
			t.Errorf("%+v: %v allocations per Scan", opt, n)
		}
	}
}

// FuzzScanAgreesWithEncodingJSON checks Scan against encoding/json: it
// refuses exactly what json.Valid refuses (ErrSyntax or ErrTooDeep), finds
// the duplicates the decoder sees, refuses a name as invalid only where
// the decoder sees U+FFFD, and Fold refuses everything the plain scan
// refuses, plus names equal up to case only.
func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c.text))
	}
	for _, seed := range []string{`[{"b":{"c":[true,null]}}]`, `"\ud800"`, `-1.5e3`, "{\"\xc3\":1,\"\xc3\xa9\":2}", `{"a":{"b":1,"B":2}}`} {
		f.Add([]byte(seed))
	}
	var s, sf jsonscan.Scanner
	f.Fuzz(func(t *testing.T, text []byte) {
		_, err := s.Scan(text, jsonscan.Options{Path: path("a.b"), Members: true})
		_, plain := s.Scan(text, jsonscan.Options{})
		_, folded := sf.Scan(text, jsonscan.Options{Fold: true})
		if !json.Valid(text) {
			if !errors.Is(plain, jsonscan.ErrSyntax) && !errors.Is(plain, jsonscan.ErrTooDeep) {
				t.Fatalf("Scan(%q) = %v, json.Valid refuses it", text, plain)
			}
			if err == nil || folded == nil {
				t.Fatalf("Scan with options accepted %q, json.Valid did not", text)
			}
			return
		}
		if errors.Is(plain, jsonscan.ErrSyntax) || errors.Is(plain, jsonscan.ErrTooDeep) {
			t.Fatalf("Scan(%q) = %v, json.Valid accepts it", text, plain)
		}
		dup, foldDup, replaced := walk(t, text)
		switch {
		case errors.Is(plain, jsonscan.ErrInvalidName):
			if !replaced {
				t.Fatalf("Scan(%q) = %v, but the decoder decodes every name", text, plain)
			}
		case errors.Is(plain, jsonscan.ErrDuplicateName) != dup:
			t.Fatalf("Scan(%q) = %v, oracle duplicate = %v", text, plain, dup)
		case !dup && plain != nil:
			t.Fatalf("Scan(%q) = %v, oracle finds nothing", text, plain)
		}
		// A path adds only case variants of its names.
		if (plain != nil && err == nil) || (plain == nil && err != nil && !errors.Is(err, jsonscan.ErrAmbiguousName)) {
			t.Fatalf("Scan(%q) with a path = %v, without = %v", text, err, plain)
		}
		switch {
		case plain != nil && folded == nil:
			t.Fatalf("Fold accepted %q, which the plain scan refuses (%v)", text, plain)
		case plain == nil && folded != nil && (!errors.Is(folded, jsonscan.ErrAmbiguousName) || !foldDup):
			t.Fatalf("Fold refused %q: %v (oracle: names equal up to case = %v)", text, folded, foldDup)
		case plain == nil && folded == nil && foldDup:
			t.Fatalf("Fold accepted %q, whose names are equal up to case", text)
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

// wideRecord is an object of 200 members, past the list-to-index switch.
func wideRecord() []byte {
	var b strings.Builder
	b.WriteString("{")
	for i := range 200 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"column_%d":%d`, i, i)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// BenchmarkScan compares Scan with json.Valid, which does less (no names),
// and with the decoder walk it replaces.
func BenchmarkScan(b *testing.B) {
	rec := benchRecord()
	big := []byte("[" + strings.Repeat(string(rec)+",", 1023) + string(rec) + "]")
	for _, in := range []struct {
		name string
		data []byte
	}{{"record", rec}, {"1k-records", big}, {"wide", wideRecord()}} {
		b.Run("Valid/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				json.Valid(in.data)
			}
		})
		for _, opt := range []struct {
			name string
			opt  jsonscan.Options
		}{{"Scan", jsonscan.Options{}}, {"ScanFold", jsonscan.Options{Fold: true}}, {"ScanPathMembers", jsonscan.Options{Path: path("tenant"), Members: true}}} {
			b.Run(opt.name+"/"+in.name, func(b *testing.B) {
				var s jsonscan.Scanner
				b.SetBytes(int64(len(in.data)))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Scan(in.data, opt.opt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run("Check/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := jsonscan.Check(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("DecoderWalk/"+in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if dup, _, _ := walk(b, in.data); dup {
					b.Fatal("duplicate")
				}
			}
		})
	}
}
