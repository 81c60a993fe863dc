package kernelprobe

import (
	"slices"
	"strings"
	"testing"
)

func TestParseLockdown(t *testing.T) {
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "no lockdown is read from the brackets", in: "[none] integrity confidentiality\n", want: "none"},
		{name: "integrity in the middle is found", in: "none [integrity] confidentiality\n", want: "integrity"},
		{name: "confidentiality at the end is found", in: "none integrity [confidentiality]", want: "confidentiality"},
		{name: "a file without brackets is an error", in: "none integrity confidentiality", wantErr: true},
		{name: "empty brackets are an error", in: "[] none", wantErr: true},
		{name: "an empty file is an error", in: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLockdown(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseLockdown(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseLockdown(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	t.Run("the error quotes the text, escaped and cut", func(t *testing.T) {
		_, err := ParseLockdown("bad\x1b[31m " + strings.Repeat("x", 200))
		if err == nil || strings.Contains(err.Error(), "\x1b") || !strings.Contains(err.Error(), `\x1b`) || len(err.Error()) > 140 {
			t.Errorf("error = %q, want the text escaped and cut to 80 bytes", err)
		}
	})
}

func TestParseLSMs(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"lockdown,capability,landlock,bpf\n", []string{"lockdown", "capability", "landlock", "bpf"}},
		{"capability,,apparmor", []string{"capability", "apparmor"}},
		{"\n", nil},
	} {
		if got := ParseLSMs(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("ParseLSMs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if !HasLSM("capability,bpf\n", "bpf") || HasLSM("capability,bpfx", "bpf") || HasLSM("", "bpf") {
		t.Error("HasLSM must match whole names only")
	}
}
