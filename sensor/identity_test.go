package sensor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

const fnProbeWriteUser = 36

// The start time read from /proc is this process's, parsed after a comm
// that may hold ')' and spaces.
func TestProcStartTicksOfThisProcess(t *testing.T) {
	ticks, err := procStartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ticks == 0 {
		t.Fatal("start tick 0")
	}
	if _, err := procStartTicks(-1); err == nil {
		t.Fatal("no error for pid -1")
	}
}

// The sensor learns the agent's start time in nanoseconds from the kernel,
// and it agrees with /proc's tick.
func TestSensorLearnsTheAgentsStartInNanoseconds(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	var c sentrySentryConfig
	if err := s.coll.Maps[sentryMapConfig].Lookup(uint32(0), &c); err != nil {
		t.Fatal(err)
	}
	ticks, err := procStartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if c.SelfTgid != uint32(os.Getpid()) || c.SelfStartNs == 0 || c.SelfStartNs/nsecPerTick != ticks || s.self.StartNs != c.SelfStartNs {
		t.Fatalf("config %+v, agent %+v, /proc tick %d", c, s.self, ticks)
	}
	if tamper, err := s.CheckIntegrity(); err != nil || len(tamper) != 0 {
		t.Fatalf("the learnt start reads back as tampering: %+v %v", tamper, err)
	}
}

// A loader that renames itself ebpf-sentry (prctl PR_SET_NAME, the escape
// of the old `not: loader: comm: [ebpf-sentry]` exceptions) and loads a
// bpf_probe_write_user program is still killed under the default rules.
func TestRenamedLoaderIsNotTrusted(t *testing.T) {
	c := rules.Compile(rules.MustDefaults())
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: c.Kernel()})
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnProbeWriteUser)), "-name", "se2e_pwu", "-comm", "ebpf-sentry")
	wantAction := ActionKilled
	if s.Hook().IsLSM() {
		wantAction = ActionDenied
		if run.killed || len(run.results) != 1 || run.results[0].Ret != -1 {
			t.Fatalf("hook %s: a loader renamed ebpf-sentry loading bpf_probe_write_user was not denied: killed=%v %+v", s.Hook(), run.killed, run.results)
		}
	} else if !run.killed {
		t.Fatalf("a loader renamed ebpf-sentry loading bpf_probe_write_user was not killed: %+v", run.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if ev.Program.Loader.Comm != "ebpf-sentry" || ev.Verdict != VerdictBlock || ev.Action != wantAction || ev.RuleID != "probe-write-user" {
		t.Fatalf("comm %q verdict %s action %s rule %q", ev.Program.Loader.Comm, ev.Verdict, ev.Action, ev.RuleID)
	}
}

// setTidSrc runs a command as a child whose pid is chosen with clone3's
// set_tid, the way an attacker gets a dead agent's pid; it exits 3 when the
// pid is taken, 200+signal when the child was killed, else with the child's
// status.
const setTidSrc = `
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

/* "agent": wait for a line on stdin, make one bpf() call (whose exit the
 * sensor learns the start time from), say so on stdout, then wait for EOF. */
static int agent(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return 2;
	syscall(SYS_bpf, -1, NULL, 0);
	printf("called\n");
	fflush(stdout);
	while (fgets(buf, sizeof(buf), stdin))
		;
	return 0;
}

/* "getfd ID FLAGS": BPF_MAP_GET_FD_BY_ID; exits 0 with an fd, 1 without. */
static int getfd(const char *id, const char *flags)
{
	uint32_t attr[4] = {(uint32_t)atoi(id), 0, (uint32_t)atoi(flags), 0};
	long fd = syscall(SYS_bpf, 14 /* BPF_MAP_GET_FD_BY_ID */, attr, sizeof(attr));
	if (fd < 0) {
		perror("BPF_MAP_GET_FD_BY_ID");
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "agent"))
		return agent();
	if (argc == 4 && !strcmp(argv[1], "getfd"))
		return getfd(argv[2], argv[3]);
	if (argc < 3)
		return 2;
	pid_t want = atoi(argv[1]);
	struct clone_args a;
	memset(&a, 0, sizeof(a));
	a.exit_signal = SIGCHLD;
	a.set_tid = (uint64_t)(uintptr_t)&want;
	a.set_tid_size = 1;
	long pid = syscall(SYS_clone3, &a, sizeof(a));
	if (pid < 0) {
		perror("clone3");
		return errno == EEXIST ? 3 : 2;
	}
	if (pid == 0) {
		execv(argv[2], argv + 2);
		_exit(127);
	}
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return 2;
	if (WIFSIGNALED(st))
		return 200 + WTERMSIG(st);
	return WEXITSTATUS(st);
}
`

func buildSetTid(t *testing.T) string {
	t.Helper()
	cc := ""
	for _, name := range []string{"cc", "clang", "clang-19", "gcc"} {
		if p, err := exec.LookPath(name); err == nil {
			cc = p
			break
		}
	}
	if cc == "" {
		testutils.SkipOrFail(t, "no C compiler for the clone3 set_tid helper")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "settid.c")
	if err := os.WriteFile(src, []byte(setTidSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "settid")
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("build the set_tid helper: %v\n%s", err, out)
	}
	return bin
}

// A process that gets a dead agent's pid (clone3 set_tid) is not the
// agent: the kernel compares the start time in nanoseconds too, so its
// blocked load is killed although its tgid is the one in the config. Nothing
// waits between the agent's start and the reuse: a process created within
// the agent's own 10 ms tick (the weakness of comparing /proc ticks) is
// stopped just the same.
func TestDeadAgentsPidIsNotTrusted(t *testing.T) {
	testutils.RequireRoot(t, "clone3 set_tid and the sensor")
	if os.Getenv(kernelEnv) != "" {
		t.Skip("needs a C compiler, which matrix VMs do not have")
	}
	settid := buildSetTid(t)
	loader := buildLoader(t)
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	prog := writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd))
	m := s.coll.Maps[sentryMapConfigStaged]
	for attempt := 0; attempt < 5; attempt++ {
		// The "agent": a process whose tgid goes into the config; the
		// kernel learns its start from its bpf() call; then it dies.
		agent := exec.Command(settid, "agent")
		in, err := agent.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := agent.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		pid := uint32(agent.Process.Pid)
		s.integ.mu.Lock()
		c, err := learnIdentity(m, s.integ.config, pid) // start 0, learnt below
		s.integ.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if c.SelfStartNs != 0 {
			t.Fatalf("start %d learnt before the agent called bpf()", c.SelfStartNs)
		}
		if _, err := in.Write([]byte("go\n")); err != nil {
			t.Fatal(err)
		}
		line := make([]byte, 7)
		if _, err := io.ReadFull(out, line); err != nil || string(line) != "called\n" {
			t.Fatalf("agent: %q %v", line, err)
		}
		if err := m.Lookup(uint32(0), &c); err != nil {
			t.Fatal(err)
		}
		ticks, err := procStartTicks(int(pid))
		if err != nil {
			t.Fatal(err)
		}
		if c.SelfTgid != pid || c.SelfStartNs == 0 || c.SelfStartNs/nsecPerTick != ticks {
			t.Fatalf("learnt identity %+v of agent %d (/proc tick %d)", c, pid, ticks)
		}
		agent.Process.Kill()
		agent.Wait()

		cmd := exec.Command(settid, fmt.Sprint(pid), loader, "-insns", prog, "-name", "se2eblk_stale")
		res, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		switch code {
		case 3: // someone else took the pid meanwhile: try another
			continue
		case 200 + int(syscall.SIGKILL):
			t.Logf("pid %d reused with clone3 set_tid after the agent (start %d ns) died: killed", pid, c.SelfStartNs)
			return
		}
		t.Fatalf("a loader with the dead agent's pid %d was not killed: exit %d\n%s", pid, code, res)
	}
	t.Fatal("5 attempts: the dead agent's pid was always taken before clone3 could have it")
}

