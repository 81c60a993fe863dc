package loaderrun

import (
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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
