//go:build linux && amd64

package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
	"github.com/ebpf-sentry/ebpf-sentry/target"
)

// attachJudge turns the sensor's attach events into prog_attach and
// prog_detach events: the target named, the attached program's facts (its
// load as the sensor saw it, else read from the kernel by id), judged by
// the rules with attach_to (and the attach matchers) set to the real target.
type attachJudge struct {
	res   *target.Resolver
	progs map[uint32]*program.Program // recent loads by prog id, bounded
	order []uint32
	max   int
	// fetch reads a program the sensor did not see load (inventory by id).
	fetch func(id uint32) (*program.Program, error)
	// netlink: XDP and tc attachments the netlink dump already reported
	// (legacy attaches through netlink never reach the bpf() hooks).
	netlink     map[target.NetlinkAttach]bool
	dumpNetlink func() ([]target.NetlinkAttach, error)
	// release follows reported links and perf attachments until they
	// go without a detach call (run_release.go); nil: not followed.
	release *releaseWatch
}

func newAttachJudge() *attachJudge {
	return &attachJudge{res: target.NewResolver(), progs: map[uint32]*program.Program{}, max: 4096, fetch: fetchProgram,
		netlink: map[target.NetlinkAttach]bool{}, dumpNetlink: target.NetlinkAttachments}
}

// reconcileNetlink reports, once each, the XDP programs and tc bpf filters
// a netlink dump of every network namespace shows and no earlier dump did:
// attached through netlink (ip link … xdp, tc filter … bpf), they never
// passed the bpf() hooks. After the fact: the attaching process is unknown
// and nothing is stopped; the rules judge the program and the interface.
func (j *attachJudge) reconcileNetlink(w io.Writer, o *runOptions, tel *telemetry, set *rules.Set) {
	all, err := j.dumpNetlink()
	if err != nil {
		slog.Debug("netlink dump of XDP and tc attachments", "err", err)
	}
	own := ownNetNS()
	live := make(map[target.NetlinkAttach]bool, len(all))
	for _, a := range all {
		live[a] = true
		if j.netlink[a] {
			continue
		}
		j.netlink[a] = true
		ev := &sensor.AttachEvent{Time: time.Now(), Op: sensor.OpNetlinkDump, Caller: &program.Loader{}, ProgID: a.ProgID,
			Verdict: sensor.VerdictAllow, Action: sensor.ActionNone, RuleIndex: -1, Result: sensor.AttachDone}
		tg := target.Target{Kind: target.KindInterface, Name: a.Interface, Interface: a.Interface, Ifindex: a.Ifindex, AttachType: a.Hook}
		if a.NetNS != 0 && a.NetNS != own {
			tg.NetNS = a.NetNS
		}
		if err := j.handleJudged(w, o, tel, ev, j.judgeTarget(set, ev, tg)); err != nil {
			slog.Warn("write event", "err", err)
		}
	}
	for a := range j.netlink { // detached: a later attach is new again
		if !live[a] {
			delete(j.netlink, a)
		}
	}
}

func ownNetNS() uint32 {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &st) != nil {
		return 0
	}
	return uint32(st.Ino)
}

// remember keeps a loaded program's facts for its attach.
func (j *attachJudge) remember(ev *sensor.Event) {
	p := ev.Program
	if p == nil || p.Kernel == nil || p.Kernel.ID == 0 || ev.Outcome.Result != sensor.ResultLoaded {
		return
	}
	if _, ok := j.progs[p.Kernel.ID]; !ok {
		j.order = append(j.order, p.Kernel.ID)
	}
	j.progs[p.Kernel.ID] = p
	for len(j.order) > j.max {
		delete(j.progs, j.order[0])
		j.order = j.order[1:]
	}
}

func fetchProgram(id uint32) (*program.Program, error) {
	inv, err := inventory.Scan(&inventory.Options{NoOwners: true, Programs: map[uint32]bool{id: true}})
	if err != nil {
		return nil, err
	}
	for _, p := range inv.Programs {
		if p.ID == id {
			if p.Prog == nil {
				return nil, fmt.Errorf("prog %d: %s", id, p.Unreadable)
			}
			return p.Prog, nil
		}
	}
	return nil, fmt.Errorf("prog %d: not loaded", id)
}

