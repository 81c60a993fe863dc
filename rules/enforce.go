package rules

import "strings"

// Where a rule is judged, per moment: at the load of a program and at its
// attach. `rules check` prints it so that a user knows what a block really
// does (docs/RULES.md "Where a rule is enforced").

// Stage is where a rule is judged at one moment.
type Stage struct {
	// Where is "kernel", "kernel (part)", "user space" or "never".
	Where string `json:"where"`
	// Detail says what the kernel or user space does, and why.
	Detail string `json:"detail"`
}

// Enforcement is where a rule is judged at load and at attach.
type Enforcement struct {
	Load   Stage `json:"load"`
	Attach Stage `json:"attach"`
}

// The hook families, and what a kernel block does on each.
const (
	blockAtLoad = "a block kills the loader (SIGKILL at bpf() entry) on the tracepoint/tp_btf hooks, " +
		"fails the load with EPERM on the LSM hooks (lsm/bpf_prog_load, lsm.s/bpf)"
	blockAtAttach = "a block kills the attaching process (SIGKILL at the syscall's entry) on the tracepoint/tp_btf hooks, " +
		"fails the attach with EPERM on the LSM hooks (lsm/bpf, lsm/file_ioctl); the program stays loaded, unused"
	targetsNow = "targets present when run starts or reloads its rules"
)

// HasAttachMatcher reports whether the match names an attach target.
func (m *Match) HasAttachMatcher() bool {
	return len(m.AttachTo)+len(m.AttachBinary)+len(m.AttachSymbol)+len(m.AttachInterface)+len(m.AttachCgroup) > 0
}

// attachOnly reports whether the match has a matcher that only an attach
// can satisfy (a load never knows its binary, symbol, interface or cgroup).
func (m *Match) attachOnly() bool {
	return len(m.AttachBinary)+len(m.AttachSymbol)+len(m.AttachInterface)+len(m.AttachCgroup) > 0
}

// KernelAttachBlock reports whether r goes into the kernel attach table
// (run's attach judge): a block rule judging the target alone, without
// exceptions.
func KernelAttachBlock(r *Rule) bool {
	return r.Action == ActionBlock && r.Match.TargetOnly() && len(r.Allow) == 0
}

func hasWildcard(gs []Glob) (lit, wild int) {
	for _, g := range gs {
		if strings.ContainsAny(g.Pattern, "*?[") {
			wild++
		} else {
			lit++
		}
	}
	return lit, wild
}

// EnforcementOf says where r, placed at p by Compile, is judged at load and
// at attach.
func EnforcementOf(r *Rule, p Placement) Enforcement {
	var e Enforcement
	m := &r.Match
	action := "alert"
	if r.Action == ActionBlock {
		action = "block"
	}
	// At load.
	switch {
	case m.attachOnly():
		e.Load = Stage{"never", "attach_binary/attach_symbol/attach_interface/attach_cgroup are known at attach time only: a load never matches"}
	case r.Scope == ScopeGroup && !p.Kernel:
		e.Load = Stage{"never", "a group rule is judged in the kernel only, and this one got no kernel table slot: " + p.Reason}
	case r.Scope == ScopeGroup:
		d := "judged in the kernel against the loader group's sum (docs/GROUPS.md); "
		if r.Action == ActionBlock {
			d += blockAtLoad
		} else {
			d += "an alert"
		}
		e.Load = Stage{"kernel", d + "; kernels without bpf_loop (5.10) have no group judge: never there"}
	case p.Kernel && r.Action == ActionBlock:
		e.Load = Stage{"kernel", blockAtLoad}
	case p.Kernel:
		e.Load = Stage{"kernel", "evaluated in the kernel at load; an alert"}
	default:
		d := strings.TrimPrefix(strings.TrimPrefix(p.Reason, "alert-only (block not enforceable in the kernel): "), "user space: ")
		if r.Action == ActionBlock {
			d = "alert only (the block is not enforced): " + d
		} else {
			d = "an alert: " + d
		}
		if m.HasAttachMatcher() {
			d += "; attach_to matches at load only the BTF function a tracing/LSM program names"
		}
		e.Load = Stage{"user space", d}
	}
	// At attach.
	switch {
	case r.Scope == ScopeGroup:
		e.Attach = Stage{"never", "a group rule judges loads only"}
	case !m.HasAttachMatcher():
		e.Attach = Stage{"user space", "run judges every attach with the program's facts; an " + action + " there is reported, not enforced"}
	case !KernelAttachBlock(r):
		why := "it judges more than the target"
		if r.Action != ActionBlock {
			why = "an alert rule"
		} else if len(r.Allow) > 0 {
			why = "it has allow exceptions"
		}
		e.Attach = Stage{"user space", "alert at the attach (" + why + ", so it is not in the kernel attach table)"}
	case len(m.AttachBinary) > 0:
		lit, wild := hasWildcard(m.AttachBinary)
		switch {
		case wild == 0:
			e.Attach = Stage{"kernel", "uprobe binary paths by hash; " + blockAtAttach}
		case lit == 0:
			e.Attach = Stage{"user space", "attach_binary globs with wildcards are matched in user space only: an alert at the attach"}
		default:
			e.Attach = Stage{"kernel (part)", "literal binary paths in the kernel (" + blockAtAttach + "); globs with wildcards in user space only (an alert)"}
		}
	case len(m.AttachSymbol) > 0:
		e.Attach = Stage{"kernel (part)", "kprobe functions named literally in the kernel (" + blockAtAttach + "); uprobe symbols (an offset to the kernel) and globs in user space only (an alert)"}
	case len(m.AttachTo) > 0:
		e.Attach = Stage{"kernel", "tracepoints and vmlinux BTF functions that match, " + targetsNow + ", and literal raw tracepoint/kprobe names; " + blockAtAttach}
	case len(m.AttachInterface) > 0:
		e.Attach = Stage{"kernel", "interfaces by ifindex, " + targetsNow + " (later ones: an alert in user space); " + blockAtAttach}
	default: // attach_cgroup
		e.Attach = Stage{"kernel", "cgroups by id, " + targetsNow + " (later ones: an alert in user space); " + blockAtAttach}
	}
	return e
}
