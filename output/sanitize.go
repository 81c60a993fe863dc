package output

import (
	"bytes"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CString returns the bytes of a fixed-size C char array up to its first NUL,
// or all of them when there is none (the kernel's 16-byte comm and prog name
// may fill the array with no terminator).
func CString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// Escape makes an untrusted string (program name, comm, exe path, license…)
// safe for every sink: the result is valid UTF-8 with no control or
// invisible formatting characters, so it cannot forge log lines, break
// syslog framing or hide text with bidi overrides. Printable characters stay
// as they are, a backslash becomes `\\`, invalid bytes and ASCII control
// characters become `\xNN`, and other non-printable runes become `\u{N}`.
// The escaping is reversible, so two distinct inputs never look the same.
func Escape(s string) string {
	if isPlain(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	escapeTo(&b, s, true)
	return b.String()
}

// EscapeUnprintable is escapeUnprintable for callers outside the package:
// text an agent already escaped (names read back from a fleet bucket) that
// anyone able to write where it is stored could have replaced.
func EscapeUnprintable(s string) string { return escapeUnprintable(s) }

// escapeUnprintable is Escape for text that a producer already escaped with
// backslashes (analysis.String.Text): backslashes are kept, anything that is
// still unsafe is escaped.
func escapeUnprintable(s string) string {
	if isPlainKeepBackslash(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	escapeTo(&b, s, false)
	return b.String()
}

func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

func isPlainKeepBackslash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

func escapeTo(b *strings.Builder, s string, backslash bool) {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			hexByte(b, s[i])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r < 0x80 && (r < 0x20 || r == 0x7f):
			hexByte(b, byte(r))
		case r >= 0x80 && !unicode.IsPrint(r):
			// C1 controls, bidi overrides, zero-width and other format
			// characters: printable text must not be able to hide or reorder.
			b.WriteString(`\u{`)
			b.WriteString(strconv.FormatInt(int64(r), 16))
			b.WriteByte('}')
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
}

func hexByte(b *strings.Builder, c byte) {
	const digits = "0123456789abcdef"
	b.WriteString(`\x`)
	b.WriteByte(digits[c>>4])
	b.WriteByte(digits[c&0xf])
}