// Target names the event's target.
func (j *attachJudge) Target(ev *sensor.AttachEvent) target.Target {
	t := ev.Target
	return j.res.Resolve(target.Raw{
		AttachType: t.AttachType, FD: t.FD, Flags: t.Flags, BTFID: t.BTFID, ProgID: t.ProgID, CgroupIno: t.CgroupIno,
		MapID: t.MapID, NetNS: t.NetNS, PID: ev.Caller.PID,
		PerfType: t.PerfType, PerfConfig: t.PerfConfig, PerfOffset: t.PerfOffset, Count: t.Count, Name: t.Name,
		NameFromPerf: t.NameFromPerf, PerfFound: t.PerfFound, Addrs: t.Addrs, Syms: t.Syms, RawTP: ev.Op == sensor.OpRawTPOpen, ProgType: ev.ProgType,
	})
}

// judged is one attach with its target, program and verdict.
type judged struct {
	target  target.Target
	prog    *program.Program // nil: unknown
	facts   string           // load | kernel | unknown
	rep     *analysis.Report
	verdict rules.Verdict
	// prov: the provenance the kernel gave the attach (a token) where
	// the program's facts lacked it.
	prov *program.Provenance
}

func (j *attachJudge) judge(set *rules.Set, ev *sensor.AttachEvent) judged {
	return j.judgeTarget(set, ev, j.Target(ev))
}

func (j *attachJudge) judgeTarget(set *rules.Set, ev *sensor.AttachEvent, tg target.Target) judged {
	out := judged{target: tg, facts: "unknown"}
	if ev.ProgID != 0 {
		if p, ok := j.progs[ev.ProgID]; ok {
			out.prog, out.facts = p, "load"
		} else if p, err := j.fetch(ev.ProgID); err == nil {
			out.prog, out.facts = p, "kernel"
		} else {
			slog.Debug("attached program's facts", "prog_id", ev.ProgID, "err", err)
		}
	}
	if ev.Op.Detaches() {
		return out // nothing to judge: the picture closes
	}
	// Judge a copy with the real target: the attach_to of the load (a BTF
	// name, or nothing) is replaced by where the program actually goes.
	p := &program.Program{Type: ev.ProgType}
	if out.prog != nil {
		c := *out.prog
		p = &c
	}
	// The kernel says the program was loaded through a token (its
	// prog->aux->token): so do the facts the rules and the event see, even
	// when its load was not seen (facts read from the kernel, or none).
	if ev.ViaToken && (p.Provenance == nil || p.Provenance.Token == nil) {
		pv := program.Provenance{}
		if p.Provenance != nil {
			pv = *p.Provenance
		}
		pv.ViaToken, pv.Token = true, ev.Token
		p.Provenance = &pv
		out.prov = &pv
	}
	p.AttachPoint = &program.AttachPoint{Kind: string(out.target.Kind), Binary: out.target.Binary, Symbol: out.target.Symbol,
		Interface: out.target.Interface, Cgroup: out.target.Cgroup}
	var aopts *analysis.Options
	if analysis.Translated(p) {
		// the kernel's translated form calls helpers by address: named
		// from kallsyms as bpftool does, else counted under bogus ids
		if ks, err := readCalledKallsymsOf(p); err == nil {
			aopts = &analysis.Options{Kallsyms: ks}
		} else {
			slog.Debug("attached program's helper calls unnamed", "prog_id", ev.ProgID, "err", err)
		}
	}
	out.rep = analysis.Analyze(p, aopts)
	names := out.target.Names()
	if len(names) == 0 {
		names = []string{""}
	}
	seen := map[string]bool{}
	for _, n := range names {
		p.AttachTo = n
		v := rules.Evaluate(set, p, out.rep)
		for _, h := range v.Hits {
			if !seen[h.ID] {
				seen[h.ID] = true
				out.verdict.Hits = append(out.verdict.Hits, h)
				if h.Action > out.verdict.Action {
					out.verdict.Action = h.Action
				}
			}
		}
	}
	return out
}

// handleAttach judges one attach and sends it to the text line and/or the
// output pipeline.
func (j *attachJudge) handle(w io.Writer, o *runOptions, tel *telemetry, set *rules.Set, ev *sensor.AttachEvent) error {
	return j.handleJudged(w, o, tel, ev, j.judge(set, ev))
}

