package sensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
)

func attach(h Hook, p *ebpf.Program, isExit bool) (link.Link, error) {
	switch h {
	case HookBTF:
		return link.AttachTracing(link.TracingOptions{Program: p})
	case HookLSMProgLoad, HookLSMBpf:
		return link.AttachLSM(link.LSMOptions{Program: p})
	}
	event := "sys_enter_bpf"
	if isExit {
		event = "sys_exit_bpf"
	}
	return link.Tracepoint("syscalls", event, p, nil)
}

// attachKprobe tries KprobeTargets in order: the wrapped program for
// __x64_sys_bpf, the direct one for the others.
func attachKprobe(wrapped, direct *ebpf.Program) (link.Link, string, error) {
	var errs []error
	for _, target := range KprobeTargets {
		p := direct
		if target == "__x64_sys_bpf" {
			p = wrapped
		}
		l, err := link.Kprobe(target, p, nil)
		if err == nil {
			return l, target, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", target, err))
	}
	return nil, "", fmt.Errorf("%w: no kprobe target attached: %w", ErrNoHook, errors.Join(errs...))
}

// compatPlan is how 32-bit (ia32) bpf() calls are covered: the syscall
// tracepoints never fire for them, the kprobe hook's __x64_sys_bpf does not
// see them; tp_btf and the LSM hooks do (enter), and tp_btf/sys_exit sees
// their exit. What is missing is added with kprobes on __ia32_sys_bpf.
type compatPlan struct {
	enter, exit string // programs to attach to __ia32_sys_bpf (kprobe, kretprobe), "" for none
	note        string // what Compat reports when they attach (or none is needed)
}

// planCompat: gated is the lsm-bpf hook without bpf_loop, whose judge is
// on the syscall hook (exitHook: the sys_enter_bpf tracepoint, or tp_btf
// when the sensor is pinned on a kernel that cannot pin perf events).
func planCompat(hook, exitHook Hook, gated bool) compatPlan {
	if !hasIA32() {
		return compatPlan{note: "no ia32 emulation in this kernel (no __ia32_sys_bpf)"}
	}
	var p compatPlan
	switch {
	case gated && exitHook == HookBTF:
		// the tp_btf judge sees 32-bit calls itself
	case gated:
		p.enter = sentryLegacyProgSentryEnterKprobeIa32Gate
	case hook == HookTracepoint || hook == HookKprobe:
		p.enter = sentryProgSentryEnterKprobeIa32
	}
	if exitHook == HookTracepoint {
		p.exit = sentryProgSentryExitKretprobeIa32
	}
	switch {
	case gated && exitHook == HookBTF:
		p.note = "judged by the tp_btf judge of the lsm/bpf gate"
	case gated:
		p.note = "judged by a kprobe on __ia32_sys_bpf, denied by the lsm/bpf gate, results from a kretprobe"
	case p.enter != "":
		p.note = "kprobe and kretprobe on __ia32_sys_bpf"
	case p.exit != "":
		p.note = fmt.Sprintf("judged by the %s hook, results from a kretprobe on __ia32_sys_bpf", hook)
	default:
		p.note = fmt.Sprintf("seen by the %s hook", hook)
	}
	return p
}

// hasIA32 says whether the kernel has the 32-bit bpf() entry point.
func hasIA32() bool { return kernelprobe.IA32Entry(nil) }

func attachCompat(coll *ebpf.Collection, p compatPlan) ([]link.Link, error) {
	var links []link.Link
	if p.enter != "" {
		l, err := link.Kprobe("__ia32_sys_bpf", coll.Programs[p.enter], nil)
		if err != nil {
			return nil, fmt.Errorf("kprobe __ia32_sys_bpf: %w", err)
		}
		links = append(links, l)
	}
	if p.exit != "" {
		l, err := link.Kretprobe("__ia32_sys_bpf", coll.Programs[p.exit], nil)
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("kretprobe __ia32_sys_bpf: %w", err)
		}
		links = append(links, l)
	}
	return links, nil
}
