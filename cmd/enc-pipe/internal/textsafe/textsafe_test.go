package textsafe_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/enc-pipe/enc-pipe/cmd/enc-pipe/internal/textsafe"
)

// dangerous are the Unicode tables whose characters a terminal does not
// show as themselves.
var dangerous = []*unicode.RangeTable{unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp}

// visible reports whether s is printable ASCII only.
func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Every control, format and separator character in Unicode comes out as
// a printable ASCII escape that strconv.Unquote reads back.
func TestEscapesEveryDangerousRune(t *testing.T) {
	n := 0
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !unicode.In(r, dangerous...) {
			continue
		}
		n++
		s := "a" + string(r) + "b"
		got := textsafe.Escape(s)
		if !visible(got) {
			t.Errorf("Escape(%U) = %q: not printable ASCII", r, got)
			continue
		}
		if back, err := strconv.Unquote(`"` + got + `"`); err != nil || back != s {
			t.Errorf("Escape(%U) = %q does not read back (%q, %v)", r, got, back, err)
		}
		if textsafe.Safe(s) {
			t.Errorf("Safe(%U) = true", r)
		}
	}
	if n == 0 {
		t.Fatal("no dangerous runes found: the tables are empty")
	}
}

// Letters, digits, punctuation, symbols and spaces of any script pass
// through unchanged, and so does a string of them (no copy).
func TestKeepsPrintableText(t *testing.T) {
	var b strings.Builder
	for r := rune(0x20); r <= unicode.MaxRune; r++ {
		if unicode.In(r, dangerous...) || !utf8.ValidRune(r) {
			continue
		}
		if s := string(r); textsafe.Escape(s) != s {
			t.Errorf("Escape(%U) = %q, want it unchanged", r, textsafe.Escape(s))
		}
		if r < 0x3000 {
			b.WriteRune(r)
		}
	}
	s := b.String()
	if got := textsafe.Escape(s); got != s || !textsafe.Safe(s) {
		t.Error("a string of printable characters changed")
	}
	if textsafe.Escape(`C:\dir\file`) != `C:\dir\file` {
		t.Error("a backslash was escaped")
	}
}

// Bytes that are not UTF-8 become \xHH, one per byte.
func TestEscapesInvalidUTF8(t *testing.T) {
	for _, s := range []string{"\xff", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80"} {
		got := textsafe.Escape(s)
		if !visible(got) || strings.Count(got, `\x`) != len(s)-strings.Count(s, "a") {
			t.Errorf("Escape(%q) = %q", s, got)
		}
		if back, err := strconv.Unquote(`"` + got + `"`); err != nil || back != s {
			t.Errorf("Escape(%q) = %q does not read back", s, got)
		}
	}
}

// The line a hostile header would draw cannot appear: the escape sequence
// and the newline are visible text on one line.
func TestFakeLineStaysOnItsLine(t *testing.T) {
	s := "acme\x1b[2K\r\x1b[1A\nauthenticated: yes\u202e\u2028"
	got := textsafe.Escape(s)
	if strings.ContainsAny(got, "\x1b\r\n\u202e\u2028") {
		t.Errorf("Escape(%q) = %q", s, got)
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "plain", "a\x1bb", "\u202e", "\xff\xfe", "tab\there", "\u0085\u009b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := textsafe.Escape(s)
		if !textsafe.Safe(got) {
			t.Fatalf("Escape(%q) = %q is not safe", s, got)
		}
		if textsafe.Safe(s) != (got == s) {
			t.Fatalf("Safe(%q) = %v but Escape changed it: %v", s, textsafe.Safe(s), got != s)
		}
		if strings.ContainsAny(s, `\"`) {
			return
		}
		if back, err := strconv.Unquote(`"` + got + `"`); err != nil || back != s {
			t.Fatalf("Escape(%q) = %q reads back as %q (%v)", s, got, back, err)
		}
	})
}
