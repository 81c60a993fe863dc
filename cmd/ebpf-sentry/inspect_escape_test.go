package main

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// An object's strings (program name, section, attach target, loader
// error, unresolved references) reach the terminal escaped: a name holding
// "ESC[2J" must not clear the analyst's screen.
func TestInspectTextEscapesTheObjectsStrings(t *testing.T) {
	hostile := "evil\x1b[2J\x1b]0;owned\a"
	p := &program.Program{
		Name: hostile, Section: "kprobe/" + hostile, AttachTo: hostile, Origin: hostile + ".o",
		ObjectLoaderError: hostile, Unresolved: []program.Unresolved{{Kind: "map", Name: hostile, At: 0, Reason: hostile}},
		License: "GPL", Source: program.SourceELF,
		Insns: []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0},
	}
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeText(w, p, analysis.Analyze(p, nil))
	w.Flush()
	out := b.String()
	if strings.ContainsAny(out, "\x1b\a") {
		t.Fatalf("raw control characters reached the terminal:\n%q", out)
	}
	if n := strings.Count(out, `evil\x1b[2J`); n < 6 {
		t.Errorf("the hostile string should appear escaped in each of its 6 fields, got %d:\n%s", n, out)
	}
}
