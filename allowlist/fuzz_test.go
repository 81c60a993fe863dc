package allowlist

import "testing"

// Any input gives a list or an error, and a list that parsed marshals into
// something that parses to the same fingerprints.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: 1\nentries:\n  - fingerprint: \"0x1\"\n    name: a\n    loaders: [{exe: /a, inode: 1, dev: 2}]\n"))
	f.Add([]byte("version: 1\nentries: []\n"))
	f.Add([]byte("version: 1\nentries:\n  - fingerprint: 0x1\n  - fingerprint: \"0x2\"\n    first_seen: 2026-01-01T00:00:00Z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("marshal a parsed list: %v", err)
		}
		back, err := Parse("again.yaml", out)
		if err != nil {
			t.Fatalf("a marshalled list does not parse: %v\n%s", err, out)
		}
		a, b := l.Fingerprints(), back.Fingerprints()
		if len(a) != len(b) {
			t.Fatalf("%d fingerprints became %d", len(a), len(b))
		}
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("fingerprint %d: %#x became %#x", i, a[i], b[i])
			}
		}
	})
}
