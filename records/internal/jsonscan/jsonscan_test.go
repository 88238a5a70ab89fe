package jsonscan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/enc-pipe/enc-pipe/records/internal/jsonscan"
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

// hasDuplicate is the oracle: it walks the text with encoding/json's
// tokenizer, which decodes names the way consumers see them, and reports
// whether any object repeats a name.
func hasDuplicate(t testing.TB, text []byte) bool {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	type frame struct {
		obj    bool
		names  map[string]bool
		expect bool // next string token in an object is a name
	}
	var stack []*frame
	dup := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return dup
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
				stack = append(stack, &frame{obj: true, names: map[string]bool{}, expect: true})
				continue
			case '[':
				if top != nil && top.obj {
					top.expect = true
				}
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
				continue
			}
		case string:
			if isName {
				if top.names[v] {
					dup = true
				}
				top.names[v] = true
				top.expect = false
				continue
			}
		}
		if top != nil && top.obj {
			top.expect = true
		}
	}
}

func TestScanAcceptsWhatEncodingJSONAccepts(t *testing.T) {
	valid := []string{
		`0`, `-0.5e+7`, `"x"`, `true`, ` null `, `[]`, `{}`, `[1,[2,[3]]]`,
		`{"a":{"b":[1,2,{"c":null}]},"d":"\u00e9\ud83d\ude00\n"}`,
		"\"\xff invalid utf-8 is accepted as encoding/json does\"",
		`{"a":1,"A":2}`,
	}
	var s jsonscan.Scanner
	for _, v := range valid {
		if !json.Valid([]byte(v)) {
			t.Fatalf("test bug: %q is not valid for encoding/json", v)
		}
		if _, err := s.Scan([]byte(v), nil, false); err != nil {
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
		_, err := s.Scan([]byte(v), nil, false)
		if !errors.Is(err, jsonscan.ErrSyntax) {
			t.Errorf("Scan(%q) = %v, want ErrSyntax", v, err)
		}
	}
}

func TestScanRefusesDuplicateNamesAtAnyDepth(t *testing.T) {
	cases := []string{
		`{"a":1,"a":2}`,
		`{"a":1,"\u0061":2}`,
		`{"x":{"t":1,"t":1}}`,
		`[{"t":1},{"u":1,"u":2}]`,
		`{"\ud800":1,"\udc00":2}`,         // both decode to U+FFFD
		"{\"\xff\":1,\"\xfe\":2}",         // both decode to U+FFFD
		`{"é":1,"\u00e9":2}`,              // raw UTF-8 and escape
		`{"😀":1,"\ud83d\ude00":2}`,        // surrogate pair
		`{"a":{"b":1},"c":2,"a":{"b":1}}`, // later duplicate
		`{"k0":0,"k1":0,"k2":0,"k3":0,"k4":0,"k5":0,"k6":0,"k7":0,"k8":0,"k9":0,"k10":0,"k11":0,"k12":0,"k13":0,"k14":0,"k15":0,"k16":0,"k17":0,"k3":1}`,
	}
	var s jsonscan.Scanner
	for _, c := range cases {
		if !hasDuplicate(t, []byte(c)) {
			t.Fatalf("test bug: the oracle finds no duplicate in %s", c)
		}
		_, err := s.Scan([]byte(c), nil, false)
		if !errors.Is(err, jsonscan.ErrDuplicateName) {
			t.Errorf("Scan(%s) = %v, want ErrDuplicateName", c, err)
		}
	}
	// The same names in different objects are not duplicates.
	for _, c := range []string{`{"a":{"a":1}}`, `[{"a":1},{"a":2}]`, `{"a":1,"b":{"a":2}}`} {
		if _, err := s.Scan([]byte(c), nil, false); err != nil {
			t.Errorf("Scan(%s): %v", c, err)
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
		res, err := s.Scan(text, path(tc.path), false)
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
		if _, err := s.Scan([]byte(c), path(p), false); !errors.Is(err, jsonscan.ErrAmbiguousName) {
			t.Errorf("Scan(%s, %s) = %v, want ErrAmbiguousName", c, p, err)
		}
		if _, err := s.Scan([]byte(c), nil, false); err != nil {
			t.Errorf("Scan(%s) without a path: %v", c, err)
		}
	}
}

func TestScanMembersSpansRebuildTheObject(t *testing.T) {
	text := []byte(` { "a" : 1 , "b\n":{"x":[1, 2]},"c":"s" } `)
	var s jsonscan.Scanner
	res, err := s.Scan(text, nil, true)
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

func TestScanBoundsDepth(t *testing.T) {
	deep := strings.Repeat("[", jsonscan.MaxDepth+1) + strings.Repeat("]", jsonscan.MaxDepth+1)
	var s jsonscan.Scanner
	if _, err := s.Scan([]byte(deep), nil, false); !errors.Is(err, jsonscan.ErrTooDeep) {
		t.Fatalf("Scan of depth %d = %v, want ErrTooDeep", jsonscan.MaxDepth+1, err)
	}
	ok := strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth)
	if _, err := s.Scan([]byte(ok), nil, false); err != nil {
		t.Fatalf("Scan of depth %d: %v", jsonscan.MaxDepth, err)
	}
}

func TestScanErrorNamesOffsetNotContent(t *testing.T) {
	var s jsonscan.Scanner
	_, err := s.Scan([]byte(`{"secret-name":"s3cr3t","secret-name":1}`), nil, false)
	if err == nil || strings.Contains(err.Error(), "secret") || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("error %v shows content", err)
	}
}

// FuzzScanAgreesWithEncodingJSON checks Scan against encoding/json: it
// accepts a text exactly when json.Valid does and it has no duplicate
// names as encoding/json decodes them.
func FuzzScanAgreesWithEncodingJSON(f *testing.F) {
	for _, seed := range []string{`{"a":1,"\u0061":2}`, `[{"b":{"c":[true,null]}}]`, `"\ud800"`, `{"\ud83d\ude00":1,"😀":2}`, `-1.5e3`, "{\"\xc3\":1,\"\xc3\xa9\":2}"} {
		f.Add([]byte(seed))
	}
	var s jsonscan.Scanner
	f.Fuzz(func(t *testing.T, text []byte) {
		_, err := s.Scan(text, path("a.b"), true)
		valid := json.Valid(text)
		if !valid {
			if err == nil {
				t.Fatalf("Scan accepted %q, json.Valid did not", text)
			}
			return
		}
		if errors.Is(err, jsonscan.ErrAmbiguousName) || errors.Is(err, jsonscan.ErrTooDeep) {
			return
		}
		dup := hasDuplicate(t, text)
		if dup != errors.Is(err, jsonscan.ErrDuplicateName) || (!dup && err != nil) {
			t.Fatalf("Scan(%q) = %v, oracle duplicate = %v", text, err, dup)
		}
	})
}
