package capabilities

import "github.com/ebpf-sentry/ebpf-sentry/internal/testutils"

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
