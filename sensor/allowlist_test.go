package sensor

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/fpcollide"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// lockScope is where a lock-mode test locks: the whole machine in a matrix
// VM (nothing else runs there), only the test's own cgroup on a shared
// host, where a host-wide lock would kill every other engineer's loads.
// The kernel code is the same; the scope is one comparison before it.
type lockScope struct {
	cg *testutils.Cgroup // nil: host-wide
}

func newLockScope(t *testing.T) lockScope {
	if os.Getenv(kernelEnv) != "" {
		return lockScope{}
	}
	return lockScope{cg: testutils.NewCgroup(t, "lock")}
}

func (l lockScope) id() uint64 {
	if l.cg == nil {
		return 0
	}
	return l.cg.ID
}

// load runs the test loader inside the scope.
func (l lockScope) load(t *testing.T, args ...string) loaderRun {
	t.Helper()
	cmd := exec.Command(buildLoader(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := cmd.Start
	if l.cg != nil {
		start = func() error { return l.cg.Start(cmd) }
	}
	if err := start(); err != nil {
		t.Fatalf("loader %v: %v", args, err)
	}
	return waitLoader(t, cmd, args, &out, &stderr)
}

// blocked says whether the sensor stopped the run's only load: killed on
// a syscall hook, EPERM and no program on an LSM hook.
func (r loaderRun) blocked() bool {
	return r.killed || len(r.results) == 1 && r.results[0].Ret < 0 && r.results[0].ID == 0
}

func (r loaderRun) loaded() bool {
	return !r.killed && len(r.results) == 1 && r.results[0].Ret >= 0 && r.results[0].ID != 0
}

// Learn, then lock, on the live sensor with the strongest hook the kernel
// offers (tracepoint + SIGKILL on this CI host, the LSM deny in the VMs):
// a learned fingerprint loads, an unknown one is blocked and the event says
// why; with no list installed everything is blocked (fail closed); rules
// still block a listed program; a new list replaces the old one whole; the
// installed list is frozen and replacing it behind the agent's back is a
// tamper finding.
func TestLockBlocksWhatIsNotOnTheAllowlist(t *testing.T) {
	scope := newLockScope(t)
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	t.Logf("hook %s, enforcer %s, lock scope cgroup %d (0: host-wide)", s.Hook(), s.Enforcer(), scope.id())
	one := func(run loaderRun) *Event {
		t.Helper()
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if len(evs) != 1 {
			t.Fatalf("got %d events for loader %d, want 1", len(evs), run.pid)
		}
		return evs[0]
	}

	// Learn: lock off, the program loads and its fingerprint is recorded.
	learned := one(scope.load(t, "-gen", "4", "-name", "slock_learn"))
	if learned.Lock != LockOff || learned.Outcome.Result != ResultLoaded || learned.InsnHash == 0 {
		t.Fatalf("learning load: lock %v outcome %+v hash %#x, want off, loaded, a fingerprint", learned.Lock, learned.Outcome, learned.InsnHash)
	}
	unknown := one(scope.load(t, "-gen", "5", "-name", "slock_unknown")).InsnHash
	if unknown == learned.InsnHash {
		t.Fatal("two different programs have one fingerprint")
	}

	// Lock with no list: fail closed.
	if err := s.SetLock(true, scope.id()); err != nil {
		t.Fatal(err)
	}
	run := scope.load(t, "-gen", "4", "-name", "slock_nolist")
	ev := one(run)
	if !run.blocked() || ev.Lock != LockNoList || ev.Verdict != VerdictBlock || ev.RuleID != RuleLock {
		t.Fatalf("no list installed: blocked=%v lock %v verdict %v rule %q, want blocked, %v, block, %s", run.blocked(), ev.Lock, ev.Verdict, ev.RuleID, LockNoList, RuleLock)
	}

	if err := s.SetAllowlist([]uint64{learned.InsnHash}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		args   []string
		loads  bool
		lock   Lock
		ruleID string
	}{
		{"the learned program loads", []string{"-gen", "4", "-name", "slock_learn"}, true, LockListed, ""},
		{"the learned program loads under another name", []string{"-gen", "4", "-name", "slock_other"}, true, LockListed, ""},
		{"an unknown program is blocked by the lock", []string{"-gen", "5", "-name", "slock_unknown"}, false, LockNotListed, RuleLock},
		{"a listed program is still blocked by a rule", []string{"-gen", "4", "-name", "se2eexact"}, false, LockListed, "e2e-exact"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := scope.load(t, tc.args...)
			ev := one(run)
			if tc.loads != run.loaded() || tc.loads == run.blocked() {
				t.Errorf("loaded=%v blocked=%v (killed=%v results=%v), want loaded=%v", run.loaded(), run.blocked(), run.killed, run.results, tc.loads)
			}
			if ev.Lock != tc.lock || ev.RuleID != tc.ruleID {
				t.Errorf("lock %v rule %q, want %v %q", ev.Lock, ev.RuleID, tc.lock, tc.ruleID)
			}
			if !tc.loads && (ev.Verdict != VerdictBlock || (ev.Action != ActionKilled && ev.Action != ActionDenied)) {
				t.Errorf("verdict %v action %v, want block carried out", ev.Verdict, ev.Action)
			}
			if ev.Lock == LockNotListed && ev.Lock.Why(ev.InsnHash) == "" {
				t.Error("a lock block has no reason to show")
			}
		})
	}

	// The installed list is frozen: not even root changes it in place.
	var id uint32
	if err := s.coll.Maps[sentryMapAllowlist].Lookup(uint32(0), &id); err != nil {
		t.Fatal(err)
	}
	inner, err := ebpf.NewMapFromID(ebpf.MapID(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := inner.Put(unknown, uint32(0)); !errors.Is(err, syscall.EPERM) {
		t.Errorf("writing the installed allowlist: %v, want EPERM (frozen)", err)
	}
	inner.Close()

	// A new list replaces the old one whole.
	if err := s.SetAllowlist([]uint64{unknown}); err != nil {
		t.Fatal(err)
	}
	if run := scope.load(t, "-gen", "5", "-name", "slock_unknown"); !run.loaded() {
		t.Errorf("after the swap the newly listed program: killed=%v results=%v, want loaded", run.killed, run.results)
	}
	if run := scope.load(t, "-gen", "4", "-name", "slock_learn"); !run.blocked() {
		t.Errorf("after the swap the delisted program: killed=%v results=%v, want blocked", run.killed, run.results)
	}

	// Someone else installing a list is seen by the integrity check.
	if tam, err := s.CheckIntegrity(); err != nil || len(tam) != 0 {
		t.Fatalf("integrity before tampering: %v %v", tam, err)
	}
	other, err := ebpf.NewMap(s.allowSpec)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := s.coll.Maps[sentryMapAllowlist].Put(uint32(0), other); err != nil {
		t.Fatal(err)
	}
	tam, err := s.CheckIntegrity()
	if err != nil || len(tam) != 1 || tam[0].What != "allowlist" {
		t.Errorf("integrity after another list was installed: %v %v, want one allowlist finding", tam, err)
	}
}

// The agent's own loads are judged by identity (tgid and start time), not
// by name, and pass a lock with an empty list, while a stranger with the
// agent's comm and program name is blocked. On a shared host the test
// process joins the test cgroup for the duration, so that the scoped lock
// applies to it.
func TestLockSparesTheAgentsOwnLoadsByIdentity(t *testing.T) {
	scope := newLockScope(t)
	s := startSensor(t, Config{Mode: ModeEnforce})
	if scope.cg != nil {
		scope.cg.Enter(t)
	}
	if err := s.SetAllowlist(nil); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLock(true, scope.id()); err != nil {
		t.Fatal(err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Name: "slock_own",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatalf("the agent's own load under lock with an empty list: %v", err)
	}
	prog.Close()
	own := ownLoad(t, s, "slock_own", eventWait, func(e *Event) {
		if e.Lock != LockSelf {
			t.Errorf("own load attempt: lock %v, want %v", e.Lock, LockSelf)
		}
	})
	if own == nil {
		t.Fatal("no event for the agent's own load")
	}
	if own.Lock != LockSelf || own.Verdict != VerdictAllow || own.Outcome.Result != ResultLoaded {
		t.Fatalf("own load: lock %v verdict %v outcome %+v, want %v, allow, loaded", own.Lock, own.Verdict, own.Outcome, LockSelf)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	run := scope.load(t, "-gen", "2", "-name", "slock_own", "-comm", string(bytes.TrimSpace(comm)), "-type", "1")
	if !run.blocked() {
		t.Fatalf("a stranger with the agent's comm and program name passed an empty lock: killed=%v results=%v", run.killed, run.results)
	}
}

// The fingerprint is not collision resistant (docs/FLEET.md says so): a
// different program with a listed fingerprint is built in constant time and
// passes the kernel's lock. The sensor alone stops what nobody approved, not
// an attacker who knows the list and holds CAP_BPF; run's SHA-256 check
// catches the forgery after the load and kills its loader
// (cmd/ebpf-sentry TestRunLockKillsAForgedFingerprint).
func TestLockIsOnlyAsStrongAsTheFingerprint(t *testing.T) {
	listed := genInsns(4)
	forged := fpcollide.Collide(kernel.Hash(listed))
	if bytes.Equal(forged, listed) || kernel.Hash(forged) != kernel.Hash(listed) {
		t.Fatalf("no collision: %x vs %x", kernel.Hash(forged), kernel.Hash(listed))
	}
	scope := newLockScope(t)
	s := startSensor(t, Config{Mode: ModeEnforce})
	if err := s.SetAllowlist([]uint64{kernel.Hash(listed)}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLock(true, scope.id()); err != nil {
		t.Fatal(err)
	}
	run := scope.load(t, "-insns", writeInsns(t, forged), "-name", "slock_forged")
	if !run.loaded() {
		t.Fatalf("the forged program did not load (killed=%v results=%v): the kernel's hash differs from kernel.Hash?", run.killed, run.results)
	}
	if run := scope.load(t, "-gen", "5", "-name", "slock_unlisted"); !run.blocked() {
		t.Errorf("an unlisted program loaded")
	}
}
