package output

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzEscape checks Escape's promises on arbitrary input: valid UTF-8, no
// non-printable rune left, plain input unchanged, and distinct inputs never
// collide (escaping is injective).
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", "abc", "a\nb", "\xff", `\x41`, "\u202e", "0123456789abcdef"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ea := Escape(a)
		if !utf8.ValidString(ea) {
			t.Fatalf("Escape(%q) = %q is not valid UTF-8", a, ea)
		}
		for _, r := range ea {
			if !unicode.IsPrint(r) {
				t.Fatalf("Escape(%q) = %q keeps non-printable %U", a, ea, r)
			}
		}
		if isPlain(a) && ea != a {
			t.Fatalf("plain %q changed to %q", a, ea)
		}
		if a != b && ea == Escape(b) {
			t.Fatalf("Escape(%q) == Escape(%q) == %q", a, b, ea)
		}
		if eu := escapeUnprintable(a); !utf8.ValidString(eu) || strings.ContainsFunc(eu, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Fatalf("escapeUnprintable(%q) = %q is unsafe", a, eu)
		}
	})
}
