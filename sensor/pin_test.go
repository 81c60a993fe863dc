package sensor

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// With PinPath the kernel side outlives the agent: after Close, a blocked
// load is still stopped (killed on a syscall hook, EPERM on an LSM hook)
// by the hook the kernel's plan picks, 32-bit companions included, until
// the pins are removed. Every link type the plan uses must be pinnable.
func TestPinnedSensorKeepsEnforcing(t *testing.T) {
	testutils.RequireRoot(t, "pinning the sensor")
	pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("sentry-test-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(pin) })
	s, err := New(Config{PinPath: pin, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
	if err != nil {
		t.Fatalf("start pinned sensor: %v", err)
	}
	hook := s.Hook()
	s.Close()
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	stopped := func(name string) bool {
		run := runLoader(t, "-insns", writeInsns(t, twice), "-name", name)
		switch {
		case run.killed:
			return true
		case len(run.results) == 1 && run.results[0].Ret == -1 && hook.IsLSM():
			return true
		case len(run.results) == 1 && run.results[0].Ret >= 0:
			return false
		}
		t.Fatalf("%s: loader killed=%v results=%v", name, run.killed, run.results)
		return false
	}
	if !stopped("se2eblk_pin") {
		t.Fatalf("hook %s: a blocked load loaded after the pinned sensor's agent closed", hook)
	}
	if err := os.RemoveAll(pin); err != nil {
		t.Fatal(err)
	}
	// Unpinned links are released asynchronously.
	deadline := time.Now().Add(10 * time.Second)
	for stopped("se2eblk_pin2") {
		if time.Now().After(deadline) {
			t.Fatalf("hook %s: still enforcing 10 s after the pins were removed", hook)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("hook %s: enforced while pinned, released after unpinning", hook)
}
