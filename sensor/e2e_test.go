package sensor

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// loaderBin is the bpfload test loader, built once per test binary.
var (
	loaderOnce sync.Once
	loaderBin  string // built here, removed by TestMain
	loaderPath string // what tests run: loaderBin, or bpfload on PATH in a VM
	loaderErr  error
)

// kernelEnv names the matrix kernel a test binary runs on (vmtest sets it).
const kernelEnv = "EBPF_SENTRY_KERNEL"

// withoutBPFLoop are the matrix kernels older than bpf_loop (5.17): there
// the sensor must pick the bounded walk by itself.
var withoutBPFLoop = map[string]bool{"5.10": true, "5.10-lsm": true}

func buildLoader(t testing.TB) string {
	t.Helper()
	loaderOnce.Do(func() {
		if os.Getenv(kernelEnv) != "" {
			// Inside a matrix VM there is no Go toolchain: vmrun
			// -helpers ./internal/cmd/bpfload puts the loader on PATH.
			loaderPath, loaderErr = exec.LookPath("bpfload")
			if loaderErr != nil {
				loaderErr = fmt.Errorf("in VM %s: %w (run vmrun with -helpers ./internal/cmd/bpfload)", os.Getenv(kernelEnv), loaderErr)
			}
			return
		}
		dir, err := os.MkdirTemp("", "sentry-e2e")
		if err != nil {
			loaderErr = err
			return
		}
		loaderBin = filepath.Join(dir, "bpfload")
		loaderPath = loaderBin
		out, err := exec.Command("go", "build", "-o", loaderBin, "../internal/cmd/bpfload").CombinedOutput()
		if err != nil {
			loaderErr = fmt.Errorf("build loader: %v\n%s", err, out)
		}
	})
	if loaderErr != nil {
		t.Fatal(loaderErr)
	}
	return loaderPath
}

func TestMain(m *testing.M) {
	runTestHelper() // a process of a test re-executed (exits)
	code := m.Run()
	if loaderBin != "" {
		os.RemoveAll(filepath.Dir(loaderBin))
	}
	os.Exit(code)
}

type loadResult struct {
	PID, TID int
	Ret      int
	ID       uint32
	Pin      string
	Step     string // the tamper modes: the failing step
	Error    string // errno text
	// bpfload -inner: the syscall program that loaded it.
	LoaderID  uint32 `json:"loader_id"`
	LoaderTag string `json:"loader_tag"`
	// bpfload -fd-array-uffd: pages of the load's fd_array supplied.
	UffdFaults int `json:"uffd_faults"`
}

type loaderRun struct {
	results []loadResult
	killed  bool // ended by SIGKILL
	pid     int
}

// runLoader runs bpfload with args and waits for it.
func runLoader(t testing.TB, args ...string) loaderRun {
	t.Helper()
	_, wait := startLoader(t, args...)
	return wait()
}

// startLoader starts bpfload with args and gives its pid; the returned
// function waits for it (call it from the test's goroutine).
func startLoader(t testing.TB, args ...string) (int, func() loaderRun) {
	t.Helper()
	return startLoaderBin(t, buildLoader(t), args...)
}

func startLoaderBin(t testing.TB, bin string, args ...string) (int, func() loaderRun) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("loader %v: %v", args, err)
	}
	return cmd.Process.Pid, func() loaderRun {
		t.Helper()
		return waitLoader(t, cmd, args, &out, &stderr)
	}
}

func waitLoader(t testing.TB, cmd *exec.Cmd, args []string, out, stderr *bytes.Buffer) loaderRun {
	t.Helper()
	return loaderResult(t, cmd, cmd.Wait(), args, out, stderr)
}

// loaderResult is what the loader cmd printed, its Wait having returned err:
// killed by SIGKILL is a result, any other failure ends the test.
func loaderResult(t testing.TB, cmd *exec.Cmd, err error, args []string, out, stderr *bytes.Buffer) loaderRun {
	t.Helper()
	run := loaderRun{pid: cmd.Process.Pid}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			run.killed = true
		} else {
			t.Fatalf("loader %v: %v\n%s", args, err, stderr.String())
		}
	} else if err != nil {
		t.Fatalf("loader %v: %v", args, err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var r loadResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("loader output %q: %v", sc.Text(), err)
		}
		run.results = append(run.results, r)
	}
	return run
}

