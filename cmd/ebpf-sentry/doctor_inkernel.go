//go:build linux && amd64

package main

import "github.com/ebpf-sentry/ebpf-sentry/sensor"

// inKernelLoads is doctor's statement of what run does about programs that
// a syscall program loads with bpf_sys_bpf (light skeletons): the
// BPF_PROG_TEST_RUN bracket of loaderrun.go, measured by
// TestRunStopsTheLightSkeletonsPayload (docs/EVASION.md).
func inKernelLoads(f *sensor.Features, hook sensor.Hook) string {
	if !f.Has(sensor.FeatSyscallTP) || !f.Has(sensor.FeatSendSignal) {
		return "found late, by reconciliation only (prog_unseen): the BPF_PROG_TEST_RUN bracket needs syscall tracepoints and bpf_send_signal"
	}
	bracket := "judged when the loader's BPF_PROG_TEST_RUN ends: the caller is stopped (SIGSTOP at sys_exit_bpf) before it returns to user space, " +
		"the programs loaded during the run are read by id and judged by every rule; block kills the caller (its fds and the links they hold close) " +
		"and detaches the links of what stays loaded. Not prevented: the payload exists, and runs if the loader attached it in the kernel, " +
		"from the inner load until the kill (0.3-1.5 s measured); a payload pinned or referenced by a map survives the kill, reported (via_loader.response.survives)"
	switch hook {
	case sensor.HookLSMProgLoad, sensor.HookLSMBpf:
		return "judged by the LSM hook at the inner load (a block denies it before the payload exists; the event carries the inner load's own outcome and names the loader program), and " + bracket
	}
	return bracket
}

// ioctlHookLine says which ioctl hook `run`'s default takes here and what
// it guarantees, and what the other one would.
func ioctlHookLine() string {
	h := sensor.ResolveIoctlHook(sensor.DefaultIoctlHook)
	other := sensor.IoctlHookAlways
	if h == sensor.IoctlHookAlways {
		other = sensor.IoctlHookOnDemand
	}
	line := sensor.IoctlGuarantee(h) + " (the default, " + string(sensor.DefaultIoctlHook) + ", here)"
	if err := sensor.OnDemandIoctlSupport(); err != nil {
		return line + "; on-demand unavailable: " + err.Error()
	}
	return line + "; --ioctl-hook " + string(other) + ": " + sensor.IoctlGuarantee(other)
}
