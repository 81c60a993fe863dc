package vmtest

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseResults(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Results
		wantErr bool
	}{
		{name: "an empty file is a VM that reported nothing", in: "", want: Results{}},
		{name: "two suites and done, with the serial port's CRLF",
			in:   "vmtest-result capabilities 0 24 0 0\r\nvmtest-result sensor 1 3 1 2\r\nvmtest-done\r\n",
			want: Results{Suites: []SuiteResult{{"capabilities", 0, Tally{24, 0, 0}}, {"sensor", 1, Tally{3, 1, 2}}}, Done: true}},
		{name: "a suite without done is kept and done stays false",
			in:   "vmtest-result capabilities 2 0 0 0\n",
			want: Results{Suites: []SuiteResult{{"capabilities", 2, Tally{}}}}},
		{name: "a signal death code of 137 is accepted",
			in:   "vmtest-result a 137 1 0 0\nvmtest-done\n",
			want: Results{Suites: []SuiteResult{{"a", 137, Tally{1, 0, 0}}}, Done: true}},
		{name: "a foreign line is malformed", in: "hello\n", wantErr: true},
		{name: "a line without the test counts is malformed", in: "vmtest-result a 0\n", wantErr: true},
		{name: "a negative exit code is malformed", in: "vmtest-result a -1 0 0 0\n", wantErr: true},
		{name: "an exit code above 255 is malformed", in: "vmtest-result a 256 0 0 0\n", wantErr: true},
		{name: "a negative test count is malformed", in: "vmtest-result a 0 1 -1 0\n", wantErr: true},
		{name: "a suite reported twice is malformed", in: "vmtest-result a 0 1 0 0\nvmtest-result a 0 1 0 0\n", wantErr: true},
		{name: "a line after done is malformed", in: "vmtest-done\nvmtest-result a 0 1 0 0\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseResults([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedResults) {
					t.Fatalf("ParseResults(%q) error = %v, want ErrMalformedResults", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseResults(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseResults(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestResultLinesRoundTrip(t *testing.T) {
	data := ResultLine("capabilities", 0, Tally{9, 0, 1}) + ResultLine("sensor", 3, Tally{2, 5, 0}) + DoneLine()
	r, err := ParseResults([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := r.Suite("sensor"); !ok || s.Code != 3 || s.Tally != (Tally{2, 5, 0}) || !r.Done {
		t.Errorf("round trip gave %+v", r)
	}
	if _, ok := r.Suite("missing"); ok {
		t.Error("Code reports a suite that never ran")
	}
}

func TestKernelLabel(t *testing.T) {
	tests := []struct{ name, cmdline, want string }{
		{"the label is found among other parameters", "console=ttyS0 vmtest.kernel=6.12-lockdown lockdown=integrity", "6.12-lockdown"},
		{"a trailing newline from /proc/cmdline is ignored", "quiet vmtest.kernel=5.10\n", "5.10"},
		{"no label gives an empty string", "console=ttyS0 quiet", ""},
		{"a parameter that only starts alike is not the label", "vmtest.kernelx=1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KernelLabel(tt.cmdline); got != tt.want {
				t.Errorf("KernelLabel(%q) = %q, want %q", tt.cmdline, got, tt.want)
			}
		})
	}
}