func startSensor(t testing.TB, cfg Config) *Sensor {
	t.Helper()
	if cfg.RingBufferSize == 0 && os.Getenv(kernelEnv) != "" {
		// A matrix VM's RAM also holds its initramfs: with 512 MiB,
		// default 64 MiB rings (written through at start) of one
		// sensor after another once got 7.3's OOM killer.
		cfg.RingBufferSize = 4 << 20
	}
	testutils.RequireRoot(t, "loading and attaching the sensor's BPF programs")
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("start sensor: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if label := os.Getenv(kernelEnv); withoutBPFLoop[label] && s.Walk() != WalkBounded {
		t.Fatalf("kernel %s has no bpf_loop, yet the sensor walks with %s", label, s.Walk())
	}
	return s
}

// eventWait bounds the wait for an event the test caused. It only costs
// time when the event never comes: on a loaded 2-core machine (the CI
// host runs the VM matrix beside, this host runs other engineers' loads,
// each judged by every sensor running) an event can take many seconds.
const eventWait = 2 * time.Minute

// interruptedAttempt reports an attempt that a pending signal ended in the
// verifier (EAGAIN): the loader retries the same program at once.
func interruptedAttempt(ev *Event) bool {
	return ev.Outcome.Result == ResultFailed && ev.Outcome.Errno == int(syscall.EAGAIN)
}

// ownLoad waits for the event of this process's load named name. A
// signal that arrives during verification (the Go runtime preempts with
// SIGURG) fails an attempt with EAGAIN and the loader retries it: such an
// attempt is an event of its own, judged like the final one, so it is
// checked with check and skipped; the attempt that ran to the end is
// returned. Nil when none arrived before the timeout.
func ownLoad(t testing.TB, s *Sensor, name string, timeout time.Duration, check func(*Event)) *Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, e := range collectAttempts(t, s, map[uint32]bool{uint32(os.Getpid()): true}, 1, time.Until(deadline)) {
			if e.Program.Name != name {
				continue // another load of this process (cilium/ebpf's feature probes)
			}
			if check != nil {
				check(e)
			}
			if interruptedAttempt(e) {
				continue
			}
			return e
		}
	}
	return nil
}

// collect gathers the loads of the given loader pids until n arrived or
// the timeout passed; other engineers' loads on this host are ignored. A
// load is the attempt that ran to the end: the loaders are Go programs, a
// signal the runtime sends (SIGURG, SIGCHLD) can end an attempt in the
// verifier with EAGAIN, and the loader retries it (rawbpf, cilium/ebpf).
// Such an attempt is not counted; the retry that follows it must say that
// it repeats it (Event.Retry, Event.RetryOf), which collect checks. Tests
// that count every attempt use collectAttempts.
func collect(t testing.TB, s *Sensor, pids map[uint32]bool, n int, timeout time.Duration) []*Event {
	t.Helper()
	var out []*Event
	skipped := map[uint64]bool{} // load ids of interrupted attempts
	deadline := time.Now().Add(timeout)
	for len(out) < n && time.Now().Before(deadline) {
		evs := collectAttempts(t, s, pids, 1, time.Until(deadline))
		if len(evs) == 0 {
			break
		}
		ev := evs[0]
		if ev.Retry > 0 && !skipped[ev.RetryOf] {
			t.Errorf("load %d (%s, pid %d) is marked a retry of %d, which was not an interrupted attempt of these loaders",
				ev.LoadID, ev.Program.Name, ev.Program.Loader.PID, ev.RetryOf)
		}
		if interruptedAttempt(ev) {
			t.Logf("attempt %d (%s, pid %d) interrupted with EAGAIN; the loader retries it", ev.LoadID, ev.Program.Name, ev.Program.Loader.PID)
			skipped[ev.LoadID] = true
			continue
		}
		out = append(out, ev)
	}
	return out
}

// collectAttempts gathers events of the given loader pids until n arrived
// or the timeout passed, each attempt of a load its own event.
func collectAttempts(t testing.TB, s *Sensor, pids map[uint32]bool, n int, timeout time.Duration) []*Event {
	t.Helper()
	var out []*Event
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case ev, ok := <-s.Events():
			if !ok {
				return out
			}
			if ev.Program.Loader != nil && pids[ev.Program.Loader.PID] {
				out = append(out, ev)
			}
		case <-deadline:
			return out
		}
	}
	return out
}

