package sensor

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// An inner load (a syscall program's bpf_sys_bpf(BPF_PROG_LOAD) during its
// caller's BPF_PROG_TEST_RUN, the light skeleton's path) seen by an LSM
// hook carries its own outcome, not the outer run's: denied with EPERM when
// a rule blocks it, loaded with its prog id otherwise. Its event names the
// process that ran the loader and the loader program's id and tag, and its
// instructions, which live in kernel memory, are read whole (on lsm.s/bpf
// too, which reads a bpf() caller's with bpf_copy_from_user).
func TestLSMInnerLoadsCarryTheirOwnOutcome(t *testing.T) {
	testutils.RequireRoot(t, "loading the sensor's BPF programs")
	testutils.SkipOnOldKernel(t, "5.14", "syscall programs (bpf_sys_bpf), which issue inner loads")
	hook := HookLSMProgLoad
	if lsmProgLoadUsable() != nil || withoutBPFLoop[os.Getenv(kernelEnv)] {
		hook = HookLSMBpf
		if !requireLSMBpf(t) {
			return // no LSM hook here: requireLSMBpf proved it is refused
		}
	} else if !requireLSMProgLoad(t) {
		return
	}
	s := startSensor(t, Config{Hook: hook, Mode: ModeEnforce, Rules: compiledTestRules(t)})
	insns := genInsns(40) // 320 bytes: r0 = 0 … exit
	cases := []struct {
		name   string
		prog   string
		denied bool
	}{
		{"an inner load a rule blocks is denied with EPERM and reported so", "se2eexact", true},
		{"an inner load nothing blocks is reported loaded with its id", "se2e_innerok", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-inner", "-type", "1", "-insns", writeInsns(t, insns), "-name", tc.prog)
			if run.killed || len(run.results) != 1 {
				t.Fatalf("loader killed=%v results=%v: the LSM path must return to the loader", run.killed, run.results)
			}
			res := run.results[0]
			if res.LoaderID == 0 || res.LoaderTag == "" {
				t.Fatalf("bpfload -inner did not name its loader program: %+v", res)
			}
			// The loader program's own load (and the library's feature
			// probes), then the inner one.
			var ev *Event
			var seen []string
			deadline := time.Now().Add(60 * time.Second)
			for ev == nil && time.Now().Before(deadline) {
				for _, e := range collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, time.Until(deadline)) {
					seen = append(seen, e.Program.Name)
					if e.Program.Name == tc.prog {
						ev = e
					}
				}
			}
			if ev == nil {
				t.Fatalf("no event for the inner load of %q; the loader's events: %q", tc.prog, seen)
			}
			t.Logf("%s: verdict %v action %v outcome %+v inner %+v kernel %+v read_errors %d", tc.prog, ev.Verdict, ev.Action, ev.Outcome, ev.Inner, ev.Program.Kernel, ev.ReadErrors)
			if ev.Inner == nil {
				t.Fatalf("the inner load's event is not marked inner")
			}
			if ev.Inner.LoaderProgID != res.LoaderID || ev.Inner.LoaderTag != res.LoaderTag {
				t.Errorf("loader program %d/%s, want %d/%s", ev.Inner.LoaderProgID, ev.Inner.LoaderTag, res.LoaderID, res.LoaderTag)
			}
			if ev.Program.Loader == nil || ev.Program.Loader.PID != uint32(res.PID) {
				t.Errorf("loader %+v, want the process that ran the loader program (pid %d)", ev.Program.Loader, res.PID)
			}
			if !ev.Complete() || !bytes.Equal(ev.Program.Insns, insns) {
				t.Errorf("instructions: complete=%v (missing %v, read errors %d), %d of %d bytes equal=%v", ev.Complete(), ev.Missing, ev.ReadErrors, len(ev.Program.Insns), len(insns), bytes.Equal(ev.Program.Insns, insns))
			}
			if tc.denied {
				if res.Ret != -1 || res.ID != 0 {
					t.Errorf("blocked inner load returned %d id %d, want -EPERM (-1) and no id", res.Ret, res.ID)
				}
				if ev.Verdict != VerdictBlock || ev.RuleID != "e2e-exact" || ev.Action != ActionDenied {
					t.Errorf("verdict %v rule %q action %v, want block e2e-exact denied", ev.Verdict, ev.RuleID, ev.Action)
				}
				if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != 1 || ev.Program.Kernel != nil {
					t.Errorf("outcome %+v kernel %+v, want failed with EPERM and no prog id", ev.Outcome, ev.Program.Kernel)
				}
				return
			}
			if res.Ret < 0 || res.ID == 0 {
				t.Fatalf("spared inner load failed: %+v", res)
			}
			if ev.Verdict != VerdictAllow || ev.Action != ActionNone || ev.Outcome.Result != ResultLoaded ||
				ev.Program.Kernel == nil || ev.Program.Kernel.ID != res.ID {
				t.Errorf("verdict %v action %v outcome %+v kernel %+v, want allowed and loaded as id %d", ev.Verdict, ev.Action, ev.Outcome, ev.Program.Kernel, res.ID)
			}
		})
	}
	if left := progsNamed(t, "se2eexact"); len(left) != 0 {
		t.Errorf("denied inner load exists: %v", left)
	}
}
