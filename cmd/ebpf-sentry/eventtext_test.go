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
		{output.InsnOptions{Mode: output.InsnModeAuto, Max: 4}, 0, 0, true}, // allowed and whole: raw only
	} {
		pl := eventText(ev, rep, rules.Verdict{Action: rules.ActionNone}, ins, tc.opt)
		if len(pl.Disasm) != tc.rendered || pl.DisasmTotal != 10 {
			t.Errorf("%+v: rendered %d lines (total %d), want %d (10)", tc.opt, len(pl.Disasm), pl.DisasmTotal, tc.rendered)
		}
		out := output.NewProgLoad(pl, tc.opt).Instructions
		switch {
		case tc.opt.Mode == output.InsnModeNone:
			if out != nil {
				t.Errorf("%+v: instructions %+v", tc.opt, out)
			}
		case tc.opt.Mode == output.InsnModeRaw || tc.opt.Mode == output.InsnModeAuto:
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

// With --event-insns auto the agent renders text for the loads a person
// will read (a rule matched, the capture is incomplete) and for no other.
func TestEventTextRendersAutoTextOnlyForFlaggedLoads(t *testing.T) {
	opt := output.InsnOptions{Mode: output.InsnModeAuto, Max: output.DefaultInsnMax}
	ins, probs := (&program.Program{Insns: socketFilter(10)}).Decode()
	for _, tc := range []struct {
		name string
		ev   *sensor.Event
		v    rules.Verdict
		want bool
	}{
		{"allowed by the kernel and the rules", &sensor.Event{Verdict: sensor.VerdictAllow}, rules.Verdict{}, false},
		{"alerted by the full rules", &sensor.Event{Verdict: sensor.VerdictAllow},
			rules.Verdict{Action: rules.ActionAlert, Hits: []rules.Hit{{ID: "r", Action: rules.ActionAlert}}}, true},
		{"blocked by the kernel table", &sensor.Event{Verdict: sensor.VerdictBlock, RuleID: "k", Action: sensor.ActionKilled}, rules.Verdict{}, true},
		{"its verdict record lost", &sensor.Event{Verdict: sensor.VerdictAllow, Missing: []string{"verdict"}}, rules.Verdict{}, true},
		{"its instructions unreadable", &sensor.Event{Verdict: sensor.VerdictAllow, ReadErrors: 1}, rules.Verdict{}, true},
	} {
		tc.ev.Program = &program.Program{Name: "p", Insns: socketFilter(10), InsnCnt: 10}
		rep := analysis.AnalyzeDecoded(tc.ev.Program, ins, probs, nil)
		pl := eventText(tc.ev, rep, tc.v, ins, opt)
		if got := len(pl.Disasm) == 10; got != tc.want {
			t.Errorf("%s: rendered %d lines, want text %v", tc.name, len(pl.Disasm), tc.want)
		}
		out := output.NewProgLoad(pl, opt).Instructions
		if out.Raw == nil || out.Raw.Shown != 10 || (out.Text != nil) != tc.want {
			t.Errorf("%s: event instructions raw %+v text %+v, want raw and text %v", tc.name, out.Raw, out.Text, tc.want)
		}
	}
}