// rssKiB is this process's resident set (VmRSS).
func rssKiB(t testing.TB) int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &kib)
			return kib
		}
	}
	return 0
}

// asmInsn encodes one instruction.
func asmInsn(code, regs uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0], b[1] = code, regs
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

// helperProg calls each helper (no-argument helpers only, so the verifier
// accepts it as a tracepoint program), then returns 0.
func helperProg(helpers ...int32) []byte {
	var b []byte
	for _, h := range helpers {
		b = append(b, asmInsn(0x85, 0, 0, h)...)
	}
	b = append(b, asmInsn(0xb7, 0, 0, 0)...)
	return append(b, asmInsn(0x95, 0, 0, 0)...)
}

func writeInsns(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "insns.bin")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func genInsns(n int) []byte {
	b := make([]byte, n*8)
	for i := 0; i < n-1; i++ {
		b[i*8] = 0xb7
	}
	b[(n-1)*8] = 0x95
	return b
}

// progsNamed enumerates loaded programs whose name starts with prefix.
func progsNamed(t testing.TB, prefix string) []string {
	t.Helper()
	var found []string
	id := ebpf.ProgramID(0)
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err == nil && strings.HasPrefix(info.Name, prefix) {
			found = append(found, fmt.Sprintf("%d:%s", id, info.Name))
		}
	}
	return found
}

const (
	fnKtimeGetNs       = 5
	fnGetCurrentPidTgd = 14
	fnGetSmpProcID     = 8
)

// hookWalks are the hook and walk pairs the end-to-end tests run with: both
// syscall hooks, and the tracepoint with the bounded walk that kernels
// without bpf_loop use (run here too, so that the host proves it).
var hookWalks = []struct {
	hook Hook
	walk Walk
}{{HookTracepoint, ""}, {HookBTF, ""}, {HookTracepoint, WalkBounded}}

func hookWalkName(h Hook, w Walk) string {
	if w == "" {
		return "hook " + string(h)
	}
	return "hook " + string(h) + " walk " + string(w)
}

func TestCaptureIsByteIdenticalWithMetadata(t *testing.T) {
	for _, hw := range hookWalks {
		t.Run(hookWalkName(hw.hook, hw.walk), func(t *testing.T) { testCapture(t, hw.hook, hw.walk) })
	}
}

