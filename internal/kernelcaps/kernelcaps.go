package kernelcaps

import (
	"fmt"
	"slices"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// Capability names one thing a kernel lets the sentry do.
type Capability string

const (
	// BTF: /sys/kernel/btf/vmlinux is readable (CO-RE, LSM and fentry need it).
	BTF Capability = "btf"
	// BPFLSMActive: "bpf" is in the active LSM list (/sys/kernel/security/lsm).
	BPFLSMActive Capability = "bpf-lsm-active"
	// LSMBpfDeny: an LSM program on the bpf hook denies BPF_PROG_LOAD with
	// EPERM and the refused program never gets an id.
	LSMBpfDeny Capability = "lsm-bpf-deny"
	// LSMProgLoadDeny: the same through the bpf_prog_load hook (kernels >= 6.9),
	// which sees the kernel's own copy of the instructions.
	LSMProgLoadDeny Capability = "lsm-bpf-prog-load-deny"
	// KprobeBpf: a kprobe on the bpf syscall attaches and fires (the seed's hook).
	KprobeBpf Capability = "kprobe-bpf-syscall"
	// TracepointBpf: the syscalls/sys_enter_bpf tracepoint attaches and fires.
	TracepointBpf Capability = "tracepoint-sys-enter-bpf"
	// TpBTFSysEnter: the BTF raw tracepoint sys_enter attaches and fires.
	TpBTFSysEnter Capability = "tp-btf-sys-enter"
	// FentrySecurityBpf: an fentry program on security_bpf (every bpf()
	// command) attaches and fires.
	FentrySecurityBpf Capability = "fentry-security-bpf"
	// SendSignal: bpf_send_signal signals the process in the bpf() call (the
	// kill enforcer, used wherever the corrupt one is not permitted).
	SendSignal Capability = "send-signal"
	// ProbeWriteUser: a program using bpf_probe_write_user loads and writes the
	// caller's memory (the seed's corrupt enforcer); lockdown refuses it.
	ProbeWriteUser Capability = "probe-write-user"

	// The ia32 capabilities are proved with a 32-bit (GOARCH=386) bpfload,
	// bpfload32 on PATH (vmtest/capabilities.Ia32Loader), which calls bpf as compat syscall 357 through the
	// kernel's ia32 emulation: a loader the sensor must not miss.

	// Ia32Exec: a static 32-bit binary runs and loads a program.
	Ia32Exec Capability = "ia32-exec"
	// Ia32BpfTracepoint: syscalls/sys_enter_bpf fires for the 32-bit
	// loader's bpf(). x86 syscall tracepoints ignore compat syscalls
	// (ARCH_TRACE_IGNORE_COMPAT_SYSCALLS), so a sensor hooked only there is blind to it.
	Ia32BpfTracepoint Capability = "ia32-bpf-tracepoint"
	// Ia32BpfTpBTF: tp_btf/sys_enter sees the 32-bit loader's bpf() with
	// syscall id 357.
	Ia32BpfTpBTF Capability = "ia32-bpf-tp-btf"
	// Ia32BpfKprobe: a kprobe on __ia32_sys_bpf attaches and fires for the
	// 32-bit loader's bpf().
	Ia32BpfKprobe Capability = "ia32-bpf-kprobe"
)

// All lists every capability the suite probes, in report order.
var All = []Capability{BTF, BPFLSMActive, LSMBpfDeny, LSMProgLoadDeny, KprobeBpf, TracepointBpf, TpBTFSysEnter, FentrySecurityBpf, SendSignal, ProbeWriteUser,
	Ia32Exec, Ia32BpfTracepoint, Ia32BpfTpBTF, Ia32BpfKprobe}

// Expectation is what one booted kernel must show.
type Expectation struct {
	// Has lists the capabilities that must be present; all others must be absent.
	Has []Capability
	// Lockdown is the bracketed mode of /sys/kernel/security/lockdown.
	Lockdown string
}

// common is what every Debian kernel of the matrix offers (all are built with
// BTF, kprobes and syscall tracepoints, tp_btf and fentry exist since 5.5
// and bpf_send_signal since 5.3, and lockdown restricts none of them).
// They also run 32-bit binaries (CONFIG_IA32_EMULATION), and a 32-bit
// loader's bpf() reaches tp_btf/sys_enter (as id 357) and a kprobe on
// __ia32_sys_bpf but never the syscalls/sys_enter_bpf tracepoint.
var common = []Capability{BTF, KprobeBpf, TracepointBpf, TpBTFSysEnter, FentrySecurityBpf, SendSignal,
	Ia32Exec, Ia32BpfTpBTF, Ia32BpfKprobe}

func with(caps ...Capability) []Capability { return append(slices.Clone(common), caps...) }

// Expectations is keyed by the kernel label of vmtest's matrix. The reasons:
//   - 5.10 does not list bpf in CONFIG_LSM, so the bpf hook exists but is dead
//     unless booted with lsm=...,bpf; bpf_prog_load as an LSM hook arrived in 6.9.
//   - From 6.1 Debian activates the BPF LSM by default.
//   - lockdown=integrity removes bpf_probe_write_user (LOCKDOWN_BPF_WRITE_USER
//     is an integrity reason) and nothing else the sentry needs.
var Expectations = map[string]Expectation{
	"5.10":          {Has: with(ProbeWriteUser), Lockdown: "none"},
	"5.10-lsm":      {Has: with(BPFLSMActive, LSMBpfDeny, ProbeWriteUser), Lockdown: "none"},
	"6.1":           {Has: with(BPFLSMActive, LSMBpfDeny, ProbeWriteUser), Lockdown: "none"},
	"6.12":          {Has: with(BPFLSMActive, LSMBpfDeny, LSMProgLoadDeny, ProbeWriteUser), Lockdown: "none"},
	"6.12-lockdown": {Has: with(BPFLSMActive, LSMBpfDeny, LSMProgLoadDeny), Lockdown: "integrity"},
	"trixie-bpo":    {Has: with(BPFLSMActive, LSMBpfDeny, LSMProgLoadDeny, ProbeWriteUser), Lockdown: "none"},
}

// Expects reports whether the kernel labelled label must offer c.
func (e Expectation) Expects(c Capability) bool { return slices.Contains(e.Has, c) }

// Lookup returns the expectation for a kernel label, or an error naming the
// known labels: a kernel without a list cannot be judged.
func Lookup(label string) (Expectation, error) {
	e, ok := Expectations[label]
	if !ok {
		labels := make([]string, 0, len(Expectations))
		for l := range Expectations {
			labels = append(labels, l)
		}
		slices.Sort(labels)
		return Expectation{}, fmt.Errorf("kernel label %q has no capability expectations (known: %v)", label, labels)
	}
	return e, nil
}

// Decide says whether a kernel with facts f (its release and what its files
// say, read without BPF) must offer c, or known=false when the facts cannot
// tell: on a machine no expectation list names, tests hold their probes
// against this instead of skipping. The release thresholds are the
// upstream versions that brought each feature.
func Decide(c Capability, f testutils.Facts) (want, known bool) {
	v := func(major, minor int) bool { return f.Version.AtLeast(testutils.Version{Major: major, Minor: minor}) }
	bpfLSM := f.SecurityFS && f.HasLSM("bpf")
	switch c {
	case BTF:
		return f.BTF, true
	case BPFLSMActive:
		return bpfLSM, f.SecurityFS
	case TracepointBpf:
		return true, f.SyscallTracepoints // absent from tracefs may mean unmounted
	case TpBTFSysEnter:
		return f.BTF && v(5, 5), true
	case KprobeBpf:
		return f.Kprobes, true
	case SendSignal:
		return v(5, 3), true
	case ProbeWriteUser:
		if f.Lockdown == "integrity" || f.Lockdown == "confidentiality" {
			return false, true
		}
		return true, f.Lockdown == "none"
	case FentrySecurityBpf:
		return false, !f.BTF || !v(5, 5)
	case LSMBpfDeny:
		return false, f.SecurityFS && !bpfLSM
	case LSMProgLoadDeny:
		return false, !v(6, 9) || f.SecurityFS && !bpfLSM
	case Ia32BpfKprobe:
		return false, !f.Kprobes
	}
	return false, false
}