func (j *attachJudge) handleJudged(w io.Writer, o *runOptions, tel *telemetry, ev *sensor.AttachEvent, jd judged) error {
	tel.Pipeline.Emit(attachEvent(ev, jd))
	j.release.track(ev, jd)
	if o.format != "text" {
		return nil
	}
	_, err := fmt.Fprintln(w, attachLine(ev, jd))
	return err
}

func attachEvent(ev *sensor.AttachEvent, jd judged) *output.Event {
	c := ev.Caller
	uid, gid := c.UID, c.GID
	l := output.Loader{PID: c.PID, TID: c.TID, UID: &uid, GID: &gid, Comm: c.Comm, Exe: c.Exe, CgroupID: c.CgroupID,
		Cgroup: loaderCgroups.Path(c.CgroupID), Unknown: []string{"ppid"}}
	if ev.Op == sensor.OpNetlinkDump {
		// no call was seen: whoever attached it is not known
		l = output.Loader{Unknown: []string{"pid", "tid", "ppid", "uid", "gid", "comm"}}
	}
	tg := jd.target
	a := output.Attach{
		Op: string(ev.Op), Replace: ev.Op == sensor.OpLinkUpdate || ev.Target.Flags&unix.BPF_F_REPLACE != 0 && !ev.Op.Detaches(),
		ReplacedProgID: ev.ReplaceProgID, ProgID: ev.ProgID, LinkID: ev.LinkID, AttachType: tg.AttachType,
		Target: output.AttachTarget{Kind: string(tg.Kind), Name: tg.Name, Binary: tg.Binary, Symbol: tg.Symbol, Offset: tg.Offset,
			Symbols: tg.Symbols, Interface: tg.Interface, Ifindex: tg.Ifindex, Cgroup: tg.Cgroup, CgroupID: tg.CgroupID,
			ProgID: tg.ProgID, Unresolved: tg.Unresolved},
		Result: attachResult(ev), Errno: int32(ev.Errno), ProgFacts: jd.facts,
	}
	if ev.Result == sensor.AttachDone {
		a.Errno = 0
	}
	if u := ev.Undo; u != nil {
		a.Undo = &output.AttachUndo{Outcome: u.Outcome, WindowNS: int64(u.Window), Error: u.Error}
	}
	a.Note = attachNote(ev, jd)
	verdict := attachVerdict(ev, jd.verdict)
	out := output.NewProgAttach(ev.Time, ev.Op.Detaches(), l, a, jd.prog, jd.rep, verdict)
	if jd.prov != nil {
		out.SetProvenance(jd.prov)
	}
	return out
}

func attachResult(ev *sensor.AttachEvent) string {
	switch {
	case ev.Action == sensor.ActionDenied:
		return "denied"
	case ev.Result == sensor.AttachKilled || ev.Action == sensor.ActionKilled && ev.Result == sensor.AttachUnknown:
		return "killed"
	}
	return string(ev.Result)
}

// attachNote says in words what the result means for the program.
func attachNote(ev *sensor.AttachEvent, jd judged) string {
	switch {
	case ev.AfterTheFact && jd.verdict.Action == rules.ActionBlock:
		return "seen after the fact: attached between the caller's perf_event_open and the on-demand ioctl hook's attach (found with BPF_TASK_FD_QUERY); a block rule matched, too late to stop it: --ioctl-hook always stops it at the call"
	case ev.AfterTheFact:
		return "seen after the fact: attached between the caller's perf_event_open and the on-demand ioctl hook's attach (found with BPF_TASK_FD_QUERY)"
	case ev.Op == sensor.OpNetlinkDump:
		return "found by a netlink dump at reconciliation, not at attach time (attached through netlink, no bpf() call): the attacher is unknown and nothing was stopped"
	case ev.Undo != nil && ev.Undo.Outcome == sensor.UndoDetached:
		return fmt.Sprintf("blocked: the caller was killed at entry; the kernel completed the BPF_PROG_ATTACH anyway (it outlives its caller) and the sensor detached it %v after the call returned; the program stays loaded and unused", ev.Undo.Window)
	case ev.Undo != nil && ev.Undo.Outcome == sensor.UndoNotAttached:
		return "blocked: the caller was killed at entry; the BPF_PROG_ATTACH completed, and the target no longer holds the program (" + ev.Undo.Error + "); the program stays loaded and unused"
	case ev.Undo != nil:
		return "ENFORCEMENT FAILED: the caller was killed at entry, the BPF_PROG_ATTACH completed, and the sensor could not detach it (" + ev.Undo.Error + "): the program may still be attached: check the target (scan)"
	case ev.Action == sensor.ActionKilled && ev.Op == sensor.OpProgAttach:
		return "blocked: the caller was killed at entry, but BPF_PROG_ATTACH attachments outlive their caller: check the target (scan); the program stays loaded"
	case ev.Action == sensor.ActionKilled:
		return "blocked: the caller was killed at entry; what it attached dies with its fds; the program stays loaded and unused"
	case ev.Action == sensor.ActionDenied:
		return "blocked: the kernel refused the attach (EPERM); the program stays loaded and unused"
	case ev.Action == sensor.ActionMonitor:
		return "would be blocked (monitor mode)"
	case ev.Action == sensor.ActionKillFailed:
		return "block verdict, but the kill failed: attached"
	case jd.verdict.Action == rules.ActionBlock:
		return "a block rule matched in user space, where attaches can only be alerted on (rules check says which rules the kernel enforces)"
	}
	return ""
}

