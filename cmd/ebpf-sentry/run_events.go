//go:build linux && amd64

package main

import (
	"slices"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// loaderCgroups resolves loaders' cgroup ids to paths, for the container
// and pod metadata of prog_load events.
var loaderCgroups = output.NewCgroupPaths("/sys/fs/cgroup", 1<<16)

// progLoad maps what the sensor captured, what analysis found and what the
// rules decided into the event builder's input. The verdict combines the
// kernel's rule table (which enforced) with the full rules (which may only
// alert); the stronger action wins and both sets of rules are listed.
func progLoad(ev *sensor.Event, rep *analysis.Report, v rules.Verdict, disasm []string) output.ProgLoad {
	rank := map[string]int{"allow": 0, "alert": 1, "block": 2}
	verdict := &output.Verdict{Action: "allow"}
	if k := ev.Verdict.String(); rank[k] > rank[verdict.Action] {
		verdict.Action = k
	}
	if a := v.Action.String(); rank[a] > rank[verdict.Action] {
		verdict.Action = a
	}
	seen := map[string]bool{}
	for _, h := range v.Hits {
		why := make([]string, len(h.Why))
		for i, r := range h.Why {
			why[i] = r.String()
		}
		verdict.Rules = append(verdict.Rules, output.RuleMatch{
			ID: h.ID, Action: h.Action.String(), Severity: h.Severity.String(), Tags: h.Tags, Why: strings.Join(why, "; "),
		})
		seen[h.ID] = true
	}
	if ev.RuleID != "" && !seen[ev.RuleID] && ev.Verdict != sensor.VerdictAllow {
		why := "kernel rule table"
		if ev.RuleID == sensor.RuleUnreadable {
			why = "instructions unreadable in the loader's memory (--block-unreadable)"
		}
		if ev.RuleID == sensor.RuleGroupRefsOver {
			why = "group map references past the cap (64) (--block-unreadable)"
		}
		if ev.RuleID == sensor.RuleLock {
			why = ev.Lock.Why(ev.InsnHash)
		}
		verdict.Rules = append(verdict.Rules, output.RuleMatch{ID: ev.RuleID, Action: ev.Verdict.String(), Why: why})
		seen[ev.RuleID] = true
	}
	if ev.Lock.Blocks() && !seen[sensor.RuleLock] {
		// A rule blocked it too: the lock's reason is listed beside it.
		verdict.Rules = append(verdict.Rules, output.RuleMatch{ID: sensor.RuleLock, Action: "block", Why: ev.Lock.Why(ev.InsnHash)})
	}
	if verdict.Action == "allow" && slices.Contains(ev.Missing, "verdict") {
		// The kernel's verdict record was lost: nothing says it allowed.
		verdict.Action = "unknown"
	}
	result := output.Result(ev.Outcome.Result)
	switch ev.Action {
	case sensor.ActionKilled:
		verdict.EnforcedBy = "signal"
	case sensor.ActionCorrupted:
		verdict.EnforcedBy = "corrupt"
		if result == output.ResultLoaded {
			result = output.ResultCorrupted
		}
	case sensor.ActionDenied:
		verdict.EnforcedBy = "lsm"
		result = output.ResultDenied
	}
	outcome := output.NewOutcome(result, int32(ev.Outcome.Errno))
	outcome.JudgedCopyDiffers = ev.JudgedCopyDiffers
	outcome.KilledByOther = ev.Outcome.KilledByOther
	outcome.RefusedBeforeHook = ev.RefusedBeforeHook
	outcome.Retry, outcome.RetryOf = ev.Retry, ev.RetryOf
	var cgroup string
	if ev.Program != nil && ev.Program.Loader != nil {
		cgroup = loaderCgroups.Path(ev.Program.Loader.CgroupID)
	}
	return output.ProgLoad{
		Cgroup:  cgroup,
		Time:    ev.Time,
		Program: ev.Program,
		Report:  rep,
		Outcome: outcome,
		Verdict: verdict,
		Disasm:  disasm,
		// Only a whole walk gives the fingerprint a load is locked by.
		InsnHash: insnHash(ev),
	}
}

// eventText is progLoad with the disassembly the event will carry and no
// more: none unless the event carries text (--event-insns text or both, or
// auto for a flagged load: output.Flagged), and only the first
// --event-insn-max lines (rendering text is the largest per-load cost of a
// program of a thousand instructions or more: docs/PERFORMANCE.md).
func eventText(ev *sensor.Event, rep *analysis.Report, v rules.Verdict, ins []insn.Instruction, opt output.InsnOptions) output.ProgLoad {
	pl := progLoad(ev, rep, v, nil)
	pl.Incomplete = !ev.Complete()
	pl.DisasmTotal = len(ins)
	if text, _ := opt.Forms(pl); text {
		n := len(ins)
		if opt.Max > 0 {
			n = min(n, opt.Max)
		}
		pl.Disasm = output.KernelText(nil, ins[:n])
	}
	return pl
}

// insnHash is the event's fingerprint when the kernel walked every
// instruction (its verdict arrived, nothing unread), else 0.
func insnHash(ev *sensor.Event) uint64 {
	if slices.Contains(ev.Missing, "verdict") || ev.ReadErrors > 0 || ev.Unprivileged || ev.Unjudged != "" {
		return 0
	}
	return ev.InsnHash
}
