package kernelprobe

import (
	"strings"
	"testing"
)

// The lockdown and LSM files are read from securityfs, which a hostile
// mount could replace: any text gives a mode or an error, never a panic,
// and a mode is always one bracketed word of the text.
func FuzzParseLockdown(f *testing.F) {
	for _, s := range []string{"[none] integrity confidentiality\n", "none [integrity]", "[]", "[", "]x[", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mode, err := ParseLockdown(s)
		if err != nil {
			return
		}
		if mode == "" || !strings.Contains(s, "["+mode+"]") || strings.ContainsAny(mode, " \t\n") {
			t.Fatalf("ParseLockdown(%q) = %q", s, mode)
		}
	})
}

func FuzzParseLSMs(f *testing.F) {
	for _, s := range []string{"lockdown,capability,bpf\n", ",,", "bpf", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, l := range ParseLSMs(s) {
			if l == "" || strings.Contains(l, ",") || !HasLSM(s, l) {
				t.Fatalf("ParseLSMs(%q) gave %q", s, l)
			}
		}
	})
}
