package loaderrun

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
)

// A BPF_PROG_TEST_RUN of a syscall program is reported with its caller,
// the program's id, tag and name, its return and a window that contains the
// load time of a program loaded during it; a run of another program type
// is not bracketed.
func TestBracketReportsASyscallProgramRun(t *testing.T) {
	testutils.RequireRoot(t, "attaching the bpf() tracepoints")
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	runs := make(chan *Run, 4)
	go func() {
		for {
			r, err := b.Read()
			if err != nil {
				close(runs)
				return
			}
			if r.PID == uint32(os.Getpid()) { // other processes on the host run syscall programs too
				runs <- r
			}
		}
	}()

	filter, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "inkernel_skb", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer filter.Close()
	if _, err := filter.Run(&ebpf.RunOptions{Data: make([]byte, 64)}); err != nil {
		t.Fatalf("run the socket filter: %v", err)
	}

	sys, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "inkernel_sys", Type: ebpf.Syscall, License: "GPL",
		Flags: unix.BPF_F_SLEEPABLE, Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 7), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close()
	info, err := sys.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if ret, err := sys.Run(&ebpf.RunOptions{Context: make([]byte, 8)}); err != nil || ret != 7 {
		t.Fatalf("run the syscall program: %d, %v", ret, err)
	}
	select {
	case r := <-runs:
		if r.PID != uint32(os.Getpid()) || r.ProgID != uint32(id) || r.ProgName != "inkernel_sys" || r.ProgTag != info.Tag || r.Ret != 0 || r.Stopped {
			t.Fatalf("bracket %+v, want pid %d, prog %d %q tag %s, ret 0, not stopped", r, os.Getpid(), id, "inkernel_sys", info.Tag)
		}
		if r.ExitNs < r.EnterNs {
			t.Errorf("window [%d, %d] is reversed", r.EnterNs, r.ExitNs)
		}
		// The filter was loaded before the window, the run program too.
		in, err := inventory.LoadedBetween(r.EnterNs, r.ExitNs)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range in {
			if x == uint32(id) {
				t.Errorf("the syscall program, loaded before its run, is in the run's window %v", in)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no bracket for the syscall program's run")
	}
	select {
	case r := <-runs:
		t.Fatalf("a second bracket %+v: only the syscall program's run is bracketed", r)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestParseRefusesAShortRecord(t *testing.T) {
	if _, err := Parse(make([]byte, 10)); err == nil {
		t.Fatal("a 10-byte record parsed")
	}
}

// childEnv makes the test binary a child that runs one syscall program
// with BPF_PROG_TEST_RUN and exits (TestMain).
const childEnv = "EBPF_SENTRY_LOADERRUN_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childRun())
	}
	os.Exit(m.Run())
}

func childRun() int {
	sys, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "finish_child", Type: ebpf.Syscall, License: "GPL",
		Flags: unix.BPF_F_SLEEPABLE, Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if _, err := sys.Run(&ebpf.RunOptions{Context: make([]byte, 8)}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	return 0
}

// startChild starts the test binary as a child that runs a syscall
// program; it is killed at the test's end if still there.
func startChild(t *testing.T) *exec.Cmd {
	t.Helper()
	c := exec.Command(os.Args[0], "-test.run=^$")
	c.Env = append(os.Environ(), childEnv+"=1")
	c.Stderr = os.Stderr
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	return c
}

// procState is the state letter of /proc/PID/stat ("T" when stopped),
// "" once the process has exited.
func procState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return string(b[i+2])
	}
	return ""
}

// With Stop, a caller is held stopped at its run's exit until whoever
// reads resumes it. Finish stops bracketing (a later run is not stopped)
// and hands over the runs recorded before it, then ErrFlushed: an agent
// that goes away judges and resumes every caller it stopped instead of
// leaving it stopped behind it. No clock decides anything here: the child
// stays stopped until the test resumes it.
func TestFinishHandsOverStoppedCallersAndStopsNoMore(t *testing.T) {
	testutils.RequireRoot(t, "attaching the bpf() tracepoints")
	b, err := New(Options{Self: uint32(os.Getpid()), Stop: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	first := startChild(t)
	deadline := time.Now().Add(2 * time.Minute)
	for procState(first.Process.Pid) != "T" {
		if procState(first.Process.Pid) == "" || time.Now().After(deadline) {
			t.Fatalf("the child's syscall program run was not stopped (state %q)", procState(first.Process.Pid))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := b.Finish(); err != nil {
		t.Fatal(err)
	}
	var handed *Run
	for {
		r, err := b.Read()
		if errors.Is(err, ringbuf.ErrFlushed) {
			break
		}
		if err != nil {
			t.Fatalf("read after Finish: %v", err)
		}
		if r.PID == uint32(first.Process.Pid) {
			handed = r
		}
	}
	if handed == nil || !handed.Stopped || handed.ProgName != "finish_child" {
		t.Fatalf("after Finish the stopped caller's run is %+v, want it handed over, stopped", handed)
	}

	// Bracketing is off: a second child runs to its end unstopped.
	second := startChild(t)
	exited := make(chan error, 1)
	go func() { exited <- second.Wait() }()
	for done := false; !done; {
		select {
		case err := <-exited:
			if err != nil {
				t.Fatalf("second child: %v", err)
			}
			done = true
		case <-time.After(5 * time.Millisecond):
			if procState(second.Process.Pid) == "T" {
				t.Fatal("a run after Finish stopped its caller")
			}
		}
	}

	if err := first.Process.Signal(unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first child after SIGCONT: %v", err)
	}
}
