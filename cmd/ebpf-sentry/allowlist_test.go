//go:build linux && amd64

package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// loadIn runs the test loader (-gen N: N-1 times r0 = 0, then exit) in cg;
// it reports whether SIGKILL ended it.
func loadIn(t *testing.T, cg *testutils.Cgroup, loader string, gen, name string) bool {
	t.Helper()
	cmd := exec.Command(loader, "-gen", gen, "-name", name)
	if err := cg.Start(cmd); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	if err != nil {
		t.Fatalf("loader %s: %v", name, err)
	}
	return false
}

// fingerprintOf finds the fingerprint that run's text line gives the
// load of prog name.
func fingerprintOf(t *testing.T, f *runFixture, name string) string {
	t.Helper()
	re := regexp.MustCompile(`prog="` + name + `".* fingerprint=(0x[0-9a-f]{16})`)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(f.stdout.String()); m != nil {
			return m[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no line with a fingerprint for %s:\n%s", name, f.stdout.String())
	return ""
}

func stopRun(f *runFixture) {
	f.cmd.Process.Signal(os.Interrupt)
	f.cmd.Wait()
}

// Learn, then lock, with a real `run`: learn mode writes what loaded into
// the allowlist file; lock mode lets the learned program load and kills an
// unknown one, saying why; approving the unknown one's fingerprint is
// picked up by the file watch and it loads. The lock is scoped to a test
// cgroup (--lock-cgroup) so that other processes on a shared host keep
// loading; the VMs' sensor tests lock the whole machine.
func TestRunLearnsThenLocks(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	cg := testutils.NewCgroup(t, "lockcli")
	dir := t.TempDir()
	list := filepath.Join(dir, "allow.yaml")

	learn := startRun(t, "--rules-poll", "0", "--mode", "learn", "--allowlist", list, "--allowlist-flush", "100ms")
	if loadIn(t, cg, learn.loader, "4", "slockcli_a") {
		t.Fatal("learn mode killed a load no rule blocks")
	}
	waitFor(t, "learned", &learn.stderr, `prog=slockcli_a`)
	fpA := fingerprintOf(t, learn, "slockcli_a")
	stopRun(learn)
	l, err := allowlist.Load(list)
	if err != nil {
		t.Fatal(err)
	}
	fp, _ := allowlist.ParseFingerprint(fpA)
	e := l.Find(fp)
	if e == nil || e.Name != "slockcli_a" || e.Type != "tracepoint" || e.Source != "learn" || len(e.Loaders) != 1 ||
		e.Loaders[0].Exe != learn.loader || e.Loaders[0].Inode == 0 || e.Tag == "" {
		t.Fatalf("learned entry %+v: want slockcli_a, tracepoint, learn, the loader's identity and its tag", e)
	}

	lock := startRun(t, "--rules-poll", "100ms", "--mode", "lock", "--allowlist", list, "--lock-cgroup", cg.Path)
	if loadIn(t, cg, lock.loader, "4", "slockcli_a2") {
		t.Error("lock mode killed the learned program")
	}
	if !loadIn(t, cg, lock.loader, "5", "slockcli_b") {
		t.Error("lock mode let an unknown program load")
	}
	fpB := fingerprintOf(t, lock, "slockcli_b")
	waitFor(t, "the reason", &lock.stdout, "kernel=block(allowlist-lock) lock=not-listed")

	// Approving B rewrites the file; the watch installs the new list.
	if out, errs, code := runRulesCLI(t, "allowlist", "approve", list, "--fingerprint", fpB, "--note", "test approval"); code != 0 {
		t.Fatalf("approve: %s %s", out, errs)
	}
	waitFor(t, "the reload", &lock.stderr, "allowlist reloaded")
	if loadIn(t, cg, lock.loader, "5", "slockcli_b2") {
		t.Error("the approved program is still killed after the reload")
	}
	// A broken file keeps the list in force.
	os.WriteFile(list+".new", []byte("version: 1\nentries: [{fingerprint: nothex}]\n"), 0o600)
	os.Rename(list+".new", list)
	waitFor(t, "the broken list refused", &lock.stderr, "keeping the one in force")
	if loadIn(t, cg, lock.loader, "4", "slockcli_a3") || !loadIn(t, cg, lock.loader, "6", "slockcli_c") {
		t.Error("after a broken list the list in force changed")
	}
	stopRun(lock)
}

// Lock mode follows a signed allowlist in a KV bucket on a real
// nats-server: the signed list takes effect, an unsigned one does not.
func TestRunLockFollowsASignedFleetAllowlist(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	cg := testutils.NewCgroup(t, "lockkv")
	dir := t.TempDir()
	srv := natstest.NewServer(t, "lock", filepath.Join(dir, "nats"), "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := (&natstest.Cluster{Servers: []*natstest.Server{srv}}).WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	keyPrefix := filepath.Join(dir, "fleet")
	if out, errs, code := runRulesCLI(t, "rules", "keygen", keyPrefix); code != 0 {
		t.Fatalf("keygen: %s %s", out, errs)
	}
	// Before any list: everything in the cgroup is blocked (fail closed).
	f := startRun(t, "--rules-poll", "0", "--mode", "lock", "--allowlist", "nats-kv://LOCKTEST", "--lock-cgroup", cg.Path,
		"--policy-key", keyPrefix+".pub", "--policy-nats", srv.URL(), "--policy-cache", filepath.Join(dir, "cache"))
	if !loadIn(t, cg, f.loader, "4", "slockkv_a0") {
		t.Fatal("no list yet, yet a load passed the lock")
	}
	fpA := fingerprintOf(t, f, "slockkv_a0")

	list := filepath.Join(dir, "fleet.yaml")
	if out, errs, code := runRulesCLI(t, "allowlist", "approve", list, "--fingerprint", fpA); code != 0 {
		t.Fatalf("approve: %s %s", out, errs)
	}
	if out, errs, code := runRulesCLI(t, "allowlist", "publish", list, "--key", keyPrefix+".key", "--nats", srv.URL(), "--bucket", "LOCKTEST"); code != 0 || !strings.Contains(out, "published 1 fingerprints as LOCKTEST/allowlist") {
		t.Fatalf("publish: %s %s", out, errs)
	}
	waitFor(t, "the signed list installed", &f.stderr, "allowlist reloaded")
	if loadIn(t, cg, f.loader, "4", "slockkv_a1") {
		t.Error("the signed list's program was killed")
	}
	if !loadIn(t, cg, f.loader, "5", "slockkv_b") {
		t.Error("a program not on the signed list loaded")
	}
	fpB := fingerprintOf(t, f, "slockkv_b")

	// An unsigned list allowing B is refused; B stays blocked.
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	kv, err := js.KeyValue(context.Background(), "LOCKTEST")
	if err != nil {
		t.Fatal(err)
	}
	unsigned, _ := json.Marshal(map[string]any{"version": 1, "entries": []map[string]string{{"fingerprint": fpA}, {"fingerprint": fpB}}})
	if _, err := kv.Put(context.Background(), "allowlist", unsigned); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the unsigned list rejected", &f.stderr, "bundle is not signed")
	if !loadIn(t, cg, f.loader, "5", "slockkv_b2") {
		t.Error("an unsigned list lifted the lock")
	}
	stopRun(f)
}

func TestAllowlistCommandListsDiffsApprovesAndPrunes(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	events := filepath.Join(dir, "events.json")
	os.WriteFile(events, []byte(`{"event":"sensor_started"}
{"event":"prog_load","prog":{"name":"evil\u001b[31m","type":{"id":5,"name":"tracepoint"},"insn_hash":"0x00000000000000bb","kernel":{"id":3,"tag":"0123456789abcdef"}},"loader":{"exe":"/tmp/x"},"verdict":{"action":"block"}}
{"event":"prog_load","prog":{"name":"fine","type":{"id":5,"name":"tracepoint"},"insn_hash":"0x00000000000000cc"},"verdict":{"action":"allow"}}
`), 0o600)
	run := func(args ...string) string {
		t.Helper()
		out, errs, code := runRulesCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: %s %s", args, out, errs)
		}
		return out
	}
	run("allowlist", "approve", a, "--fingerprint", "0xaa", "--name", "known")
	if out := run("allowlist", "approve", b, "--events", events, "--blocked-only"); !strings.Contains(out, "approved 1 new fingerprints (1 given)") {
		t.Errorf("approve --events --blocked-only: %s", out)
	}
	run("allowlist", "approve", b, "--fingerprint", "0xaa")
	out := run("allowlist", "list", b)
	if !strings.Contains(out, `"evil\x1b[31m"`) || !strings.Contains(out, "0x00000000000000bb") || !strings.Contains(out, "2 entries") {
		t.Errorf("list text: want the escaped name, the fingerprint and the count:\n%s", out)
	}
	var listed allowlist.List
	if err := json.Unmarshal([]byte(run("allowlist", "list", b, "--json")), &listed); err != nil || len(listed.Entries) != 2 {
		t.Fatalf("list --json: %v %+v", err, listed)
	}
	if listed.Entries[1].Name != `evil\x1b[31m` {
		t.Errorf("JSON name %q: want the escaped form", listed.Entries[1].Name)
	}
	out = run("allowlist", "diff", a, b)
	if !strings.Contains(out, "+ 0x00000000000000bb") || !strings.Contains(out, "1 added, 0 removed") {
		t.Errorf("diff: %s", out)
	}
	var d allowlist.Difference
	if err := json.Unmarshal([]byte(run("allowlist", "diff", b, a, "--json")), &d); err != nil || len(d.Removed) != 1 || d.Removed[0].Fingerprint != 0xbb {
		t.Errorf("diff --json: %v %+v", err, d)
	}
	if out := run("allowlist", "prune", b, "--before", "2000-01-01"); !strings.Contains(out, "removed 0 entries") {
		t.Errorf("prune of nothing: %s", out)
	}
	if out := run("allowlist", "prune", b, "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--dry-run"); !strings.Contains(out, "would remove 2 entries") {
		t.Errorf("prune --dry-run: %s", out)
	}
	if l, _ := allowlist.Load(b); len(l.Entries) != 2 {
		t.Error("--dry-run changed the file")
	}
	run("allowlist", "prune", b, "--before", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if l, _ := allowlist.Load(b); len(l.Entries) != 0 {
		t.Errorf("prune left %d entries", len(l.Entries))
	}
	if _, errs, code := runRulesCLI(t, "allowlist", "approve", a, "--fingerprint", "abc"); code == 0 || !strings.Contains(errs, "want 0x") {
		t.Errorf("a bad fingerprint: code %d %s", code, errs)
	}
}

// doctor says what lock mode guarantees with the hook run will use.
func TestDoctorSaysWhatLockModeGuarantees(t *testing.T) {
	testutils.RequireRoot(t, "probing the kernel")
	out, errs, code := runRulesCLI(t, "doctor")
	if code != 0 {
		t.Fatalf("doctor: %s %s", out, errs)
	}
	var hook, lock string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "run will use: hook "); ok {
			hook, _, _ = strings.Cut(rest, ",")
		}
		if rest, ok := strings.CutPrefix(line, "lock mode: "); ok {
			lock = rest
		}
	}
	want := map[string]string{"lsm-prog-load": "denied race-free", "lsm-bpf": "denied with EPERM", "tracepoint": "killed before the kernel copies it", "tp_btf": "killed before the kernel copies it"}[hook]
	if want == "" || !strings.Contains(lock, want) {
		t.Errorf("hook %q: lock mode line %q, want it to contain %q", hook, lock, want)
	}
}

// diff --loaded compares a list with what the scan finds loaded, by tag:
// a program this test holds and nobody listed shows as loaded-not-listed,
// the listed tag nothing has as listed-not-loaded, an approved entry
// without a tag on its own.
func TestAllowlistDiffAgainstWhatIsLoaded(t *testing.T) {
	testutils.RequireRoot(t, "scanning the loaded programs")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Name: "slockdiff",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 3), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	info, _ := prog.Info()
	id, _ := info.ID()
	list := filepath.Join(t.TempDir(), "l.yaml")
	l := allowlist.New()
	l.Approve([]allowlist.Entry{{Fingerprint: 1, Tag: "00000000000000ff"}, {Fingerprint: 2}}, time.Now())
	if err := l.Save(list); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runRulesCLI(t, "allowlist", "diff", list, "--loaded", "--json")
	if code != 0 {
		t.Fatalf("diff --loaded: %s %s", out, errs)
	}
	var d loadedDiff
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range d.NotListed {
		found = found || p.ID == uint32(id) && p.Name == "slockdiff" && p.Tag == info.Tag
	}
	if !found {
		t.Errorf("program %d (tag %s) not among the loaded-not-listed: %+v", id, info.Tag, d.NotListed)
	}
	if len(d.NotLoaded) != 1 || d.NotLoaded[0].Fingerprint != 1 || len(d.NoTag) != 1 || d.NoTag[0].Fingerprint != 2 {
		t.Errorf("listed-not-loaded %+v, without tag %+v", d.NotLoaded, d.NoTag)
	}
}

