package sensor

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/kernelcaps"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// The capability suite proves each capability by using it; ProbeKernel
// (what doctor and auto-selection rely on) must reach the same answers, and
// the plan must be the strongest hook those answers allow.
func TestProbeKernelAgreesWithTheKernelsExpectations(t *testing.T) {
	testutils.RequireRoot(t, "probing BPF program types")
	k := kernelExpectation(t)
	label := k.label
	removeMemlock(t)
	f := ProbeKernel()
	pairs := []struct {
		feature string
		cap     kernelcaps.Capability
	}{
		{FeatBTF, kernelcaps.BTF},
		{FeatLSMActive, kernelcaps.BPFLSMActive},
		{FeatSyscallTP, kernelcaps.TracepointBpf},
		{FeatTpBTF, kernelcaps.TpBTFSysEnter},
		{FeatFentry, kernelcaps.FentrySecurityBpf},
		{FeatKprobes, kernelcaps.KprobeBpf},
		{FeatProbeWriteUser, kernelcaps.ProbeWriteUser},
		{FeatSendSignal, kernelcaps.SendSignal},
	}
	for _, p := range pairs {
		exp, known := k.decides(p.cap)
		if !known {
			t.Logf("kernel %s: nothing independent decides %s; ProbeKernel says %s=%v", label, p.cap, p.feature, f.Has(p.feature))
			continue
		}
		if got := f.Has(p.feature); got != exp {
			t.Errorf("kernel %s: ProbeKernel says %s=%v, the kernel's list or facts say %s=%v", label, p.feature, got, p.cap, exp)
		}
	}
	// Usable means active and loadable: the deny capability is exactly that.
	progLoad := f.Has(FeatLSMActive) && f.Has(FeatLSMProgLoad)
	if exp, known := k.decides(kernelcaps.LSMProgLoadDeny); known && progLoad != exp {
		t.Errorf("kernel %s: ProbeKernel says lsm bpf_prog_load usable=%v, the kernel's list or facts say %s=%v", label, progLoad, kernelcaps.LSMProgLoadDeny, exp)
	}
	if want := k.lockdown(); want != "" && f.Lockdown != want {
		t.Errorf("kernel %s: lockdown %q, want %q", label, f.Lockdown, want)
	}
	if got, exp := f.Has(FeatLoop), k.hasBPFLoop(); got != exp {
		t.Errorf("kernel %s: ProbeKernel says bpf_loop=%v, want %v", label, got, exp)
	}
	plan, err := PlanFor(f)
	if err != nil {
		t.Fatalf("kernel %s: no plan: %v", label, err)
	}
	wantWalk := WalkLoop
	if !k.hasBPFLoop() {
		wantWalk = WalkBounded
	}
	if plan.Walk != wantWalk {
		t.Errorf("kernel %s: plan walks with %s, want %s", label, plan.Walk, wantWalk)
	}
	// The lsm-bpf hook: the sleepable program with bpf_loop, else the
	// non-sleepable gate behind the tracepoint.
	lsmBpf := f.Has(FeatLSMActive) && f.Has(FeatLSMBpfSleep)
	if wantWalk == WalkBounded {
		lsmBpf = f.Has(FeatLSMActive) && f.Has(FeatLSMLoad) && f.Has(FeatSyscallTP)
	}
	if exp, known := k.decides(kernelcaps.LSMBpfDeny); known && lsmBpf != exp {
		t.Errorf("kernel %s: ProbeKernel says lsm-bpf usable=%v (walk %s), the kernel's list or facts say %s=%v", label, lsmBpf, wantWalk, kernelcaps.LSMBpfDeny, exp)
	}
	wantHook, wantEnf := HookTracepoint, EnforcerKill
	switch {
	case k.wants(t, kernelcaps.LSMProgLoadDeny, progLoad):
		wantHook, wantEnf = HookLSMProgLoad, EnforcerDeny
	case k.wants(t, kernelcaps.LSMBpfDeny, lsmBpf):
		wantHook, wantEnf = HookLSMBpf, EnforcerDeny
	}
	if plan.Hook != wantHook || plan.Enforcer != wantEnf {
		t.Errorf("kernel %s: plan is %s/%s, want %s/%s", label, plan.Hook, plan.Enforcer, wantHook, wantEnf)
	}
	// Where 32-bit loaders can call bpf() and kprobes reach __ia32_sys_bpf,
	// the plan must cover them (TestIA32LoadersAreJudged proves it does).
	if exp, known := k.decides(kernelcaps.Ia32BpfKprobe); known && exp && strings.HasPrefix(plan.Compat, "NOT SEEN") {
		t.Errorf("kernel %s: plan says 32-bit loaders are not seen (%s), yet kprobes on __ia32_sys_bpf work", label, plan.Compat)
	}
	t.Logf("kernel %s: plan %s/%s: %s; 32-bit loaders: %s", label, plan.Hook, plan.Enforcer, plan.Guarantee, plan.Compat)
}

