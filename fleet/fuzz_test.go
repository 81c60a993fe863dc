package fleet

import (
	"testing"
	"unicode"
)

// FuzzParseProgLoad feeds arbitrary events from the bus: never a panic, and
// an accepted one has a well-formed fingerprint and escaped strings.
func FuzzParseProgLoad(f *testing.F) {
	f.Add([]byte(`{"event":"prog_load","host":"h","time":"2026-01-01T00:00:00Z","prog":{"name":"x","sha256":"` + fingerprint("a") + `","type":{"name":"kprobe"}},"loader":{"exe":"/bin/x"}}`))
	f.Add([]byte(`{"event":"prog_load","host":"h\n","time":"2026-01-01T00:00:00Z","prog":{"sha256":"` + fingerprint("b") + `"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseProgLoad(data)
		if err != nil {
			return
		}
		if !sha256Hex.MatchString(s.SHA256) {
			t.Fatalf("accepted fingerprint %q", s.SHA256)
		}
		for _, v := range []string{s.Host, s.Name, s.ProgType, s.LoaderExe} {
			for _, r := range v {
				if !unicode.IsPrint(r) {
					t.Fatalf("unescaped %q in %+v", r, s)
				}
			}
		}
	})
}
