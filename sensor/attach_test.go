package sensor

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	attacherOnce sync.Once
	attacherPath string
	attacherErr  error
)

// buildAttacher builds internal/cmd/bpfattach (in a matrix VM: bpfattach
// on PATH, put there by vmrun -helpers).
func buildAttacher(t testing.TB) string {
	t.Helper()
	attacherOnce.Do(func() {
		if os.Getenv(kernelEnv) != "" {
			attacherPath, attacherErr = exec.LookPath("bpfattach")
			return
		}
		dir, err := os.MkdirTemp("", "sentry-attach")
		if err != nil {
			attacherErr = err
			return
		}
		attacherPath = filepath.Join(dir, "bpfattach")
		if out, err := exec.Command("go", "build", "-o", attacherPath, "../internal/cmd/bpfattach").CombinedOutput(); err != nil {
			attacherErr = errors.Join(err, errors.New(string(out)))
		}
	})
	if attacherErr != nil {
		t.Fatal(attacherErr)
	}
	return attacherPath
}

type attachRun struct {
	PID       int    `json:"pid"`
	ProgID    uint32 `json:"prog_id"`
	LinkID    uint32 `json:"link_id"`
	NewProgID uint32 `json:"new_prog_id"`
	Ifindex   int    `json:"ifindex"`
	MapID     uint32 `json:"map_id"`
	NotSupp   bool   `json:"not_supported"`
	Errno     int    `json:"errno"`
	Error     string `json:"error"`
	killed    bool
}

func runAttacher(t testing.TB, args ...string) attachRun {
	t.Helper()
	cmd := exec.Command(buildAttacher(t), args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return attachRun{killed: true, PID: cmd.Process.Pid}
		}
	}
	var r attachRun
	if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
		t.Fatalf("bpfattach %v: %v (%v)\nstdout: %s\nstderr: %s", args, jerr, err, out.String(), stderr.String())
	}
	return r
}

// collectAttaches gathers attach events of pid until done holds or timeout.
func collectAttaches(t testing.TB, s *Sensor, pid int, timeout time.Duration, done func([]*AttachEvent) bool) []*AttachEvent {
	t.Helper()
	var out []*AttachEvent
	deadline := time.After(timeout)
	for !done(out) {
		select {
		case ev, ok := <-s.Attaches():
			if !ok {
				return out
			}
			if int(ev.Caller.PID) == pid {
				out = append(out, ev)
			}
		case <-s.Events():
		case <-deadline:
			return out
		}
	}
	return out
}