// requireLSMProgLoad says whether the lsm-prog-load hook is there to test.
// Where the kernel's list promises it, it must work. Where the list says
// the kernel lacks it (this host, before 6.9), asking the sensor for it
// must be refused with ErrNoHook: that is checked here and the caller
// returns, having proved the refusal. No kernel skips.
func requireLSMProgLoad(t *testing.T) bool {
	t.Helper()
	return requireHook(t, HookLSMProgLoad, kernelcaps.LSMProgLoadDeny, lsmProgLoadUsable())
}

func requireHook(t *testing.T, h Hook, c kernelcaps.Capability, usable error) bool {
	t.Helper()
	testutils.RequireRoot(t, "loading the sensor's BPF programs")
	k := kernelExpectation(t)
	label := k.label
	want, known := k.decides(c)
	switch {
	case known && want && usable != nil:
		t.Fatalf("kernel %s must offer the %s hook: %v", label, h, usable)
	case known && want, !known && usable == nil:
		return true
	case usable == nil:
		t.Fatalf("kernel %s: the %s hook is usable, but the list or facts say %s is absent", label, h, c)
	}
	s, err := New(Config{Hook: h})
	if err == nil {
		s.Close()
		t.Fatalf("kernel %s lacks %s, yet --hook %s started", label, c, h)
	}
	if !errors.Is(err, ErrNoHook) {
		t.Fatalf("kernel %s: --hook %s failed with %v, want ErrNoHook", label, h, err)
	}
	t.Logf("kernel %s has no %s hook and asking for it is refused: %v", label, h, err)
	return false
}

