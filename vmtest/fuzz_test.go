package vmtest

import (
	"reflect"
	"strings"
	"testing"
)

// FuzzParseResults: any bytes on the result port give results or an error,
// never a panic, and accepted results survive being written out again.
func FuzzParseResults(f *testing.F) {
	f.Add([]byte("vmtest-result capabilities 0 24 0 0\r\nvmtest-done\r\n"))
	f.Add([]byte("vmtest-result a 1 0 1 0\nvmtest-result b 255 3 0 7\n"))
	f.Add([]byte("\x00\xff vmtest-done"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseResults(data)
		if err != nil {
			return
		}
		var b strings.Builder
		for _, s := range r.Suites {
			b.WriteString(ResultLine(s.Name, s.Code, s.Tally))
		}
		if r.Done {
			b.WriteString(DoneLine())
		}
		again, err := ParseResults([]byte(b.String()))
		if err != nil {
			t.Fatalf("re-encoded results %q do not parse: %v", b.String(), err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed %+v into %+v", r, again)
		}
	})
}