func tracepointID(t testing.TB, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/sys/kernel/tracing/events/" + name + "/id")
	if err != nil {
		t.Fatalf("tracepoint %s: %v", name, err)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// A tracepoint attach through a perf link and through the older ioctl, and
// a raw tracepoint (then a cgroup attach: testAttachBlocks), are each reported with the program, the target and the
// result; with the target in the attach table they are blocked: killed at
// entry on the syscall hooks, refused with EPERM where the kernel has the
// BPF LSM (the program stays loaded, unused).
func TestAttachIsReportedAndBlockedByTarget(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce})
	if s.AttachCoverage() != "all" {
		t.Fatalf("attach monitoring: %s", s.AttachCoverage())
	}
	tp := "syscalls/sys_enter_getdents64"
	ways := []struct {
		name string
		args []string
		op   AttachOp
	}{
		{"perf link", []string{"-builtin", "tracepoint", "-tracepoint", tp}, OpLinkCreate},
		{"perf ioctl", []string{"-builtin", "tracepoint", "-tracepoint", tp, "-ioctl"}, OpPerfSetBPF},
		{"raw tracepoint", []string{"-builtin", "raw_tracepoint", "-raw-tp", "sys_enter"}, OpRawTPOpen},
	}
	find := func(evs []*AttachEvent, op AttachOp, progID uint32) *AttachEvent {
		for _, ev := range evs {
			if ev.Op == op && (progID == 0 || ev.ProgID == progID) && ev.Result != AttachUnknown {
				return ev
			}
		}
		return nil
	}
	for _, w := range ways {
		t.Run(w.name+" reported", func(t *testing.T) {
			if w.op == OpLinkCreate {
				testutils.SkipOnOldKernel(t, "5.15", "BPF links for perf events (BPF_LINK_CREATE, attach type perf_event)")
			}
			r := runAttacher(t, w.args...)
			if r.killed || r.Error != "" {
				t.Fatalf("bpfattach: %+v", r)
			}
			evs := collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool { return find(evs, w.op, r.ProgID) != nil })
			ev := find(evs, w.op, r.ProgID)
			if ev == nil {
				t.Fatalf("no %s of prog %d among %d events", w.op, r.ProgID, len(evs))
			}
			if ev.Result != AttachDone || ev.Verdict != VerdictAllow {
				t.Errorf("result %s verdict %s, want attached, allowed", ev.Result, ev.Verdict)
			}
			switch w.op {
			case OpRawTPOpen:
				if ev.Target.Name != "sys_enter" || ev.LinkID != r.LinkID {
					t.Errorf("target %q link %d, want sys_enter link %d", ev.Target.Name, ev.LinkID, r.LinkID)
				}
			default:
				if !ev.Target.PerfFound || ev.Target.PerfType != 2 || ev.Target.PerfConfig != tracepointID(t, tp) {
					t.Errorf("target %+v, want perf tracepoint %d", ev.Target, tracepointID(t, tp))
				}
			}
		})
	}
	blocks := []AttachBlock{{Kind: KeyTracepointID, Value: tracepointID(t, tp), Rule: 0}, {Kind: KeyName, Value: NameHash("sys_enter"), Rule: 1}}
	if err := s.SetAttachBlocks(blocks, []string{"no-getdents-attach", "no-sys-enter-attach"}); err != nil {
		t.Fatal(err)
	}
	for _, w := range ways {
		t.Run(w.name+" blocked", func(t *testing.T) {
			if w.op == OpLinkCreate {
				testutils.SkipOnOldKernel(t, "5.15", "BPF links for perf events (BPF_LINK_CREATE, attach type perf_event)")
			}
			r := runAttacher(t, w.args...)
			// the attach itself, not a library's feature probe before it
			blocked := func(evs []*AttachEvent) *AttachEvent {
				for _, ev := range evs {
					if ev.Op == w.op && (ev.Target.PerfFound || ev.Target.Name != "") && ev.Result != AttachUnknown {
						return ev
					}
				}
				return nil
			}
			evs := collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool { return blocked(evs) != nil })
			ev := blocked(evs)
			if ev == nil {
				t.Fatalf("no %s event (attacher %+v)", w.op, r)
			}
			if ev.Verdict != VerdictBlock || !strings.HasPrefix(ev.RuleID, "no-") {
				t.Errorf("verdict %s rule %q, want block by the table", ev.Verdict, ev.RuleID)
			}
			switch s.Enforcer() {
			case EnforcerDeny:
				// cilium/ebpf words some errnos into its error text only
				eperm := syscall.Errno(r.Errno) == syscall.EPERM || r.Errno == 0 && strings.HasSuffix(r.Error, syscall.EPERM.Error())
				if r.killed || !eperm || ev.Action != ActionDenied || ev.Result != AttachFailed || ev.Errno != int(syscall.EPERM) {
					t.Errorf("deny: attacher %+v, event action %s result %s errno %d; want EPERM, denied", r, ev.Action, ev.Result, ev.Errno)
				}
			default:
				if !r.killed || ev.Action != ActionKilled || ev.Result != AttachKilled {
					t.Errorf("kill: attacher %+v, event action %s result %s; want killed", r, ev.Action, ev.Result)
				}
			}
		})
	}
	// a cgroup attach, on the same sensor (one start per VM): the
	// table now blocks the test's cgroup
	t.Run("cgroup", func(t *testing.T) { testAttachBlocks(t, s) })
	// an interface, keyed by network namespace: the table now blocks the
	// loopback of one private namespace
	t.Run("interface", func(t *testing.T) { testAttachInterfaceBlocks(t, s) })
	// kprobe_multi (no table entry names its symbols): reported, named
	t.Run("kprobe_multi", func(t *testing.T) { kprobeMultiCase(t, s) })
}