// With the LSM hook a blocked load fails with EPERM inside the bpf() call:
// the loader keeps running (nothing is killed), the program never reaches
// the verifier and never gets an id, and what was judged is the kernel's
// own copy, byte for byte what the loader submitted.
func TestLSMProgLoadDeniesBeforeTheProgramExists(t *testing.T) {
	if !requireLSMProgLoad(t) {
		return
	}
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if s.Hook() != HookLSMProgLoad || s.Enforcer() != EnforcerDeny {
		t.Fatalf("auto picked %s/%s on a kernel with the lsm/bpf_prog_load hook, want %s/%s", s.Hook(), s.Enforcer(), HookLSMProgLoad, EnforcerDeny)
	}
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	cases := []struct {
		name   string
		prog   string
		insns  []byte
		denied bool
		rule   string
	}{
		{"a matching name and helper count is denied with EPERM", "se2eblk_lsm", twice, true, "e2e-block"},
		{"an exact name is denied with EPERM", "se2eexact", twice, true, "e2e-exact"},
		{"the same helpers under another name load", "se2e_lsmok", twice, false, ""},
		{"a 600-instruction benign program crossing a chunk loads and is captured whole", "se2e_lsm600", genInsns(600), false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-insns", writeInsns(t, tc.insns), "-name", tc.prog)
			if run.killed || len(run.results) != 1 {
				t.Fatalf("loader killed=%v results=%v: the LSM path must return to the loader", run.killed, run.results)
			}
			res := run.results[0]
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if !ev.Complete() || !bytes.Equal(ev.Program.Insns, tc.insns) {
				t.Fatalf("capture incomplete (missing %v) or differs from the %d submitted bytes (got %d)", ev.Missing, len(tc.insns), len(ev.Program.Insns))
			}
			if ev.Program.Name != tc.prog || ev.Program.Loader.PID != uint32(res.PID) {
				t.Errorf("name %q loader %+v, want %q pid %d", ev.Program.Name, ev.Program.Loader, tc.prog, res.PID)
			}
			if tc.denied {
				if res.Ret != -1 || res.ID != 0 {
					t.Errorf("blocked load returned %d id %d, want -EPERM (-1) and no id", res.Ret, res.ID)
				}
				if ev.Verdict != VerdictBlock || ev.RuleID != tc.rule || ev.Action != ActionDenied {
					t.Errorf("verdict %v rule %q action %v, want block %q denied", ev.Verdict, ev.RuleID, ev.Action, tc.rule)
				}
				if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != 1 || ev.Program.Kernel != nil {
					t.Errorf("outcome %+v kernel %+v, want failed with EPERM and no prog id", ev.Outcome, ev.Program.Kernel)
				}
				return
			}
			if res.Ret < 0 || res.ID == 0 {
				t.Fatalf("benign load failed: %+v", res)
			}
			if ev.Verdict != VerdictAllow || ev.Action != ActionNone || ev.Outcome.Result != ResultLoaded ||
				ev.Program.Kernel == nil || ev.Program.Kernel.ID != res.ID {
				t.Errorf("verdict %v action %v outcome %+v kernel %+v, want allowed and loaded as id %d", ev.Verdict, ev.Action, ev.Outcome, ev.Program.Kernel, res.ID)
			}
		})
	}
	for _, name := range []string{"se2eblk_lsm", "se2eexact"} {
		if left := progsNamed(t, name); len(left) != 0 {
			t.Errorf("denied programs exist: %v", left)
		}
	}
}

// Monitor mode on the LSM hook reports the block verdict and lets the load
// through.
func TestLSMProgLoadMonitorModeLetsTheLoadThrough(t *testing.T) {
	if !requireLSMProgLoad(t) {
		return
	}
	s := startSensor(t, Config{Hook: HookLSMProgLoad, Mode: ModeMonitor, Rules: compiledTestRules(t)})
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_mon")
	if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
		t.Fatalf("monitored load: killed=%v results=%v, want loaded", run.killed, run.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 || evs[0].Verdict != VerdictBlock || evs[0].Action != ActionMonitor {
		t.Fatalf("events %+v, want one block verdict with action monitor-only", evs)
	}
}

// The enforcer must fit the hook: an LSM hook denies, a syscall hook kills
// or corrupts. A mismatch is refused before anything is loaded.
func TestMismatchedHookAndEnforcerAreRefused(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	cases := []struct {
		name string
		cfg  Config
		want error // for "shout": the error must name the unknown enforcer
	}{
		{"deny on the tracepoint hook is refused", Config{Hook: HookTracepoint, Enforcer: EnforcerDeny}, ErrEnforcerRefused},
		{"deny on the tp_btf hook is refused", Config{Hook: HookBTF, Enforcer: EnforcerDeny}, ErrEnforcerRefused},
		{"an unknown enforcer is refused", Config{Hook: HookTracepoint, Enforcer: "shout"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if err == nil {
				s.Close()
				t.Fatalf("New(%+v) succeeded", tc.cfg)
			}
			switch {
			case tc.cfg.Enforcer == "shout":
				if !strings.Contains(err.Error(), `enforcer "shout"`) {
					t.Fatalf("New(%+v): %v, want the refusal naming the unknown enforcer", tc.cfg, err)
				}
			case !errors.Is(err, tc.want):
				t.Fatalf("New(%+v): %v, want %v", tc.cfg, err, tc.want)
			}
			t.Logf("refused: %v", err)
		})
	}
	if lsmProgLoadUsable() != nil || withoutBPFLoop[os.Getenv(kernelEnv)] {
		_, err := New(Config{Hook: HookLSMProgLoad})
		if !errors.Is(err, ErrNoHook) || !strings.Contains(err.Error(), "lsm/bpf_prog_load") {
			t.Errorf("--hook lsm-prog-load on a kernel without it: err %v, want ErrNoHook naming lsm/bpf_prog_load", err)
		}
	}
}

// requireLSMBpf is requireLSMProgLoad for the lsm-bpf hook: the sleepable
// program, or the gate behind the tracepoint on kernels without bpf_loop.
func requireLSMBpf(t *testing.T) bool {
	t.Helper()
	walk := WalkLoop
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		walk = WalkBounded
	}
	return requireHook(t, HookLSMBpf, kernelcaps.LSMBpfDeny, lsmBpfUsableFor(walk))
}