func testCapture(t *testing.T, hook Hook, walk Walk) {
	s := startSensor(t, Config{Hook: hook, Walk: walk, Mode: ModeMonitor})
	if s.Hook() != hook {
		t.Fatalf("sensor uses hook %s, asked for %s", s.Hook(), hook)
	}
	uid := uint32(os.Getuid())
	cases := []struct {
		name    string
		insns   []byte
		prog    string
		helpers map[uint32]uint32
		loaded  bool
	}{
		{"a ten-instruction program is captured whole and loads", genInsns(10), "se2e_ten", nil, true},
		{"helper calls are counted by the kernel", helperProg(fnGetCurrentPidTgd, fnKtimeGetNs, fnGetCurrentPidTgd, fnGetSmpProcID), "se2e_helpers",
			map[uint32]uint32{fnGetCurrentPidTgd: 2, fnKtimeGetNs: 1, fnGetSmpProcID: 1}, true},
		{"a program the verifier rejects is still captured whole", append(genInsns(1000)[:999*8], asmInsn(0xb7, 0, 0, 1)...), "se2e_reject", nil, false},
		{"a 1,000,000-instruction program is captured whole", genInsns(1_000_000), "se2e_million", nil, true},
		{"an odd size crossing a chunk boundary is captured whole", genInsns(513), "se2e_513", nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-insns", writeInsns(t, tc.insns), "-name", tc.prog)
			if run.killed || len(run.results) != 1 {
				t.Fatalf("loader: killed=%v results=%v", run.killed, run.results)
			}
			res := run.results[0]
			if (res.Ret >= 0) != tc.loaded {
				t.Fatalf("load returned %d, want loaded=%v", res.Ret, tc.loaded)
			}
			pids := map[uint32]bool{uint32(run.pid): true}
			evs := collect(t, s, pids, 1, eventWait)
			evs = append(evs, collect(t, s, pids, 1, 300*time.Millisecond)...) // a duplicate would show here
			if len(evs) != 1 {
				t.Fatalf("got %d events for loader %d, want 1", len(evs), run.pid)
			}
			ev := evs[0]
			p := ev.Program
			if !ev.Complete() || p.Truncated {
				t.Fatalf("incomplete capture: missing=%v readErrors=%d hashMismatch=%v truncated=%v", ev.Missing, ev.ReadErrors, ev.HashMismatch, p.Truncated)
			}
			if !bytes.Equal(p.Insns, tc.insns) {
				t.Fatalf("captured %d bytes differ from the %d submitted", len(p.Insns), len(tc.insns))
			}
			if p.InsnCnt != uint32(len(tc.insns)/8) || p.Name != tc.prog || p.Type != 5 || p.License != "GPL" {
				t.Errorf("metadata: cnt=%d name=%q type=%d license=%q", p.InsnCnt, p.Name, p.Type, p.License)
			}
			l := p.Loader
			if l.PID != uint32(res.PID) || l.TID != uint32(res.TID) || l.UID != uid || l.Comm != "bpfload" ||
				l.Exe != buildLoader(t) || l.PPID != uint32(os.Getpid()) || l.CgroupID == 0 {
				t.Errorf("loader = %+v, want pid %d tid %d uid %d ppid %d exe %s", l, res.PID, res.TID, uid, os.Getpid(), buildLoader(t))
			}
			if tc.loaded {
				if ev.Outcome.Result != ResultLoaded || ev.Outcome.FD != res.Ret || p.Kernel == nil || p.Kernel.ID != res.ID {
					t.Errorf("outcome %+v kernel %+v, loader saw fd %d id %d", ev.Outcome, p.Kernel, res.Ret, res.ID)
				}
			} else if ev.Outcome.Result != ResultFailed || ev.Outcome.Errno != -res.Ret {
				t.Errorf("outcome %+v, loader saw %d", ev.Outcome, res.Ret)
			}
			want := tc.helpers
			if want == nil {
				want = map[uint32]uint32{}
			}
			if fmt.Sprint(ev.Helpers) != fmt.Sprint(want) {
				t.Errorf("helpers %v, want %v", ev.Helpers, want)
			}
			if ev.Verdict != VerdictAllow || ev.Action != ActionNone {
				t.Errorf("verdict %v action %v with no rules", ev.Verdict, ev.Action)
			}
		})
	}
}

// testRules match only this test's loaders (by name prefix), never other
// engineers' programs on the same host.
const testRules = `
- id: e2e-block
  description: two pid_tgid calls under a test name
  severity: high
  action: block
  match:
    prog_name: {prefix: [se2eblk_]}
    helpers: {bpf_get_current_pid_tgid: 2}
- id: e2e-exact
  description: an exact test name
  severity: high
  action: block
  match:
    prog_name: {exact: [se2eexact]}
- id: e2e-only
  description: the seed's helpers_only semantics
  severity: high
  action: block
  match:
    prog_name: {prefix: [se2eonly_]}
    helpers: {bpf_get_current_pid_tgid: 1}
    helpers_only: true
`

func compiledTestRules(t testing.TB) *kernel.Rules {
	t.Helper()
	set, err := rules.Parse("e2e.yaml", []byte(testRules))
	if err != nil {
		t.Fatal(err)
	}
	c := rules.Compile(set)
	if len(c.Slots) != 3 {
		t.Fatalf("kernel table slots %v: %+v", c.Slots, c.Placements)
	}
	return c.Kernel()
}

func TestVerdictsAndEnforcement(t *testing.T) {
	for _, hw := range hookWalks {
		t.Run(hookWalkName(hw.hook, hw.walk), func(t *testing.T) { testVerdictsAndEnforcement(t, hw.hook, hw.walk) })
	}
}

