package sensor

import (
	"fmt"
	"log/slog"

	"github.com/cilium/ebpf/btf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelprobe"
)

// Hook is where the kernel programs attach.
type Hook string

const (
	// HookTracepoint: syscalls:sys_enter_bpf / sys_exit_bpf, fires only for bpf().
	HookTracepoint Hook = "tracepoint"
	// HookBTF: tp_btf/sys_enter and sys_exit, fires for every syscall.
	HookBTF Hook = "tp_btf"
	// HookLSMProgLoad: lsm/bpf_prog_load (kernels >= 6.9, BPF LSM active)
	// judges the kernel's own copy of the instructions and can deny the
	// load; the syscall's exit is still seen by the sys_exit tracepoint
	// (tp_btf/sys_exit without tracefs).
	HookLSMProgLoad Hook = "lsm-prog-load"
	// HookLSMBpf: sleepable lsm.s/bpf (BPF LSM active, no bpf_prog_load
	// hook: 6.1) copies the instructions from the loader's memory and can
	// deny; a loader rewriting them before the kernel's own copy is caught
	// afterwards by the tag check (Event.JudgedCopyDiffers).
	HookLSMBpf Hook = "lsm-bpf"
	// HookKprobe: the seed's kprobe on the bpf syscall (KprobeTargets, the
	// first that attaches), with the sys_exit tracepoint (or tp_btf) for
	// the result. Only when asked: it sees what the tracepoint sees.
	HookKprobe Hook = "kprobe"
)

// KprobeTargets are tried in order by the kprobe hook
// (kernelprobe.KprobeTargets says why these).
var KprobeTargets = kernelprobe.KprobeTargets

// Walk is how the kernel programs loop over the instructions.
type Walk string

const (
	// WalkLoop uses the bpf_loop helper (5.17+): the verifier checks each
	// loop body once, whatever the trip count.
	WalkLoop Walk = "bpf_loop"
	// WalkBounded is for kernels without bpf_loop (5.10): bounded loops that
	// call global functions, each verified once (per 512-instruction chunk,
	// per rule, per path component). Same records, facts and verdicts; the
	// sleepable lsm.s/bpf program is not available (5.10 gives sleepable
	// programs neither ring buffers nor per-CPU maps), so HookLSMBpf judges
	// at the sys_enter_bpf tracepoint and a non-sleepable lsm/bpf gate
	// refuses the blocked load; HookLSMProgLoad needs 6.9 and so bpf_loop.
	WalkBounded Walk = "bounded"
)

// IsLSM reports whether the hook can refuse a load (EnforcerDeny).
func (h Hook) IsLSM() bool { return h == HookLSMProgLoad || h == HookLSMBpf }

// Enforcer is how a block verdict is carried out.
type Enforcer string

const (
	// EnforcerKill sends SIGKILL to the loader from the sys_enter hook.
	EnforcerKill Enforcer = "kill"
	// EnforcerCorrupt rewrites instruction 0 to BPF_EXIT in the loader's
	// memory (bpf_probe_write_user): racy, and refused under lockdown.
	EnforcerCorrupt Enforcer = "corrupt"
	// EnforcerDeny makes an LSM hook return -EPERM: the load fails before
	// the verifier and the program never exists.
	EnforcerDeny Enforcer = "deny"
)

// chooseHook resolves the asked hook ("" = auto) into the enter hook and
// the hook whose sys_exit program reports the syscall's result (the LSM
// hook has no exit of its own).
func chooseHook(asked Hook, enf Enforcer, walk Walk, btfOnly bool, kernel func() *btf.Cache, log *slog.Logger) (enter, exit Hook, err error) {
	lsmBpfUsable := func() error { return lsmBpfUsableWith(walk, kernel()) }
	lsmProgLoadUsable := func() error {
		if walk == WalkBounded {
			return fmt.Errorf("lsm/bpf_prog_load: not with the %s walk (the hook exists from 6.9, which has bpf_loop)", WalkBounded)
		}
		return lsmProgLoadUsableWith(kernel())
	}
	syscallHook := func() (Hook, error) {
		if btfOnly {
			return HookBTF, nil
		}
		if err := kernelprobe.SyscallTracepoints(); err != nil {
			if asked == HookTracepoint {
				return "", fmt.Errorf("%w: %v", ErrNoHook, err)
			}
			log.Warn("syscall tracepoints unavailable, falling back to tp_btf", "err", err)
			return HookBTF, nil
		}
		return HookTracepoint, nil
	}
	switch asked {
	case "":
		// The strongest hook unless the asked enforcer needs a syscall one.
		if enf != EnforcerKill && enf != EnforcerCorrupt {
			if lsmProgLoadUsable() == nil {
				exit, err = syscallHook()
				return HookLSMProgLoad, exit, err
			}
			if lsmBpfUsable() == nil {
				exit, err = syscallHook()
				return HookLSMBpf, exit, err
			}
		}
		enter, err = syscallHook()
		return enter, enter, err
	case HookTracepoint:
		enter, err = syscallHook()
		return enter, enter, err
	case HookBTF:
		return HookBTF, HookBTF, nil
	case HookKprobe:
		exit, err = syscallHook()
		return HookKprobe, exit, err
	case HookLSMBpf:
		if err := lsmBpfUsable(); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrNoHook, err)
		}
		exit, err = syscallHook()
		return HookLSMBpf, exit, err
	case HookLSMProgLoad:
		if err := lsmProgLoadUsable(); err != nil {
			return "", "", fmt.Errorf("%w: %v", ErrNoHook, err)
		}
		exit, err = syscallHook()
		return HookLSMProgLoad, exit, err
	}
	return "", "", fmt.Errorf("hook %q: want lsm-prog-load, lsm-bpf, tracepoint, tp_btf or kprobe", asked)
}

// programNames gives the programs to load: the enter and exit programs
// and, for the lsm-bpf hook without bpf_loop, the LSM gate that refuses
// what the enter program (then a judge on the syscall hook) blocked.
func programNames(h, exitHook Hook, e Enforcer, w Walk) (enter, exit, gate string) {
	exit = sentryProgSentryExitTp
	if exitHook == HookBTF {
		exit = sentryProgSentryExitBtf
	}
	switch {
	case h == HookLSMProgLoad:
		// Its exit also reports the loads the kernel refused before
		// lsm/bpf_prog_load ran (bpf/sensor.bpf.c refused_before_hook).
		enter, exit = sentryProgSentryLsmProgLoad, sentryProgSentryExitTpLsm
		if exitHook == HookBTF {
			exit = sentryProgSentryExitBtfLsm
		}
	case h == HookLSMBpf && w == WalkBounded && exitHook == HookBTF:
		enter, gate = sentryLegacyProgSentryEnterBtfGate, sentryLegacyProgSentryLsmBpfGate
	case h == HookLSMBpf && w == WalkBounded:
		enter, gate = sentryLegacyProgSentryEnterTpGate, sentryLegacyProgSentryLsmBpfGate
	case h == HookLSMBpf:
		enter = sentryProgSentryLsmBpf
	case h == HookKprobe:
		enter = sentryProgSentryEnterKprobe
	case h == HookBTF && e == EnforcerCorrupt:
		enter = sentryProgSentryEnterBtfCorrupt
	case h == HookBTF:
		enter = sentryProgSentryEnterBtf
	case e == EnforcerCorrupt:
		enter = sentryProgSentryEnterTpCorrupt
	default:
		enter = sentryProgSentryEnterTp
	}
	return enter, exit, gate
}
