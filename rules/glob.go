package rules

import (
	"fmt"
	"regexp"
	"strings"
)

// Glob is a shell-style pattern over a whole string: * matches any run of
// bytes (slashes included, so "*libpam*" matches a path), ? one byte,
// [abc] / [a-z] / [!abc] a class, \x a literal x. It is compiled to an RE2
// regexp, so matching is linear in the input.
type Glob struct {
	Pattern string
	re      *regexp.Regexp
}

// CompileGlob parses a glob.
func CompileGlob(pattern string) (Glob, error) {
	var b strings.Builder
	b.WriteString(`\A(?s:`)
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '\\':
			if i+1 == len(pattern) {
				return Glob{}, fmt.Errorf("trailing backslash")
			}
			i++
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		case '[':
			end := strings.IndexByte(pattern[i+1:], ']')
			if end < 0 {
				return Glob{}, fmt.Errorf("unterminated [ at byte %d", i)
			}
			class := pattern[i+1 : i+1+end]
			if end == 0 && i+2 < len(pattern) {
				// "[]abc]": a ] right after [ is a member.
				next := strings.IndexByte(pattern[i+2:], ']')
				if next < 0 {
					return Glob{}, fmt.Errorf("unterminated [ at byte %d", i)
				}
				class = pattern[i+1 : i+2+next]
				end = next + 1
			}
			if class == "" || class == "!" {
				return Glob{}, fmt.Errorf("empty class at byte %d", i)
			}
			neg := class[0] == '!'
			if neg {
				class = class[1:]
			}
			b.WriteByte('[')
			if neg {
				b.WriteByte('^')
			}
			for j := 0; j < len(class); j++ {
				switch class[j] {
				case '\\', '[', ']', '^':
					b.WriteByte('\\')
				}
				b.WriteByte(class[j])
			}
			b.WriteByte(']')
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString(`)\z`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		return Glob{}, err
	}
	return Glob{Pattern: pattern, re: re}, nil
}

// Match reports whether s matches the whole glob.
func (g Glob) Match(s string) bool { return g.re != nil && g.re.MatchString(s) }

func (g Glob) String() string { return g.Pattern }

// minLen is the fewest bytes a string matching g can have.
func (g Glob) minLen() int {
	n := 0
	for i := 0; i < len(g.Pattern); i++ {
		switch g.Pattern[i] {
		case '*':
		case '\\':
			i++
			n++
		case '[':
			j := strings.IndexByte(g.Pattern[i+2:], ']')
			if j >= 0 {
				i += j + 2
			}
			n++
		default:
			n++
		}
	}
	return n
}

func globStrings(gs []Glob) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.Pattern
	}
	return out
}
