package sensor

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// One loader over its capture rate (here 10,000 instructions per hour, so
// that no window ends during the test) has its later loads judged in full
// by the kernel — the blocked name is still blocked — but reported without
// instructions and counted; another loader's load is captured as usual.
func TestLoaderRateLimitSparesOtherLoaders(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, Rules: compiledTestRules(t), LoaderRate: 10000, LoaderWindow: time.Hour})
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	prog := writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd))
	// 4,000 instructions: the first two attempts fit and the later ones do
	// not. An attempt a signal ended in the verifier (EAGAIN, retried by
	// the loader: see collect) was captured like any other and used up
	// rate too, so the count is by attempt.
	flood := runLoader(t, "-gen", "4000", "-count", "4", "-name", "se2e_rate")
	var attempts []*Event
	for loads := 0; loads < 4; {
		evs := collectAttempts(t, s, map[uint32]bool{uint32(flood.pid): true}, 1, eventWait)
		if len(evs) == 0 {
			t.Fatalf("%d loads (%d attempts) of the flooding loader reported", loads, len(attempts))
		}
		attempts = append(attempts, evs[0])
		if !interruptedAttempt(evs[0]) {
			loads++
		}
	}
	for i, ev := range attempts {
		limited := i >= 2
		if ev.RateLimited != limited || (len(ev.Program.Insns) == 0) != limited || len(ev.Missing) != 0 {
			t.Errorf("attempt %d: rate limited %v, %d bytes of instructions, missing %v", i, ev.RateLimited, len(ev.Program.Insns), ev.Missing)
		}
	}
	// Still over its rate, the same kind of loader's blocked program is
	// judged block by the kernel; a second loader is captured.
	over := runLoader(t, "-insns", prog, "-name", "se2eblk_rate", "-count", "1")
	other := runLoader(t, "-gen", "4000", "-name", "se2e_rate2")
	for _, c := range []struct {
		run     loaderRun
		limited bool
		verdict Verdict
	}{{over, false, VerdictBlock}, {other, false, VerdictAllow}} {
		evs := collect(t, s, map[uint32]bool{uint32(c.run.pid): true}, 1, eventWait)
		if len(evs) != 1 || evs[0].RateLimited != c.limited || len(evs[0].Program.Insns) == 0 || evs[0].Verdict != c.verdict {
			t.Fatalf("loader %d: %+v", c.run.pid, evs)
		}
	}
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	// The counter is the sensor's, for every loader on the host: another
	// loader over its rate meanwhile adds to it, so this test's own
	// attempts (flagged one by one above) are what it must hold at least.
	if n, want := after["rate_limited"]-before["rate_limited"], uint64(len(attempts)-2); n < want {
		t.Fatalf("rate_limited losses %d, want at least %d (%d attempts of 4 loads)", n, want, len(attempts))
	}
}

// The unprivileged flood of issue 12 — 300 failing 1M-instruction loads by
// a user without BPF rights — run alongside root's loads of a program the
// rules flag: every root load is judged by the kernel and reported with
// all its instructions (so user space alerts on each), the flood is
// reported load by load without instructions, the agent's memory stays
// within its budget, and the flood's losses are counted by reason. Nothing
// depends on timing: the flood is refused before capture whatever the
// interleaving, and the root loads start once the flood is under way.
func TestUnprivilegedFloodDoesNotBlindTheSentry(t *testing.T) {
	if os.Getenv(kernelEnv) != "" {
		t.Skip("copies the loader to run it as nobody; the VMs run the one on PATH")
	}
	const budget = 64 << 20
	s := startSensor(t, Config{Mode: ModeMonitor, Rules: compiledTestRules(t), MemoryBudget: budget})
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "sentry-trust-flood")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "bpfload")
	src, err := os.Open(buildLoader(t))
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()

	const floodLoads = 300
	flood := exec.Command(bin, "-gen", "1000000", "-count", "300", "-name", "se2eblk_flood")
	flood.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if err := flood.Start(); err != nil {
		t.Fatal(err)
	}
	floodPid := uint32(flood.Process.Pid)
	// The ring buffer (mapped and written through at start) and the test
	// binary are in RSS from the start: the budget bounds the growth.
	rssStart := rssKiB(t)
	rssMax := rssStart
	var floodEvs, rootEvs []*Event
	take := func(ev *Event) {
		if ev.Program.Loader == nil {
			return
		}
		if ev.Program.Loader.PID == floodPid {
			floodEvs = append(floodEvs, ev)
		}
		if r := rssKiB(t); r > rssMax {
			rssMax = r
		}
	}
	// The root loads start once the flood is under way.
	for len(floodEvs) == 0 {
		select {
		case ev := <-s.Events():
			take(ev)
		case <-time.After(15 * time.Second):
			t.Fatal("no event of the flood")
		}
	}
	prog := writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd))
	const rootLoads = 3
	pid, wait := startLoader(t, "-insns", prog, "-name", "se2eblk_root", "-count", "3")
	deadline := time.After(60 * time.Second)
	for len(rootEvs) < rootLoads || len(floodEvs) < floodLoads {
		select {
		case ev := <-s.Events():
			take(ev)
			if ev.Program.Loader != nil && ev.Program.Loader.PID == uint32(pid) {
				rootEvs = append(rootEvs, ev)
			}
		case <-deadline:
			t.Fatalf("after 60 s: %d of %d root events, %d of %d flood events", len(rootEvs), rootLoads, len(floodEvs), floodLoads)
		}
	}
	wait()
	if err := flood.Wait(); err != nil {
		t.Fatalf("flooding loader: %v", err)
	}
	for _, ev := range rootEvs {
		if !ev.Complete() || len(ev.Program.Insns) != len(helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)) ||
			ev.Verdict != VerdictBlock || ev.RuleID != "e2e-block" || ev.Program.Loader.UID != 0 || ev.RateLimited {
			t.Errorf("root load %d: complete %v, %d bytes, verdict %s rule %q uid %d", ev.LoadID, ev.Complete(), len(ev.Program.Insns), ev.Verdict, ev.RuleID, ev.Program.Loader.UID)
		}
	}
	for _, ev := range floodEvs {
		if !ev.Unprivileged || len(ev.Program.Insns) != 0 || ev.Program.InsnCnt != 1000000 || ev.Outcome.Errno != int(syscall.EPERM) ||
			len(ev.Missing) != 0 || ev.RateLimited {
			t.Fatalf("flood load %d: unprivileged %v, %d bytes, insn_cnt %d, errno %d", ev.LoadID, ev.Unprivileged, len(ev.Program.Insns), ev.Program.InsnCnt, ev.Outcome.Errno)
		}
	}
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	diff := map[string]uint64{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			diff[k] = d
		}
	}
	// Nothing of the flood was lost: every record of every one of this
	// test's loads arrived (no Missing, checked per event above; the root
	// loads complete, none rate limited). The loss counters are the
	// sensor's, for every loader on the host, so they are only shown (below).
	if (rssMax-rssStart)*1024 > budget {
		t.Errorf("RSS grew from %d to %d KiB during the flood, budget %d MiB", rssStart, rssMax, budget>>20)
	}
	t.Logf("%d flood loads and %d root loads reported; RSS %d KiB at the start, peak %d KiB; losses during the flood %v", len(floodEvs), len(rootEvs), rssStart, rssMax, diff)
}