func testVerdictsAndEnforcement(t *testing.T, hook Hook, walk Walk) {
	s := startSensor(t, Config{Hook: hook, Walk: walk, Mode: ModeEnforce, Rules: compiledTestRules(t)})
	twice := helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)
	cases := []struct {
		name    string
		prog    string
		insns   []byte
		verdict Verdict
		rule    string
		killed  bool
	}{
		{"a matching name and helper count is blocked and its loader killed", "se2eblk_x", twice, VerdictBlock, "e2e-block", true},
		{"the same helpers under another name are allowed", "se2e_benign", twice, VerdictAllow, "", false},
		{"a matching name with too few helper calls is allowed", "se2eblk_y", helperProg(fnGetCurrentPidTgd), VerdictAllow, "", false},
		{"an exact name is blocked", "se2eexact", twice, VerdictBlock, "e2e-exact", true},
		{"an exact name does not match a longer name", "se2eexact2", twice, VerdictAllow, "", false},
		{"helpers_only blocks a program using only the listed helpers", "se2eonly_a", twice, VerdictBlock, "e2e-only", true},
		{"helpers_only spares a program using one more helper", "se2eonly_b", helperProg(fnGetCurrentPidTgd, fnKtimeGetNs), VerdictAllow, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := runLoader(t, "-insns", writeInsns(t, tc.insns), "-name", tc.prog)
			if run.killed != tc.killed {
				t.Fatalf("loader killed=%v, want %v (results %v)", run.killed, tc.killed, run.results)
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.Verdict != tc.verdict || ev.RuleID != tc.rule {
				t.Errorf("verdict %v rule %q, want %v rule %q", ev.Verdict, ev.RuleID, tc.verdict, tc.rule)
			}
			if tc.killed {
				if ev.Action != ActionKilled || ev.Outcome.Result != ResultKilled {
					t.Errorf("action %v outcome %+v, want killed", ev.Action, ev.Outcome)
				}
				if len(run.results) != 0 {
					t.Errorf("killed loader printed %v: it returned to user space", run.results)
				}
			} else if len(run.results) != 1 || run.results[0].Ret < 0 {
				t.Errorf("benign load failed: %v", run.results)
			}
		})
	}
	if left := progsNamed(t, "se2eblk_x"); len(left) != 0 {
		t.Errorf("blocked programs still loaded: %v", left)
	}
	for _, name := range []string{"se2eonly_a", "se2eexact"} {
		if left := progsNamed(t, name); len(left) != 0 {
			t.Errorf("blocked programs still loaded: %v", left)
		}
	}
}

func TestMonitorModeReportsBlockWithoutKilling(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, Rules: compiledTestRules(t)})
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_mon")
	if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
		t.Fatalf("monitor mode disturbed the loader: killed=%v %v", run.killed, run.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 || evs[0].Verdict != VerdictBlock || evs[0].Action != ActionMonitor || evs[0].Outcome.Result != ResultLoaded {
		t.Fatalf("events %+v", evs)
	}
}

