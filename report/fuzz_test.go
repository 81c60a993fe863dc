package report

import (
	"encoding/json"
	"strings"
	"testing"
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
