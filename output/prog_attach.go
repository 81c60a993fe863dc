package output

import (
	"syscall"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Attach is the section of prog_attach and prog_detach events: one attach,
// replacement or detachment of a loaded program, with its target named.
type Attach struct {
	// Op is how: link_create, raw_tracepoint_open, prog_attach,
	// prog_detach, link_update, link_detach, perf_event_set_bpf.
	Op string `json:"op"`
	// Replace: the call replaces a program (link_update, BPF_F_REPLACE);
	// ReplacedProgID is the program replaced when the kernel said it.
	Replace        bool         `json:"replace,omitempty"`
	ReplacedProgID uint32       `json:"replaced_prog_id,omitempty"`
	ProgID         uint32       `json:"prog_id,omitempty"` // 0: the fd named no program
	LinkID         uint32       `json:"link_id,omitempty"`
	AttachType     string       `json:"attach_type,omitempty"`
	Target         AttachTarget `json:"target"`
	// Result: attached (detached, replaced), failed (Errno), killed (the
	// caller was killed at entry; its link dies with it), denied (an LSM
	// hook refused the call), unknown (the syscall's end was not seen).
	Result string `json:"result"`
	Errno  int32  `json:"errno,omitempty"`
	Error  string `json:"error,omitempty"`
	// ProgFacts says where prog and analysis come from: "load" (the sensor
	// saw the program's load), "kernel" (read by id now), or "unknown".
	ProgFacts string `json:"prog_facts"`
	// Note states consequences in words, e.g. that a blocked program stays
	// loaded and unused.
	Note string `json:"note,omitempty"`
	// Undo: a blocked BPF_PROG_ATTACH that completed although its caller
	// was killed at entry, and what the agent did to take it off.
	Undo *AttachUndo `json:"undo,omitempty"`
	// Release: how a detach that no bpf() call made (link_released,
	// perf_event_released: the last fd closed, e.g. the attacher exited)
	// was observed.
	Release *AttachRelease `json:"release,omitempty"`
}

// AttachRelease says how the agent learnt that an attachment it reported
// ended without a detach call. The kernel has no tracepoint for a link's
// or a perf event's release: the agent checks the attachments it reported
// by id, when their attacher exits and on a timer.
type AttachRelease struct {
	// Observed: attacher_exit (the attacher's pidfd said it exited, then
	// the check found the attachment gone) or sweep (the periodic check).
	Observed string `json:"observed"`
	// DetectedWithinMS bounds the delay: the attachment was still there
	// at a check this many milliseconds before the one that found it gone.
	DetectedWithinMS int64 `json:"detected_within_ms"`
	// Holder: for perf_event_released, the (pid, fd) last seen running the
	// program (the attacher's fd, or a copy found in another process).
	HolderPID uint32 `json:"holder_pid,omitempty"`
	HolderFD  int32  `json:"holder_fd,omitempty"`
}

// AttachUndo is the agent's detach of a blocked attach the kernel
// completed.
type AttachUndo struct {
	// Outcome: detached_by_sentry, not_attached (the target no longer
	// held it), detach_failed (it may still be attached: Error says why).
	Outcome string `json:"outcome"`
	// WindowNS is how long it was attached: from the syscall's return to
	// the detach's return, in nanoseconds.
	WindowNS int64  `json:"window_ns"`
	Error    string `json:"error,omitempty"`
}

// AttachTarget is where the program goes, with names (package target).
type AttachTarget struct {
	Kind       string   `json:"kind"`
	Name       string   `json:"name,omitempty"`
	Binary     string   `json:"binary,omitempty"`
	Symbol     string   `json:"symbol,omitempty"`
	Offset     uint64   `json:"offset,omitempty"`
	Symbols    []string `json:"symbols,omitempty"`
	Interface  string   `json:"interface,omitempty"`
	Ifindex    uint32   `json:"ifindex,omitempty"`
	Cgroup     string   `json:"cgroup,omitempty"`
	CgroupID   uint64   `json:"cgroup_id,omitempty"`
	ProgID     uint32   `json:"target_prog_id,omitempty"`
	Unresolved string   `json:"unresolved,omitempty"`
}

// NewProgAttach builds a prog_attach (or, for detaching ops, prog_detach)
// event, every string escaped. prog and rep are the attached program and
// its analysis when known (nil otherwise); they fill prog and analysis as
// in prog_load, without instructions.
func NewProgAttach(t time.Time, detach bool, l Loader, a Attach, prog *program.Program, rep *analysis.Report, v *Verdict) *Event {
	l.Comm, l.Exe, l.Cgroup = Escape(l.Comm), Escape(l.Exe), Escape(l.Cgroup)
	a.Op, a.AttachType, a.Note, a.ProgFacts, a.Result = Escape(a.Op), Escape(a.AttachType), Escape(a.Note), Escape(a.ProgFacts), Escape(a.Result)
	if a.Errno > 0 && a.Error == "" {
		a.Error = syscall.Errno(a.Errno).Error()
	}
	tg := &a.Target
	tg.Kind, tg.Name, tg.Binary, tg.Symbol = Escape(tg.Kind), Escape(tg.Name), Escape(tg.Binary), Escape(tg.Symbol)
	tg.Interface, tg.Cgroup, tg.Unresolved = Escape(tg.Interface), Escape(tg.Cgroup), Escape(tg.Unresolved)
	tg.Symbols = escapeAll(tg.Symbols)
	if a.Undo != nil {
		u := *a.Undo
		u.Outcome, u.Error = Escape(u.Outcome), Escape(u.Error)
		a.Undo = &u
	}
	if a.Release != nil {
		r := *a.Release
		r.Observed = Escape(r.Observed)
		a.Release = &r
	}
	kind := KindProgAttach
	if detach {
		kind = KindProgDetach
	}
	ev := &Event{Event: kind, Time: t, Loader: &l, Attach: &a}
	if prog != nil {
		pl := NewProgLoad(ProgLoad{Program: prog, Report: rep}, InsnOptions{})
		ev.Prog, ev.Analysis, ev.Provenance = pl.Prog, pl.Analysis, pl.Provenance
	}
	if v != nil {
		ev.Verdict = copyVerdict(v)
	}
	return ev
}

// ecsProgAttach: the caller as the process, the target in the message.
func ecsProgAttach(ev *Event, e *ECSEvent) {
	verb := "attached"
	if ev.Event == KindProgDetach {
		verb = "detached"
	}
	e.Message = "BPF program " + verb
	if a := ev.Attach; a != nil {
		e.Message += " (" + a.Op + ")"
		if a.Target.Name != "" {
			e.Message += " to " + a.Target.Kind + " " + a.Target.Name
		}
		e.Message += ": " + a.Result
		if a.Undo != nil {
			e.Message += "; then " + a.Undo.Outcome + " after " + time.Duration(a.Undo.WindowNS).String()
		}
		if r := a.Release; r != nil {
			e.Message += " (seen at " + r.Observed + ", within " + (time.Duration(r.DetectedWithinMS) * time.Millisecond).String() + ")"
		}
	}
	ecsByAndJudged(ev, e)
}