func TestFloodIsCountedExactly(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 loads")
	}
	// The events are taken only after the 10,000 loads: the ring must hold
	// the whole burst (~2 KB of records per small load; the default 4 MiB
	// ring holds ~2,000 of them, and a bigger burst that finds the agent
	// starved of CPU is counted, not silent: TestLossesAreCountedNeverSilent).
	s := startSensor(t, Config{Mode: ModeMonitor, RingBufferSize: 64 << 20})
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	const procs, per = 4, 2500
	rssIdle := rssKiB(t)
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	start := time.Now()
	var wg sync.WaitGroup
	runs := make([]loaderRun, procs)
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runs[i] = runLoader(t, "-gen", "16", "-name", "se2e_flood", "-count", fmt.Sprint(per))
		}()
	}
	wg.Wait()
	pids := map[uint32]bool{}
	for _, r := range runs {
		pids[uint32(r.pid)] = true
		if len(r.results) != per {
			t.Fatalf("loader %d did %d loads", r.pid, len(r.results))
		}
	}
	// A signal interrupting verification fails an attempt with EAGAIN and
	// the loader retries it: such attempts are events too, so collect
	// until the loads' count of non-interrupted events arrived.
	var evs []*Event
	interrupted := map[uint64]bool{} // load ids of EAGAIN attempts
	for deadline := time.Now().Add(60 * time.Second); len(evs)-len(interrupted) < procs*per && time.Now().Before(deadline); {
		for _, ev := range collectAttempts(t, s, pids, 1, time.Until(deadline)) {
			evs = append(evs, ev)
			if interruptedAttempt(ev) {
				interrupted[ev.LoadID] = true
			}
		}
	}
	elapsed := time.Since(start)
	var ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
	t.Logf("flood: %d loads in %v = %.0f loads/s; agent (test process) CPU %v (%.0f%% of one core), RSS idle %d KiB, after flood %d KiB",
		procs*per, elapsed.Round(time.Millisecond), float64(procs*per)/elapsed.Seconds(), cpu.Round(time.Millisecond),
		100*cpu.Seconds()/elapsed.Seconds(), rssIdle, rssKiB(t))
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	// Exactly one complete event per load of this test's loaders, matched
	// by the prog id each loader printed: no load missing, none twice.
	// (Loss counters are host-wide, so they only explain a failure.)
	want := map[uint32]uint32{} // prog id -> loader pid
	for _, r := range runs {
		for _, res := range r.results {
			if res.Ret < 0 || res.ID == 0 {
				t.Fatalf("loader %d: load failed %+v", r.pid, res)
			}
			want[res.ID] = uint32(r.pid)
		}
	}
	complete, retried := 0, 0
	for _, ev := range evs {
		if ev.Complete() {
			complete++
		}
		if ev.Retry > 0 {
			// The retry names the interrupted attempt it repeats.
			retried++
			if !interrupted[ev.RetryOf] {
				t.Errorf("load %d is marked a retry of %d, which was not an interrupted attempt of this test", ev.LoadID, ev.RetryOf)
			}
		}
		if interrupted[ev.LoadID] {
			continue
		}
		if ev.Program.Kernel == nil {
			t.Errorf("event of loader %d without a prog id (missing %v)", ev.Program.Loader.PID, ev.Missing)
			continue
		}
		id := uint32(ev.Program.Kernel.ID)
		if pid, ok := want[id]; !ok || pid != ev.Program.Loader.PID {
			t.Errorf("event for prog %d of loader %d: not a load of this test, or reported twice", id, ev.Program.Loader.PID)
		}
		delete(want, id)
	}
	t.Logf("%d loads: %d events (%d complete, %d attempts interrupted with EAGAIN and %d retries marked); host-wide losses during the flood %d (%v)",
		procs*per, len(evs), complete, len(interrupted), retried, after.Total()-before.Total(), after)
	if len(evs) != procs*per+len(interrupted) || complete != len(evs) || len(want) != 0 {
		t.Fatalf("%d loads but %d events (%d interrupted attempts), %d complete, %d loads without an event", procs*per, len(evs), len(interrupted), complete, len(want))
	}
	// Each interrupted attempt is followed by its retry (same thread and
	// program), which says so.
	if retried != len(interrupted) {
		t.Errorf("%d attempts interrupted with EAGAIN but %d events marked as retries", len(interrupted), retried)
	}
}

// A ring buffer far too small for the loads, and a reader held back (the
// test reads no event until the loader is done, and the Events channel
// holds one): the ring overflows for certain, every load is still reported
// (by pid, even when its header was lost), incomplete ones say what is
// missing, and the kernel counts each record it could not reserve.
func TestLossesAreCountedNeverSilent(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, RingBufferSize: 64 << 10, EventBuffer: 1, ExpireAfter: 2 * time.Second})
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	const loads = 200
	run := runLoader(t, "-gen", "20000", "-name", "se2e_lossy", "-count", fmt.Sprint(loads))
	if len(run.results) != loads {
		t.Fatalf("loader did %d loads", len(run.results))
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, loads, eventWait)
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	reserve := func(l Losses) uint64 {
		return l["header_reserve"] + l["chunk_reserve"] + l["verdict_reserve"] + l["exit_reserve"]
	}
	lost := reserve(after) - reserve(before)
	incomplete, complete := 0, 0
	for _, ev := range evs {
		if ev.Complete() {
			complete++
			if ev.Program.InsnCnt != 20000 || len(ev.Program.Insns) != 20000*8 {
				t.Errorf("complete event with %d bytes", len(ev.Program.Insns))
			}
		} else {
			incomplete++
		}
	}
	t.Logf("%d loads of 20,000 insns through a 64 KiB ring: %d events (%d complete, %d incomplete), %d records lost (%v)",
		loads, len(evs), complete, incomplete, lost, after)
	// A load is invisible only when its header, verdict and exit records
	// were all dropped; each of those drops is counted.
	d := func(k string) uint64 { return after[k] - before[k] }
	whollyLost := min(d("header_reserve"), d("verdict_reserve"), d("exit_reserve"))
	if uint64(len(evs))+whollyLost < loads {
		t.Errorf("%d events for %d loads, at most %d wholly lost", len(evs), loads, whollyLost)
	}
	if lost == 0 || incomplete == 0 {
		t.Errorf("%d incomplete events and %d counted losses: the held-back ring must have overflowed", incomplete, lost)
	}
}

