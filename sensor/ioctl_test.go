package sensor

import (
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// In monitor mode the only program on ioctl is the exit program: it reads
// the command from the caller's registers and reports a
// PERF_EVENT_IOC_SET_BPF whole (target, program, result, errno, the attach
// table's verdict). Enforce mode attaches the entry program too, which
// kills a blocked attach before it happens (or marks it for the
// lsm/file_ioctl gate, attached with it, to refuse), and monitor mode
// detaches them again. A command word with bits above 32 set (which the kernel drops) is
// seen as the same command.
func TestIoctlAttachIsReportedByTheExitAloneInMonitorMode(t *testing.T) {
	testutils.SkipOnOldKernel(t, "5.15", "the exit program reads the caller's registers with bpf_task_pt_regs (5.10 keeps the entry program always)")
	s := startSensor(t, Config{Mode: ModeMonitor, IoctlHook: IoctlHookAlways})
	if s.AttachCoverage() != "all" {
		t.Fatalf("attach monitoring: %s", s.AttachCoverage())
	}
	if n := len(s.armedLinks()); n != 0 {
		t.Fatalf("monitor mode: %d ioctl entry/gate programs attached, want 0", n)
	}
	tp := "syscalls/sys_enter_getdents64"
	ioctlArgs := []string{"-builtin", "tracepoint", "-tracepoint", tp, "-ioctl"}
	// the attach itself (a library's feature probe before it has no perf event)
	theAttach := func(r attachRun) func([]*AttachEvent) *AttachEvent {
		return func(evs []*AttachEvent) *AttachEvent {
			for _, ev := range evs {
				if ev.Op == OpPerfSetBPF && ev.Result != AttachUnknown && (r.ProgID == 0 || ev.ProgID == r.ProgID) {
					return ev
				}
			}
			return nil
		}
	}
	attach := func(t *testing.T, args ...string) (attachRun, *AttachEvent) {
		t.Helper()
		r := runAttacher(t, args...)
		find := theAttach(r)
		evs := collectAttaches(t, s, r.PID, 20*time.Second, func(evs []*AttachEvent) bool { return find(evs) != nil })
		ev := find(evs)
		if ev == nil {
			t.Fatalf("no %s event among %d (attacher %+v)", OpPerfSetBPF, len(evs), r)
		}
		return r, ev
	}
	wantDone := func(t *testing.T, r attachRun, ev *AttachEvent) {
		t.Helper()
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		if ev.Result != AttachDone || ev.Target.PerfType != 2 || !ev.Target.PerfFound || ev.Target.PerfConfig != tracepointID(t, tp) || ev.ProgID != r.ProgID {
			t.Errorf("event result %s prog %d target %+v; want attached, prog %d, perf tracepoint %d", ev.Result, ev.ProgID, ev.Target, r.ProgID, tracepointID(t, tp))
		}
	}
	t.Run("attached", func(t *testing.T) {
		r, ev := attach(t, ioctlArgs...)
		wantDone(t, r, ev)
		if ev.Verdict != VerdictAllow {
			t.Errorf("verdict %s, want allow", ev.Verdict)
		}
	})
	t.Run("command word with high bits", func(t *testing.T) {
		r, ev := attach(t, append(ioctlArgs, "-ioctl-high-bits")...)
		wantDone(t, r, ev)
	})
	failures := []struct {
		name  string
		args  []string
		errno syscall.Errno
	}{
		{"a program fd closed before the ioctl", append(ioctlArgs, "-close-prog-first"), syscall.EBADF},
		{"an ioctl on a file that is no perf event", []string{"-builtin", "tracepoint", "-tracepoint", "x/y", "-ioctl", "-tracepoint-id", "999999999"}, syscall.ENOTTY},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			r := runAttacher(t, f.args...)
			find := theAttach(attachRun{})
			evs := collectAttaches(t, s, r.PID, 20*time.Second, func(evs []*AttachEvent) bool { return find(evs) != nil })
			ev := find(evs)
			if ev == nil {
				t.Fatalf("no %s event among %d (attacher %+v)", OpPerfSetBPF, len(evs), r)
			}
			if ev.Result != AttachFailed || syscall.Errno(ev.Errno) != f.errno {
				t.Errorf("result %s errno %d, want failed with %d (%v); attacher %+v", ev.Result, ev.Errno, f.errno, f.errno, r)
			}
		})
	}
	if err := s.SetAttachBlocks([]AttachBlock{{Kind: KeyTracepointID, Value: tracepointID(t, tp), Rule: 0}}, []string{"no-getdents-attach-ioctl"}); err != nil {
		t.Fatal(err)
	}
	t.Run("blocked target in monitor mode", func(t *testing.T) {
		r, ev := attach(t, ioctlArgs...)
		wantDone(t, r, ev)
		if ev.Verdict != VerdictBlock || ev.Action != ActionMonitor || ev.RuleID != "no-getdents-attach-ioctl" {
			t.Errorf("verdict %s action %s rule %q, want block, monitor, no-getdents-attach-ioctl", ev.Verdict, ev.Action, ev.RuleID)
		}
	})
	if err := s.SetMode(ModeEnforce); err != nil {
		t.Fatal(err)
	}
	want := 1 // the entry program
	if s.Enforcer() == EnforcerDeny {
		want++ // and the lsm/file_ioctl gate
	}
	if n := len(s.armedLinks()); n != want {
		t.Fatalf("enforce mode: %d ioctl programs armed, want %d", n, want)
	}
	for _, args := range [][]string{ioctlArgs, append(ioctlArgs, "-ioctl-high-bits")} {
		t.Run("blocked target in enforce mode "+args[len(args)-1], func(t *testing.T) {
			r := runAttacher(t, args...)
			find := func(evs []*AttachEvent) *AttachEvent {
				for _, ev := range evs {
					if ev.Op == OpPerfSetBPF && ev.Target.PerfFound && ev.Result != AttachUnknown {
						return ev
					}
				}
				return nil
			}
			evs := collectAttaches(t, s, r.PID, 20*time.Second, func(evs []*AttachEvent) bool { return find(evs) != nil })
			ev := find(evs)
			if ev == nil {
				t.Fatalf("no %s event among %d (attacher %+v)", OpPerfSetBPF, len(evs), r)
			}
			if ev.Verdict != VerdictBlock {
				t.Errorf("verdict %s, want block", ev.Verdict)
			}
			switch s.Enforcer() {
			case EnforcerDeny:
				if r.killed || ev.Action != ActionDenied || ev.Result != AttachFailed || ev.Errno != int(syscall.EPERM) {
					t.Errorf("deny: attacher %+v, event action %s result %s errno %d; want EPERM, denied", r, ev.Action, ev.Result, ev.Errno)
				}
			default:
				if !r.killed || ev.Action != ActionKilled || ev.Result != AttachKilled {
					t.Errorf("kill: attacher %+v, event action %s result %s; want killed", r, ev.Action, ev.Result)
				}
			}
		})
	}
	if err := s.SetMode(ModeMonitor); err != nil {
		t.Fatal(err)
	}
	if n := len(s.armedLinks()); n != 0 {
		t.Fatalf("back in monitor mode: %d ioctl entry/gate programs attached, want 0", n)
	}
}