// Learn mode can put what it learns in the fleet's bucket (unsigned, under
// learned.HOST); an operator merges it into a file with approve --learned,
// to review and publish signed.
func TestRunLearnsIntoTheFleetBucket(t *testing.T) {
	testutils.RequireRoot(t, "running the sensor")
	cg := testutils.NewCgroup(t, "learnkv")
	dir := t.TempDir()
	srv := natstest.NewServer(t, "learn", filepath.Join(dir, "nats"), "")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	if err := (&natstest.Cluster{Servers: []*natstest.Server{srv}}).WaitHealthy(time.Minute); err != nil {
		t.Fatal(err)
	}
	f := startRun(t, "--rules-poll", "0", "--mode", "learn", "--allowlist", "nats-kv://LEARNTEST", "--policy-nats", srv.URL(), "--allowlist-flush", "100ms")
	if loadIn(t, cg, f.loader, "7", "slocklearnkv") {
		t.Fatal("learn mode killed a load no rule blocks")
	}
	fp := fingerprintOf(t, f, "slocklearnkv")
	waitFor(t, "the bucket written", &f.stderr, "allowlist written")
	stopRun(f)
	list := filepath.Join(dir, "merged.yaml")
	out, errs, code := runRulesCLI(t, "allowlist", "approve", list, "--learned", srv.URL(), "--bucket", "LEARNTEST")
	if code != 0 {
		t.Fatalf("approve --learned: %s %s", out, errs)
	}
	l, err := allowlist.Load(list)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := allowlist.ParseFingerprint(fp)
	e := l.Find(want)
	if e == nil || e.Name != "slocklearnkv" || len(e.Loaders) == 0 || e.Loaders[0].Exe != f.loader {
		t.Fatalf("merged entry %+v, want slocklearnkv learned from %s", e, f.loader)
	}
}
