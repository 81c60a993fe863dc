package report

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// The report's data is written by hand rather than with encoding/json: it is
// most of the page for large programs, and reflection over 100,000 rows of
// mixed arrays costs more than the rest of the report.

// appendString appends s as a JSON string that is also safe inside an HTML
// <script> element: <, > and & are escaped (no "</script>" or "<!--" can
// form), as are U+2028/U+2029 and invalid UTF-8 (as U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendStringBody(b, s)
	return append(b, '"')
}

func appendStringBody(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\ufffd`...)
		case r == 0x2028 || r == 0x2029:
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return b
}

const hex = "0123456789abcdef"

func appendFloat(b []byte, f float64) []byte { return strconv.AppendFloat(b, f, 'f', -1, 64) }

func appendInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

// appendData writes d as the JSON object report.js reads.
func appendData(b []byte, d *data) []byte {
	// Instructions as one string of lines (one JSON string parses much
	// faster than 100,000 small arrays), the positions of two-slot
	// instructions (slots follow from them), and [position, target] pairs of
	// jumps and calls.
	b = append(b, `{"text":"`...)
	for i, r := range d.Insns {
		if i > 0 {
			b = append(b, '\\', 'n')
		}
		b = appendStringBody(b, strings.ReplaceAll(r.text, "\n", `\n`)) // one line each
	}
	b = append(b, `","wide":[`...)
	n := 0
	for i, r := range d.Insns {
		if r.wide {
			if n > 0 {
				b = append(b, ',')
			}
			b = appendInt(b, i)
			n++
		}
	}
	b = append(b, `],"jumps":[`...)
	n = 0
	for i, r := range d.Insns {
		if r.target < 0 {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendInt(b, i)
		b = append(b, ',')
		b = appendInt(b, r.target)
		n++
	}
	b = append(b, `],"blocks":[`...)
	for i, k := range d.Blocks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendInt(b, k.first)
		b = append(b, ',')
		b = appendInt(b, k.last)
		b = append(b, ',')
		b = appendInt(b, k.fn)
		for _, f := range [4]float64{k.box.X, k.box.Y, k.box.W, k.box.H} {
			b = append(b, ',')
			b = appendFloat(b, round(f))
		}
		b = append(b, ',')
		b = strconv.AppendBool(b, k.rule)
		b = append(b, ']')
	}
	b = append(b, `],"edges":[`...)
	for i, e := range d.Edges {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendInt(b, e.From)
		b = append(b, ',')
		b = appendInt(b, e.To)
		b = append(b, ',')
		b = appendString(b, e.Kind.String())
		b = append(b, ']')
	}
	b = append(b, `],"funcs":[`...)
	for i, f := range d.Funcs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for _, v := range [4]float64{f.box.X, f.box.Y, f.box.W, f.box.H} {
			b = appendFloat(b, round(v))
			b = append(b, ',')
		}
		b = appendInt(b, f.start)
		b = append(b, ']')
	}
	b = append(b, `],"marks":[`...)
	for i, m := range d.Marks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		b = appendInt(b, m.pos)
		b = append(b, ',')
		b = appendString(b, m.kind)
		b = append(b, ',')
		b = appendString(b, m.rule)
		b = append(b, ',')
		b = appendString(b, m.text)
		b = append(b, ']')
	}
	b = append(b, `],"helper":{`...)
	for i, h := range d.Helper {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = appendInt(b, h[0])
		b = append(b, `":`...)
		b = appendInt(b, h[1])
	}
	b = append(b, `},"map":{`...)
	for i, m := range d.Map {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = appendInt(b, m[0])
		b = append(b, `":`...)
		b = appendInt(b, m[1])
	}
	b = append(b, `},"w":`...)
	b = appendFloat(b, round(d.W))
	b = append(b, `,"h":`...)
	b = appendFloat(b, round(d.H))
	return append(b, '}')
}