// Enforcement does not depend on ring room: with the ring full (tiny, its
// reader held back) a load a rule blocks is still killed and never loads,
// while the ring drops records of that very load.
func TestEnforcementDoesNotNeedRingRoom(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 64 << 10, EventBuffer: 1, ExpireAfter: 2 * time.Second})
	fill := runLoader(t, "-gen", "20000", "-name", "se2e_fill", "-count", "10")
	if fill.killed || len(fill.results) != 10 {
		t.Fatalf("filler: killed=%v results %v", fill.killed, fill.results)
	}
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	blocked := append(helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)[:16], genInsns(20000)...)
	run := runLoader(t, "-insns", writeInsns(t, blocked), "-name", "se2eblk_full")
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	dropped := after["header_reserve"] + after["chunk_reserve"] - before["header_reserve"] - before["chunk_reserve"]
	t.Logf("blocked load with the ring full: killed=%v, records dropped meanwhile %d (%v)", run.killed, dropped, after)
	if dropped == 0 {
		t.Fatalf("no record dropped during the blocked load: the ring was not full")
	}
	if !run.killed || len(run.results) != 0 {
		t.Errorf("loader killed=%v results %v: a full ring let a blocked load through", run.killed, run.results)
	}
	if left := progsNamed(t, "se2eblk_full"); len(left) != 0 {
		t.Errorf("blocked programs loaded: %v", left)
	}
}

// The sensor's own loads are reported but never blocked, even when a block
// rule matches them.
func TestOwnLoadsAreSparedInEnforceMode(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	if err := rawLoad(helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd), "se2eblk_self"); err != nil {
		t.Fatalf("own load failed: %v", err)
	}
	ev := ownLoad(t, s, "se2eblk_self", eventWait, func(e *Event) {
		if e.Verdict != VerdictBlock || e.Action != ActionSelf {
			t.Errorf("own load attempt: verdict %s action %s, want block and spared", e.Verdict, e.Action)
		}
	})
	if ev == nil {
		t.Fatal("no event for the own load")
	}
	if ev.Verdict != VerdictBlock || ev.Action != ActionSelf || ev.Outcome.Result != ResultLoaded {
		t.Fatalf("own load: verdict %s action %s outcome %+v, want a block verdict, spared and loaded", ev.Verdict, ev.Action, ev.Outcome)
	}
}

// Attach metadata is captured at sys_enter even when the kernel then
// refuses the program (fentry is EPERM on this host): the attach BTF id is
// named from the kernel's BTF.
func TestAttachTargetIsNamedFromKernelBTF(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if err := spec.TypeByName("security_bpf", &fn); err != nil {
		t.Fatal(err)
	}
	id, err := spec.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	const tracing, fentry, sleepable = 26, 24, 1 << 4
	run := runLoader(t, "-gen", "2", "-name", "se2e_fentry", "-type", fmt.Sprint(tracing),
		"-attach-type", fmt.Sprint(fentry), "-attach-btf-id", fmt.Sprint(id), "-flags", fmt.Sprint(sleepable))
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	p := evs[0].Program
	if p.Type != tracing || p.ExpectedAttachType != fentry || p.AttachBTFID != uint32(id) || p.AttachTo != "security_bpf" || p.Flags != sleepable {
		t.Errorf("type %d attach type %d btf id %d (%q) flags %#x; want %d %d %d security_bpf %#x",
			p.Type, p.ExpectedAttachType, p.AttachBTFID, p.AttachTo, p.Flags, tracing, fentry, id, sleepable)
	}
	t.Logf("outcome %+v", evs[0].Outcome)
}