// A restarted agent takes over a pinned sensor before it loads anything:
// Close clears the old agent's identity from the pinned config, and after
// takeOver the pinned programs spare the new agent's blocked load (this
// test process: were it not spared, it would be killed).
func TestRestartedAgentTakesOverPinnedSensor(t *testing.T) {
	testutils.RequireRoot(t, "pinning the sensor")
	pin := filepath.Join("/sys/fs/bpf", fmt.Sprintf("sentry-takeover-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(pin) })
	s, err := New(Config{PinPath: pin, Mode: ModeEnforce, Rules: compiledTestRules(t), RingBufferSize: 1 << 20})
	if err != nil {
		t.Fatalf("start pinned sensor: %v", err)
	}
	s.Close()
	m, err := ebpf.LoadPinnedMap(filepath.Join(pin, sentryMapConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var c sentrySentryConfig
	if err := m.Lookup(uint32(0), &c); err != nil {
		t.Fatal(err)
	}
	if c.SelfTgid != 0 || c.Mode != uint32(ModeEnforce) {
		t.Fatalf("pinned config after Close: %+v, want no agent and enforce mode", c)
	}
	// The pinned sensor still enforces on others.
	run := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_tko")
	if !run.killed && !(len(run.results) == 1 && run.results[0].Ret < 0) {
		t.Fatalf("pinned sensor without agent let a blocked load through: %+v", run.results)
	}
	id, err := takeOver(pin, uint32(os.Getpid()), s.log)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Lookup(uint32(0), &c); err != nil {
		t.Fatal(err)
	}
	ticks, err := procStartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The pinned exit hook learnt the start from the takeover's own write.
	if c.SelfTgid != id.TGID || id.TGID != uint32(os.Getpid()) || c.SelfStartNs != id.StartNs || id.StartNs/nsecPerTick != ticks || c.Mode != uint32(ModeEnforce) {
		t.Fatalf("pinned config after takeover: %+v, want %+v (tick %d) in enforce mode", c, id, ticks)
	}
	if err := rawLoad(helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd), "se2eblk_tko2"); err != nil {
		t.Fatalf("the new agent's own load after takeover: %v", err)
	}
}
