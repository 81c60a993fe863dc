package vmtest

import (
	"bytes"
	"io"
)

// Tally counts the results a `go test -v` binary printed, subtests included.
type Tally struct {
	Passed, Failed, Skipped int
}

// maxLine bounds the partial line kept between writes; longer lines are not
// result lines and are only passed through.
const maxLine = 4096

// TallyWriter passes test output through to W and counts its "--- PASS:",
// "--- FAIL:" and "--- SKIP:" lines, so the init can tell a suite that passed
// from one that ran nothing (a -test.run matching no test, or all skipped).
type TallyWriter struct {
	W     io.Writer
	Tally Tally
	line  []byte
	long  bool // the current line outgrew maxLine
}

func (t *TallyWriter) Write(p []byte) (int, error) {
	n, err := t.W.Write(p)
	for rest := p[:n]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.keep(rest)
			break
		}
		t.keep(rest[:i])
		if !t.long {
			t.count(t.line)
		}
		t.line, t.long = t.line[:0], false
		rest = rest[i+1:]
	}
	return n, err
}

func (t *TallyWriter) keep(b []byte) {
	if t.long || len(t.line)+len(b) > maxLine {
		t.long = true
		return
	}
	t.line = append(t.line, b...)
}

func (t *TallyWriter) count(line []byte) {
	line = bytes.TrimLeft(line, " \t")
	switch {
	case bytes.HasPrefix(line, []byte("--- PASS: ")):
		t.Tally.Passed++
	case bytes.HasPrefix(line, []byte("--- FAIL: ")):
		t.Tally.Failed++
	case bytes.HasPrefix(line, []byte("--- SKIP: ")):
		t.Tally.Skipped++
	}
}
