package sensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
)

// Probe is the result of checking one kernel capability.
type Probe struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Features is what the running kernel offers the sensor.
type Features struct {
	Probes   []Probe `json:"probes"`
	Lockdown string  `json:"lockdown"`
	LSMs     string  `json:"lsms"`
}

// Has reports whether the named probe succeeded.
func (f *Features) Has(name string) bool {
	for _, p := range f.Probes {
		if p.Name == name {
			return p.OK
		}
	}
	return false
}

// Probe names.
const (
	FeatBTF            = "btf"
	FeatLSMActive      = "bpf_lsm_active"
	FeatLSMLoad        = "bpf_lsm_loadable"
	FeatLSMProgLoad    = "bpf_lsm_prog_load_hook"
	FeatLSMBpfSleep    = "bpf_lsm_bpf_sleepable"
	FeatFentry         = "fentry_loadable"
	FeatKprobes        = "kprobes"
	FeatSyscallTP      = "syscall_tracepoints"
	FeatTpBTF          = "tp_btf"
	FeatProbeWriteUser = "bpf_probe_write_user"
	FeatSendSignal     = "bpf_send_signal"
	FeatRingBuf        = "ring_buffer"
	FeatLoop           = "bpf_loop"
	FeatIA32           = "ia32_bpf"
)

func ok(name, detail string) Probe { return Probe{name, true, detail} }
func fail(name string, err error) Probe {
	return Probe{name, false, err.Error()}
}
func result(name, okDetail string, err error) Probe {
	if err != nil {
		return fail(name, err)
	}
	return ok(name, okDetail)
}

// ProbeKernel checks everything the sensor (and doctor) cares about. Every
// question is asked through internal/kernelprobe, the one prober the
// capability suite proves on each kernel of the matrix. It mounts
// securityfs and tracefs when they are not mounted.
func ProbeKernel() *Features {
	f := &Features{}
	add := func(p Probe) { f.Probes = append(f.Probes, p) }

	add(result(FeatBTF, kernelprobe.BTFPath, kernelprobe.BTF()))
	if lsms, err := kernelprobe.ActiveLSMs(); err != nil {
		add(fail(FeatLSMActive, err))
	} else {
		f.LSMs = lsms
		if kernelprobe.HasLSM(lsms, "bpf") {
			add(ok(FeatLSMActive, "lsm="+lsms))
		} else {
			add(Probe{FeatLSMActive, false, "bpf not in active LSMs: " + lsms})
		}
	}
	add(result(FeatLSMLoad, "tiny lsm/bpf program loaded", kernelprobe.Load(kernelprobe.LSMBpfGate())))
	add(result(FeatLSMProgLoad, "tiny lsm/bpf_prog_load program loaded (kernel >= 6.9)", kernelprobe.Load(kernelprobe.LSMProgLoad())))
	add(result(FeatLSMBpfSleep, "tiny lsm.s/bpf (sleepable) program loaded", kernelprobe.Load(kernelprobe.LSMBpfSleepable())))
	add(result(FeatFentry, "tiny fentry/security_bpf program loaded", kernelprobe.Load(kernelprobe.FentrySecurityBpf())))
	if detail, err := kernelprobe.Kprobes(); err != nil {
		add(fail(FeatKprobes, err))
	} else {
		add(ok(FeatKprobes, detail))
	}
	add(result(FeatSyscallTP, "syscalls:sys_enter_bpf / sys_exit_bpf", kernelprobe.SyscallTracepoints()))
	add(result(FeatTpBTF, "tp_btf/sys_enter program loaded", kernelprobe.Load(kernelprobe.TpBTFSysEnter())))

	if mode, err := kernelprobe.Lockdown(); err == nil {
		f.Lockdown = mode
	}
	add(result(FeatProbeWriteUser, "helper available to tracepoint programs", kernelprobe.ProbeWriteUser()))
	add(result(FeatSendSignal, "helper available to tracepoint programs", kernelprobe.Helper(asm.FnSendSignal)))
	add(result(FeatRingBuf, "BPF_MAP_TYPE_RINGBUF", kernelprobe.RingBuf()))
	add(result(FeatLoop, "helper available to tracepoint programs", kernelprobe.Helper(asm.FnLoop)))
	var ia32 error
	if !hasIA32() {
		ia32 = errors.New("no __ia32_sys_bpf in kernel BTF: 32-bit processes cannot call bpf()")
	}
	add(result(FeatIA32, "__ia32_sys_bpf exists: 32-bit processes can call bpf() (syscall 357)", ia32))
	return f
}

// lsmBpfUsableFor says why the lsm-bpf hook cannot work here with the
// given walk, or nil. With bpf_loop it is the sleepable lsm.s/bpf program;
// with the bounded walk, a non-sleepable lsm/bpf gate behind the
// sys_enter_bpf tracepoint, which must therefore exist.
func lsmBpfUsableFor(w Walk) error { return lsmBpfUsableWith(w, nil) }

