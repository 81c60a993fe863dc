package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// An upgrade of a pinned agent (docs/DEPLOY.md): the old agent exits, its
// pins keep enforcing, the new agent starts and replaces them. Blocked
// loads run back to back through every phase, including while the new
// sensor is being set up and swaps the pins, and every one is stopped.
func TestPinnedSensorUpgradeLeavesNoGap(t *testing.T) {
	testutils.RequireRoot(t, "pinning and replacing the sensor")
	pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("sentry-upgrade-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(pin) })
	cfg := Config{PinPath: pin, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20}
	old, err := New(cfg)
	if err != nil {
		t.Fatalf("start the old pinned sensor: %v", err)
	}
	hook := old.Hook()
	old.Close()

	insns := writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd))
	loads := map[string]int{}
	load := func(phase string) {
		t.Helper()
		run := runLoader(t, "-insns", insns, "-name", "se2eblk_upg")
		switch {
		case run.killed, len(run.results) == 1 && run.results[0].Ret == -1 && hook.IsLSM():
			loads[phase]++
		default:
			t.Fatalf("hook %s, %s: a blocked load was not stopped (killed=%v results=%v)", hook, phase, run.killed, run.results)
		}
	}

	load("old agent gone, its pins enforcing")
	load("old agent gone, its pins enforcing")

	type started struct {
		s   *Sensor
		err error
	}
	done := make(chan started, 1)
	go func() {
		s, err := New(cfg)
		done <- started{s, err}
	}()
	var upgraded started
	deadline := time.After(5 * time.Minute)
wait:
	for {
		select {
		case upgraded = <-done:
			break wait
		case <-deadline:
			t.Fatal("the new sensor did not start in 5 minutes")
		default:
			load("new agent starting and replacing the pins")
		}
	}
	if upgraded.err != nil {
		t.Fatalf("start the new pinned sensor: %v", upgraded.err)
	}
	load("new agent running")
	load("new agent running")
	upgraded.s.Close()
	load("new agent gone, its pins enforcing")
	load("new agent gone, its pins enforcing")
	t.Logf("hook %s: every blocked load stopped across the upgrade: %v", hook, loads)
}