// The sleepable bpf LSM hook denies a blocked load with EPERM (no kill,
// no program id) from its copy of the loader's memory, lets others load,
// and a loader whose instructions change between the hook's read and the
// kernel's copy (made deterministic with userfaultfd) gets every such load
// flagged as differing from the judged copy.
func TestLSMBpfDeniesAndFlagsARacingLoader(t *testing.T) {
	if !requireLSMBpf(t) {
		return
	}
	s := startSensor(t, Config{Hook: HookLSMBpf, Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if s.Hook() != HookLSMBpf || s.Enforcer() != EnforcerDeny {
		t.Fatalf("sensor %s/%s, want %s/%s", s.Hook(), s.Enforcer(), HookLSMBpf, EnforcerDeny)
	}
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_lsmb")
	if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 || run.results[0].ID != 0 {
		t.Fatalf("blocked load: killed=%v results=%v, want EPERM (-1), no id, loader alive", run.killed, run.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 || evs[0].Action != ActionDenied || evs[0].RuleID != "e2e-block" || !bytes.Equal(evs[0].Program.Insns, twice) {
		t.Fatalf("events %+v, want one denied by e2e-block with the submitted instructions", evs)
	}
	if left := progsNamed(t, "se2eblk_lsmb"); len(left) != 0 {
		t.Errorf("denied program exists: %v", left)
	}

	// The race, made deterministic: the loader's instructions straddle an
	// ordinary page and a userfaultfd one, and the fault this hook's
	// bpf_copy_from_user takes on the second page toggles an instruction
	// it has already read (bpfload -flip-in-judge). Every load is judged on
	// one program and loads the other: every event must say so.
	// Without bpf_loop the hook is a gate behind the tracepoint, which reads
	// at the syscall's entry and cannot take a fault: there the toggle
	// happens on the attr's tail, after the entry and before the kernel's
	// copy (-flip-in-copy, as in TestJudgedCopyDiffersWhenTheLoaderRacesTheCheck).
	mode := "-flip-in-judge"
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		mode = "-flip-in-copy"
	}
	const n = 20
	run = runLoader(t, "-insns", writeInsns(t, genInsns(4)), "-name", "se2e_lsmrace", "-count", fmt.Sprint(n), mode, "0")
	if run.killed || len(run.results) != n {
		t.Fatalf("race loader killed=%v, %d results, want %d", run.killed, len(run.results), n)
	}
	evs = collect(t, s, map[uint32]bool{uint32(run.pid): true}, n, 120*time.Second)
	if len(evs) != n {
		t.Fatalf("race: got %d events, want %d", len(evs), n)
	}
	for _, ev := range evs {
		if ev.Program.Kernel == nil || len(ev.Program.Insns) != 32 {
			t.Fatalf("race load %d: loaded %v, %d instruction bytes captured (want 32): %+v", ev.LoadID, ev.Program.Kernel != nil, len(ev.Program.Insns), ev.Outcome)
		}
		other := append([]byte(nil), ev.Program.Insns...)
		other[4] ^= 1
		if !ev.JudgedCopyDiffers {
			t.Errorf("load %d: the kernel loaded a toggled immediate, yet the event is not flagged", ev.LoadID)
		}
		if a, b := progTags(other); ev.Program.Kernel.Tag != a && ev.Program.Kernel.Tag != b {
			t.Errorf("load %d: kernel tag %s is not the toggled program's", ev.LoadID, ev.Program.Kernel.Tag)
		}
	}
}

// The sleepable lsm-bpf hook reads a load's fd_array with
// bpf_copy_from_user, so a page of it that is not resident (a userfaultfd
// page supplied at its first fault, as a never-touched or swapped-out page
// would be) is faulted in and read: the load is judged on the maps it names
// there, not blocked as unreadable. A benign load is allowed with no read
// error; the completing load of a split that names its prog_array only
// through such an fd_array is denied by the group rule, and the page was
// supplied once, for the hook (the denied load never reached the kernel's
// own read).
func TestLSMBpfReadsAnFdArrayPageThatIsNotResident(t *testing.T) {
	if !requireLSMBpf(t) {
		return
	}
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		t.Logf("kernel %s: no fd_array (5.14) and no group judge on the bounded walk: nothing reads it", os.Getenv(kernelEnv))
		return
	}
	s := startSensor(t, Config{Hook: HookLSMBpf, Mode: ModeEnforce, BlockUnreadable: true, Rules: rules.Compile(rules.MustDefaults()).Kernel()})
	if s.Hook() != HookLSMBpf || s.Enforcer() != EnforcerDeny {
		t.Fatalf("sensor %s/%s, want %s/%s", s.Hook(), s.Enforcer(), HookLSMBpf, EnforcerDeny)
	}
	m := newGroupMaps(t, "fdauffd")
	hash := strings.Split(m.pins, ",")[mapHash]

	run := runLoader(t, "-insns", writeFile(t, "benign.bin", halfProgram(t, nil, 0)), "-name", "grp_fauffd",
		"-maps", hash, "-fd-array", "-fd-array-uffd")
	if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
		t.Fatalf("benign load: killed=%v results %+v, want it loaded", run.killed, run.results)
	}
	if f := run.results[0].UffdFaults; f != 1 {
		t.Fatalf("benign load: its fd_array page was supplied %d times, want once", f)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if evs[0].Verdict != VerdictAllow || evs[0].ReadErrors != 0 {
		t.Errorf("benign load: %v by %q, read errors %d; want allow, none", evs[0].Verdict, evs[0].RuleID, evs[0].ReadErrors)
	}

	callee := runLoader(t, "-insns", writeFile(t, "callee.bin", pamCallee(t)), "-name", "grp_fau1", "-maps", m.pins,
		"-prog-array", m.pin, "-tail-slot", "0")
	if callee.killed || len(callee.results) != 1 || callee.results[0].Ret < 0 {
		t.Fatalf("callee: killed=%v results %+v, want it loaded", callee.killed, callee.results)
	}
	if w := writesOf(t, s, callee.pid, 1, eventWait)[0]; w.Errno != 0 || w.ProgID != callee.results[0].ID {
		t.Fatalf("write %+v: want the callee %d written", w, callee.results[0].ID)
	}
	// Another process: its caller names the array only as fd_array index
	// 2, on the page not yet supplied.
	run = runLoader(t, "-insns", writeFile(t, "caller.bin", pamCaller(t, mapProgArray)), "-name", "grp_fau2", "-maps", m.pins,
		"-fd-array", "-fd-array-uffd")
	if run.killed || len(run.results) != 1 || run.results[0].Ret != -int(syscall.EPERM) {
		t.Fatalf("completing load: killed=%v results %+v, want it denied with EPERM", run.killed, run.results)
	}
	if f := run.results[0].UffdFaults; f != 1 {
		t.Errorf("completing load: its fd_array page was supplied %d times, want once (for the hook)", f)
	}
	evs = collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if evs[0].Verdict != VerdictBlock || evs[0].Action != ActionDenied || evs[0].RuleID != "seed-pamspy-group" || evs[0].ReadErrors != 0 {
		t.Errorf("completing load: %v %v by %q, read errors %d; want block, denied, by seed-pamspy-group, none",
			evs[0].Verdict, evs[0].Action, evs[0].RuleID, evs[0].ReadErrors)
	}
}