// lsmBpfUsableWith is lsmBpfUsableFor with the kernel's BTF already parsed
// (kt; nil: parsed here).
func lsmBpfUsableWith(w Walk, kt *btf.Cache) error {
	if w == WalkBounded {
		if err := kernelprobe.LSMBpfUsableWith(false, kt); err != nil {
			return fmt.Errorf("lsm/bpf: %w", err)
		}
		if err := kernelprobe.SyscallTracepoints(); err != nil {
			return fmt.Errorf("lsm/bpf gate: judged at the sys_enter_bpf tracepoint, which is missing: %w", err)
		}
		return nil
	}
	if err := kernelprobe.LSMBpfUsableWith(true, kt); err != nil {
		return fmt.Errorf("lsm.s/bpf: %w", err)
	}
	return nil
}

// lsmProgLoadUsable says why the lsm-prog-load hook cannot work here, or
// nil: the BPF LSM must be active (else the hook loads, attaches and never
// runs, as on 5.10 without lsm=...,bpf) and the hook must exist (6.9).
func lsmProgLoadUsable() error { return lsmProgLoadUsableWith(nil) }

// lsmProgLoadUsableWith is lsmProgLoadUsable with the kernel's BTF already
// parsed (kt; nil: parsed here).
func lsmProgLoadUsableWith(kt *btf.Cache) error {
	if err := kernelprobe.LSMProgLoadUsableWith(kt); err != nil {
		return fmt.Errorf("lsm/bpf_prog_load: %w", err)
	}
	return nil
}

// Plan is what `run` will use on this kernel and what it guarantees.
type Plan struct {
	Hook     Hook     `json:"hook"`
	Enforcer Enforcer `json:"enforcer"`
	Walk     Walk     `json:"walk"`
	// Compat says how 32-bit processes' bpf() calls are covered.
	Compat    string `json:"compat"`
	Guarantee string `json:"guarantee"`
	// LockGuarantee is what `run --mode lock` guarantees with this hook.
	LockGuarantee string `json:"lock_guarantee"`
	// Signals says what happens to a signal another process sends the
	// agent (selfprotect.h).
	Signals string   `json:"signals"`
	Notes   []string `json:"notes,omitempty"`
}

// signalsForPlan is Plan.Signals.
func signalsForPlan(lsm bool, f *Features) string {
	switch {
	case lsm:
		return "refused with EPERM in enforce mode (lsm/task_kill, run --guard-signals, the default) unless sent by the agent, its parent or init (pid 1); reported in any case. 0, SIGHUP (reload), SIGCHLD, SIGCONT, SIGURG and SIGWINCH pass"
	case f.Has(FeatSyscallTP):
		return "reported, not refused: without the BPF LSM nothing can stop a signal (a syscall tracepoint sees kill, tgkill, tkill and rt_(tg)sigqueueinfo naming the agent's pid, from 5.15); the report leaves only if the agent lives to read it (not after SIGKILL); with --pin the kernel side keeps enforcing without the agent"
	default:
		return "not seen: no BPF LSM and no syscall tracepoints; with --pin the kernel side keeps enforcing without the agent"
	}
}

// TpBTFOffNote is doctor's word on tp_btf where the syscall tracepoints
// work: its sys_enter/sys_exit programs run on every syscall (+7–10 % on a
// getpid loop, above the 2 % target: docs/PERFORMANCE.md), the tracepoint
// hook only on bpf().
const TpBTFOffNote = "tp_btf off: the syscall tracepoint hook works here and runs only on bpf(); tp_btf would run on every syscall (see docs/PERFORMANCE.md) and is used only where the tracepoints are missing or with --pin before 5.15"