func attachVerdict(ev *sensor.AttachEvent, v rules.Verdict) *output.Verdict {
	rank := map[string]int{"allow": 0, "alert": 1, "block": 2}
	out := &output.Verdict{Action: "allow"}
	if k := ev.Verdict.String(); rank[k] > rank[out.Action] {
		out.Action = k
	}
	if a := v.Action.String(); rank[a] > rank[out.Action] && a != "block" {
		out.Action = a
	} else if a == "block" && out.Action != "block" {
		out.Action = "alert" // not enforced at attach: see the note
	}
	seen := map[string]bool{}
	for _, h := range v.Hits {
		why := make([]string, len(h.Why))
		for i, r := range h.Why {
			why[i] = r.String()
		}
		out.Rules = append(out.Rules, output.RuleMatch{ID: h.ID, Action: h.Action.String(), Severity: h.Severity.String(), Tags: h.Tags, Why: strings.Join(why, "; ")})
		seen[h.ID] = true
	}
	if ev.RuleID != "" && !seen[ev.RuleID] && ev.Verdict != sensor.VerdictAllow {
		out.Rules = append(out.Rules, output.RuleMatch{ID: ev.RuleID, Action: ev.Verdict.String(), Why: "kernel attach table"})
	}
	switch ev.Action {
	case sensor.ActionKilled:
		out.EnforcedBy = "signal"
	case sensor.ActionDenied:
		out.EnforcedBy = "lsm"
	}
	return out
}

// attachLine is one text line per attach; names are escaped (%q).
func attachLine(ev *sensor.AttachEvent, jd judged) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	c := ev.Caller
	fmt.Fprintf(&b, " %s caller=%q pid=%d uid=%d exe=%q prog_id=%d", ev.Op, c.Comm, c.PID, c.UID, c.Exe, ev.ProgID)
	if jd.prog != nil {
		fmt.Fprintf(&b, " prog=%q", jd.prog.Name)
	}
	fmt.Fprintf(&b, " target=%s:%q", jd.target.Kind, jd.target.Name)
	if ev.ReplaceProgID != 0 {
		fmt.Fprintf(&b, " replaces=%d", ev.ReplaceProgID)
	}
	switch ev.Result {
	case sensor.AttachFailed:
		fmt.Fprintf(&b, " failed=%s", unix.ErrnoName(syscall.Errno(ev.Errno)))
	default:
		fmt.Fprintf(&b, " result=%s", attachResult(ev))
	}
	if ev.LinkID != 0 {
		fmt.Fprintf(&b, " link=%d", ev.LinkID)
	}
	if ev.Action != sensor.ActionNone {
		fmt.Fprintf(&b, " action=%s", ev.Action)
	}
	if len(jd.verdict.Hits) > 0 {
		ids := make([]string, len(jd.verdict.Hits))
		for i, h := range jd.verdict.Hits {
			ids[i] = h.ID + ":" + h.Action.String()
		}
		fmt.Fprintf(&b, " rules=%s", strings.Join(ids, ","))
	}
	return b.String()
}
