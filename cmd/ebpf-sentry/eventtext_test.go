//go:build linux && amd64

package main

import (
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// The agent renders only the text lines the event carries, and the event
// still says how many instructions the program has.
func TestEventTextRendersOnlyWhatTheEventCarries(t *testing.T) {
	ev := &sensor.Event{Program: &program.Program{Name: "p", Insns: socketFilter(10), InsnCnt: 10}}
	ins, probs := ev.Program.Decode()
	rep := analysis.AnalyzeDecoded(ev.Program, ins, probs, nil)
	for _, tc := range []struct {
		opt       output.InsnOptions
		rendered  int
		shown     int
		truncated bool
	}{
		{output.InsnOptions{Mode: output.InsnModeText, Max: 4}, 4, 4, true},
		{output.InsnOptions{Mode: output.InsnModeBoth, Max: 0}, 10, 10, false},
		{output.InsnOptions{Mode: output.InsnModeRaw, Max: 4}, 0, 0, true},
		{output.InsnOptions{Mode: output.InsnModeNone}, 0, 0, false},
	} {
		pl := eventText(ev, rep, rules.Verdict{}, ins, tc.opt)
		if len(pl.Disasm) != tc.rendered || pl.DisasmTotal != 10 {
			t.Errorf("%+v: rendered %d lines (total %d), want %d (10)", tc.opt, len(pl.Disasm), pl.DisasmTotal, tc.rendered)
		}
		out := output.NewProgLoad(pl, tc.opt).Instructions
		switch {
		case tc.opt.Mode == output.InsnModeNone:
			if out != nil {
				t.Errorf("%+v: instructions %+v", tc.opt, out)
			}
		case tc.opt.Mode == output.InsnModeRaw:
			if out.Text != nil || out.Truncated != tc.truncated {
				t.Errorf("%+v: text %+v truncated %v", tc.opt, out.Text, out.Truncated)
			}
		default:
			if out.Text.Shown != tc.shown || out.Text.Total != 10 || out.Truncated != tc.truncated || !strings.HasPrefix(out.Text.Lines[0], "0: ") {
				t.Errorf("%+v: text shown %d total %d truncated %v lines %q", tc.opt, out.Text.Shown, out.Text.Total, out.Truncated, out.Text.Lines)
			}
		}
	}
}