// PlanFor chooses hook and enforcer the way New does for an empty Config.
func PlanFor(f *Features) (Plan, error) {
	var p Plan
	p.Walk = WalkLoop
	if !f.Has(FeatLoop) {
		p.Walk = WalkBounded
		p.Notes = append(p.Notes, "no bpf_loop (5.17): instructions are walked with bounded loops and global functions; the same records, facts and verdicts")
	}
	lsm := f.Has(FeatLSMActive) && f.Has(FeatLSMProgLoad) && p.Walk == WalkLoop
	lsmBpf := !lsm && f.Has(FeatLSMActive) && f.Has(FeatLSMBpfSleep) && p.Walk == WalkLoop
	lsmGate := !lsm && f.Has(FeatLSMActive) && f.Has(FeatLSMLoad) && f.Has(FeatSyscallTP) && p.Walk == WalkBounded
	switch {
	case lsm:
		p.Hook = HookLSMProgLoad
	case lsmBpf, lsmGate:
		p.Hook = HookLSMBpf
	case f.Has(FeatSyscallTP):
		p.Hook = HookTracepoint
	case f.Has(FeatTpBTF):
		p.Hook = HookBTF
		p.Notes = append(p.Notes, "syscall tracepoints missing: tp_btf/sys_enter runs on every syscall (see docs/PERFORMANCE.md)")
	default:
		return p, fmt.Errorf("%w: neither syscall tracepoints nor tp_btf", ErrNoHook)
	}
	if f.Has(FeatSyscallTP) {
		p.Notes = append(p.Notes, TpBTFOffNote)
	}
	if (lsm || lsmBpf) && !f.Has(FeatSyscallTP) && !f.Has(FeatTpBTF) {
		return p, fmt.Errorf("%w: the LSM hook needs a sys_exit hook (syscall tracepoints or tp_btf) to report results", ErrNoHook)
	}
	if !f.Has(FeatRingBuf) {
		return p, fmt.Errorf("%w: %s missing (Linux 5.8)", ErrNoHook, FeatRingBuf)
	}
	if lsm {
		p.Enforcer = EnforcerDeny
		p.Guarantee = "denied race-free: the kernel's own copy of the instructions is judged inside bpf_prog_load before the verifier; a blocked load fails with EPERM and never gets a prog id"
	} else if lsmBpf {
		p.Enforcer = EnforcerDeny
		p.Guarantee = "denied, user memory TOCTOU detected after the fact: the instructions are copied from the loader's memory in the bpf LSM hook and a blocked load fails with EPERM and never gets a prog id; a loader that rewrites them before the kernel copies them loads a program other than the judged one, which the tag check reports after the load (no bpf_prog_load LSM hook before 6.9)"
	} else if lsmGate {
		p.Enforcer = EnforcerDeny
		p.Guarantee = "denied, user memory TOCTOU detected after the fact: the instructions are read from the loader's memory at the bpf() syscall's entry (sys_enter_bpf tracepoint) and the bpf LSM hook then refuses a blocked load with EPERM, before the kernel copies them: it never gets a prog id; a loader that rewrites them in between loads a program other than the judged one, which the tag check reports after the load (no bpf_loop, so no sleepable judge: a chunk not resident in memory is unreadable, see --block-unreadable)"
	} else if f.Has(FeatSendSignal) {
		p.Enforcer = EnforcerKill
		p.Guarantee = "killed before use: SIGKILL is queued before the kernel copies the program; the loader never returns to user space, and the pending signal makes the verifier abort (measured: docs/EVASION.md)"
	} else {
		p.Guarantee = "monitor only: bpf_send_signal unavailable"
	}
	switch {
	case lsm:
		p.LockGuarantee = "a program whose fingerprint is not on the allowlist is denied race-free: the fingerprint is computed over the kernel's own copy inside bpf_prog_load, the load fails with EPERM before the verifier"
	case lsmBpf, lsmGate:
		p.LockGuarantee = "a program whose fingerprint is not on the allowlist is denied with EPERM; the fingerprint is computed over the loader's memory, so a loader that rewrites its instructions after the check loads unchecked instructions, which the tag check reports after the load"
	case p.Enforcer == EnforcerKill:
		p.LockGuarantee = "the loader of a program whose fingerprint is not on the allowlist is killed before the kernel copies it; the fingerprint is computed over the loader's memory, so a thread that rewrites the instructions after the check loads unchecked instructions, which the tag check reports after the load"
	default:
		p.LockGuarantee = "none: no enforcer on this kernel, lock mode only reports"
	}
	if !f.Has(FeatProbeWriteUser) {
		p.Notes = append(p.Notes, "--enforcer corrupt unavailable: bpf_probe_write_user refused")
	}
	p.Compat = compatForPlan(p, f)
	p.Signals = signalsForPlan(p.Hook.IsLSM(), f)
	return p, nil
}

// CorruptAvailable says why --enforcer corrupt cannot work here, or nil.
func CorruptAvailable() error {
	err := kernelprobe.ProbeWriteUser()
	if err == nil {
		return nil
	}
	if lerr := (*kernelprobe.LockdownError)(nil); errors.As(err, &lerr) {
		return fmt.Errorf("%w: --enforcer corrupt needs bpf_probe_write_user, which kernel lockdown (%s) forbids; use --enforcer kill", ErrEnforcerRefused, lerr.Mode)
	}
	return fmt.Errorf("%w: --enforcer corrupt needs bpf_probe_write_user: %v; use --enforcer kill", ErrEnforcerRefused, err)
}

// compatForPlan says what the plan does about 32-bit bpf() calls (see
// planCompat, which New follows): the syscall tracepoints and the kprobe on
// __x64_sys_bpf never see them.
func compatForPlan(p Plan, f *Features) string {
	if !f.Has(FeatIA32) {
		return "no ia32 emulation in this kernel: nothing to cover"
	}
	exitHook := HookTracepoint
	if !f.Has(FeatSyscallTP) {
		exitHook = HookBTF
	}
	if p.Hook == HookBTF {
		exitHook = HookBTF
	}
	cp := planCompat(p.Hook, exitHook, p.Hook == HookLSMBpf && p.Walk == WalkBounded)
	switch {
	case cp.enter != "" && !f.Has(FeatKprobes):
		return "NOT SEEN: 32-bit loaders bypass the syscall tracepoints and there are no kprobes for __ia32_sys_bpf; --hook tp_btf sees them (it runs on every syscall)"
	case cp.exit != "" && !f.Has(FeatKprobes):
		return fmt.Sprintf("judged by the %s hook; their results are unknown (no kretprobe on __ia32_sys_bpf)", p.Hook)
	}
	return cp.note
}
