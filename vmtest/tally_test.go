package vmtest

import (
	"bytes"
	"strings"
	"testing"
)

func TestTallyWriter(t *testing.T) {
	out := "=== RUN   TestA\n--- PASS: TestA (0.00s)\n=== RUN   TestB\n    --- PASS: TestB/one (0.00s)\n" +
		"    --- FAIL: TestB/two (0.00s)\n--- FAIL: TestB (0.01s)\n--- SKIP: TestC (0.00s)\n" +
		"    x_test.go:3: output mentioning --- PASS: mid-line is not a result\nFAIL\n"
	tests := []struct {
		name   string
		chunks func(string) []string
	}{
		{name: "output written in one piece is counted", chunks: func(s string) []string { return []string{s} }},
		{name: "output written byte by byte is counted the same", chunks: func(s string) []string { return strings.Split(s, "") }},
		{name: "output split inside the markers is counted the same", chunks: func(s string) []string {
			return []string{s[:5], s[5:29], s[29:30], s[30:]}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			w := &TallyWriter{W: &b}
			for _, c := range tt.chunks(out) {
				if _, err := w.Write([]byte(c)); err != nil {
					t.Fatal(err)
				}
			}
			if b.String() != out {
				t.Error("output was not passed through unchanged")
			}
			if want := (Tally{Passed: 2, Failed: 2, Skipped: 1}); w.Tally != want {
				t.Errorf("tally %+v, want %+v", w.Tally, want)
			}
		})
	}
	t.Run("a line longer than the buffer is passed through but not counted", func(t *testing.T) {
		var b bytes.Buffer
		w := &TallyWriter{W: &b}
		long := "--- PASS: " + strings.Repeat("x", 2*maxLine) + "\n--- PASS: TestShort\n"
		if _, err := w.Write([]byte(long)); err != nil {
			t.Fatal(err)
		}
		if w.Tally.Passed != 1 || b.Len() != len(long) {
			t.Errorf("tally %+v, passed through %d of %d bytes", w.Tally, b.Len(), len(long))
		}
	})
}
