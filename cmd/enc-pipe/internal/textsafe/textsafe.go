// Package textsafe makes untrusted text safe to print on a terminal.
//
// Stream headers, record fields, key ids from a shared metastore and error
// messages that quote them are written by someone else. Printed as they
// are, their control characters can move the cursor, clear the screen,
// set the window title or rewrite a line ("authenticated: yes"), and
// Unicode format characters (U+202E RIGHT-TO-LEFT OVERRIDE, zero-width
// spaces) can reorder or hide text. Escape rewrites every such character
// as a visible Go-style escape.
package textsafe

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with each character that a terminal would not show as
// itself replaced by a visible escape:
//
//   - C0 controls and DEL: \t, \n, \r, or \xHH (\x1b for ESC);
//   - C1 controls (U+0080 to U+009F) and Unicode format characters
//     (category Cf: bidi controls such as U+202E, zero-width characters,
//     U+FEFF) and line and paragraph separators (U+2028, U+2029): \uHHHH;
//   - bytes that are not valid UTF-8: \xHH.
//
// Everything else, backslashes included, is kept, so the result is for
// display: "a\x1b" may have been an escape or four characters. Use JSON
// output where the exact value matters. When nothing needs escaping,
// Escape returns s itself.
func Escape(s string) string {
	i := unsafeIndex(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unsafeRune(r):
			b.WriteString(s[i : i+n])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// Safe reports whether Escape would return s unchanged.
func Safe(s string) bool { return unsafeIndex(s) < 0 }

// unsafeIndex returns the offset of the first character Escape rewrites,
// or -1.
func unsafeIndex(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return i
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && n == 1) || unsafeRune(r) {
			return i
		}
		i += n
	}
	return -1
}

// unsafeRune reports whether r is a control, format or separator
// character.
func unsafeRune(r rune) bool {
	if r < 0x20 || (0x7f <= r && r <= 0x9f) {
		return true
	}
	return r >= 0xa0 && (unicode.Is(unicode.Cf, r) || unicode.In(r, unicode.Zl, unicode.Zp))
}
