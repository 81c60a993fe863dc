package report

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// FuzzAppendString: any text (a program's strings and names are the
// attacker's) becomes a JSON string that decodes back to it and cannot end
// the <script> element holding it.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "r1 = 0", HostileName, "</script><!--", "\u2028\u2029", "\xff\xfe", "\"\\\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		if strings.ContainsAny(string(b), "<>&\u2028\u2029") {
			t.Fatalf("%q encodes to %s", s, b)
		}
		var back string
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
		}
		if want := string([]rune(s)); back != want { // each invalid byte becomes U+FFFD
			t.Fatalf("%q decodes back as %q", s, back)
		}
	})
}

// FuzzWrite: any instruction bytes and any name give a complete report.
func FuzzWrite(f *testing.F) {
	f.Add(Synthetic(40), HostileName, false)
	f.Add([]byte{}, "", false)
	f.Add([]byte{0x85, 0x10, 0, 0, 0xff, 0xff, 0xff, 0x7f, 0x95, 0, 0, 0, 0, 0, 0, 0}, "x", true)
	f.Fuzz(func(t *testing.T, raw []byte, name string, translated bool) {
		p := &program.Program{Source: program.SourceRaw, Name: name, Insns: raw}
		if translated {
			p.Source = program.SourceKernel
		}
		var buf strings.Builder
		if err := Write(&buf, input(t, p, nil)); err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(buf.String(), "</html>\n") {
			t.Fatal("report cut short")
		}
	})
}
