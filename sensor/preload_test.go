package sensor

import (
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// A start after Preload takes what Preload parsed and judges as any start:
// with the walk Preload parsed for (the default where bpf_loop exists) and
// with the bounded walk, whose object Preload did not parse.
func TestAPreloadedStartJudgesLikeAnyStart(t *testing.T) {
	testutils.RequireRoot(t, "loading and attaching the sensor's BPF programs")
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	for _, walk := range []Walk{"", WalkBounded} {
		name := "walk " + string(walk)
		if walk == "" {
			name = "default walk"
		}
		t.Run(name, func(t *testing.T) {
			Preload()
			if k, spec := peekPreloaded(); k == nil || spec == nil {
				t.Fatal("Preload started nothing")
			}
			s := startSensor(t, Config{Hook: HookTracepoint, Walk: walk, Mode: ModeEnforce, Rules: compiledTestRules(t)})
			if k, spec := peekPreloaded(); k != nil || spec != nil {
				t.Fatal("the start left what Preload started for the next one")
			}
			run := runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2eblk_x")
			if !run.killed {
				t.Fatalf("a load the rules block was not killed (walk %s, results %v)", s.Walk(), run.results)
			}
			run = runLoader(t, "-insns", writeInsns(t, twice), "-name", "se2e_benign")
			if run.killed {
				t.Fatalf("an allowed load was killed (walk %s, results %v)", s.Walk(), run.results)
			}
		})
	}
}

func peekPreloaded() (*kernelBTF, <-chan specResult) {
	preloaded.Lock()
	defer preloaded.Unlock()
	return preloaded.kernel, preloaded.spec
}
