//go:build linux && amd64

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/internal/fpcollide"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The kernel's lock check compares a 64-bit fingerprint that can be forged
// (sensor's TestLockIsOnlyAsStrongAsTheFingerprint: the forged program
// loads). run checks each listed load again with the SHA-256 of the
// instructions the kernel judged against the entry's: the forged program's
// loader, which holds the program's only fd, is killed and a
// lock_collision tamper event names the load; the learned program itself
// is left alone.
func TestRunLockKillsAForgedFingerprint(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	cg := testutils.NewCgroup(t, "lockcoll")
	list := filepath.Join(t.TempDir(), "allow.yaml")

	learn := startRun(t, "--rules-poll", "0", "--mode", "learn", "--allowlist", list, "--allowlist-flush", "100ms")
	if loadIn(t, cg, learn.loader, "4", "slockcoll_a") {
		t.Fatal("learn mode killed a load no rule blocks")
	}
	// On a shared host another loader may have taught the same program
	// first: wait for its fingerprint in the written list, whoever it came from.
	fpA := fingerprintOf(t, learn, "slockcoll_a")
	fp, _ := allowlist.ParseFingerprint(fpA)
	var e *allowlist.Entry
	for deadline := time.Now().Add(20 * time.Second); e == nil && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if l, err := allowlist.Load(list); err == nil {
			e = l.Find(fp)
		}
	}
	stopRun(learn)
	if e == nil || e.SHA256 == "" {
		t.Fatalf("learned entry %+v: want one with the program's sha256", e)
	}
	forged := filepath.Join(t.TempDir(), "forged.insns")
	if err := os.WriteFile(forged, fpcollide.Collide(uint64(fp)), 0o600); err != nil {
		t.Fatal(err)
	}

	lock := startRun(t, "--rules-poll", "0", "--mode", "lock", "--allowlist", list, "--lock-cgroup", cg.Path)
	if loadIn(t, cg, lock.loader, "4", "slockcoll_a2") {
		t.Fatal("lock mode killed the learned program")
	}
	// The forged program's loader keeps its fd until stdin closes.
	cmd := exec.Command(lock.loader, "-insns", forged, "-name", "slockcoll_fake", "-keep")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.Start(cmd); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(30 * time.Second):
		stdin.Close()
		<-done
		t.Fatalf("the forged program's loader was not killed:\n%s", lock.stderr.String())
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("forged loader ended with %v, want SIGKILL", werr)
	}
	// The kernel's check passed it (listed); run's second check caught it.
	waitFor(t, "the forged load", &lock.stdout, `prog="slockcoll_fake"`)
	if !regexp.MustCompile(`prog="slockcoll_fake".* kernel=allow lock=listed`).MatchString(lock.stdout.String()) {
		t.Fatalf("the kernel's lock did not pass the forged program (listed):\n%s", lock.stdout.String())
	}
	waitFor(t, "the collision", &lock.stderr, "lock mode fooled by a forged fingerprint")
	m := regexp.MustCompile(`loader pid \d+ killed ([0-9.]+[µmn]?s) after the load`).FindStringSubmatch(lock.stderr.String())
	if m == nil {
		t.Fatalf("no kill in the collision report:\n%s", lock.stderr.String())
	}
	t.Logf("window from the load to the kill: %s", m[1])
	stopRun(lock)
}
