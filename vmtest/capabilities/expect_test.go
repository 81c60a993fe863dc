package capabilities

import (
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
			got, err := parseLockdown(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseLockdown(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseLockdown(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
