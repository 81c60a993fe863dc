//go:build linux && amd64

package main

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// startClient starts a real tool and returns its pid, a function that
// reports whether it has ended, and one that stops it with SIGINT (as a
// user would; SIGKILL if it has not ended 10 s later) and waits for it.
// The test stops it once the attaches it waits for were reported, never
// after a fixed time: on a busy host a tool may take many seconds to load
// and attach.
func startClient(t *testing.T, name string, args ...string) (pid uint32, ended func() bool, stop func()) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testutils.SkipOrFail(t, name+" is not installed (scripts/deps.sh installs it)")
	}
	cmd := exec.Command(path, args...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	ended = func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		if !ended() {
			cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		t.Logf("%s: %s", name, strings.TrimSpace(stderr.String()))
	}
	t.Cleanup(stop)
	return uint32(cmd.Process.Pid), ended, stop
}

func hasAttachTo(evs []output.Event, kind, name string) bool {
	for _, ev := range evs {
		if ev.Attach.Target.Kind == kind && ev.Attach.Target.Name == name && ev.Attach.Result == "attached" {
			return true
		}
	}
	return false
}

func describeAttaches(evs []output.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		a := ev.Attach
		b.WriteString(a.Op + " " + a.Target.Kind + ":" + a.Target.Name + " " + a.Result + " rules=" + strings.Join(ruleIDs(ev), ",") + "\n")
	}
	return b.String()
}

// Debian's bpftrace with a tracepoint and a uprobe probe: every attach is
// reported with its target, the uprobe's offset named as the libc symbol.
func TestRunReportsBpftraceAttaches(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor")
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	// it exits by itself (interval → exit()); compiling takes a while on a busy host
	pid, _, stop := startClient(t, "bpftrace", "-e",
		`tracepoint:syscalls:sys_enter_openat { @o = count(); } uprobe:`+libc+`:getpid { @u = count(); } interval:s:1 { exit(); }`)
	uprobe := func(evs []output.Event) bool {
		for _, ev := range evs {
			a := ev.Attach
			if a.Target.Kind == "uprobe" && a.Target.Binary == libc && strings.Contains(a.Target.Symbol, "getpid") && a.Result == "attached" {
				return true
			}
		}
		return false
	}
	evs := r.attaches(t, map[uint32]bool{pid: true}, func(evs []output.Event) bool {
		return hasAttachTo(evs, "tracepoint", "syscalls/sys_enter_openat") && uprobe(evs)
	})
	stop()
	if !hasAttachTo(evs, "tracepoint", "syscalls/sys_enter_openat") || !uprobe(evs) {
		t.Fatalf("bpftrace (pid %d): want the openat tracepoint and the getpid uprobe attached; got:\n%s", pid, describeAttaches(evs))
	}
	for _, ev := range evs {
		if ev.Attach.Result == "attached" && ev.Attach.Target.Name == "" && ev.Attach.Target.Unresolved == "" {
			t.Errorf("an attach without a named target and no reason: %+v", ev.Attach)
		}
	}
}

// Debian's libbpf-tools: their attaches are reported with their targets,
// and the default rules flag none of them.
func TestRunReportsLibbpfToolsAttachesAndTheDefaultsFlagNone(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor")
	tools := []struct {
		name string
		want []string // kind:name attached (what this kernel lets the tool use)
	}{
		{"opensnoop", []string{"tracepoint:syscalls/sys_enter_openat", "tracepoint:syscalls/sys_exit_openat"}},
		{"execsnoop", []string{"tracepoint:syscalls/sys_enter_execve"}},
		{"biolatency", []string{"tracing:block_rq_issue", "tracing:block_rq_complete"}},
		{"tcpconnect", nil}, // kprobes (or fentry): where the kernel has neither it fails before any attach
	}
	for _, tool := range tools {
		t.Run(tool.name, func(t *testing.T) {
			pid, ended, stop := startClient(t, tool.name)
			r.attaches(t, map[uint32]bool{pid: true}, func(evs []output.Event) bool {
				for _, w := range tool.want {
					kind, name, _ := strings.Cut(w, ":")
					if !hasAttachTo(evs, kind, name) {
						return false
					}
				}
				// tcpconnect: an attach, or its failure before any
				return len(tool.want) > 0 || len(evs) > 0 || ended()
			})
			stop()
			// then what it attached, all of it once it ended
			evs := r.attaches(t, map[uint32]bool{pid: true}, func([]output.Event) bool { return true })
			for _, w := range tool.want {
				kind, name, _ := strings.Cut(w, ":")
				if !hasAttachTo(evs, kind, name) {
					t.Errorf("%s (pid %d): no attach to %s; got:\n%s", tool.name, pid, w, describeAttaches(evs))
				}
			}
			if tool.name == "tcpconnect" {
				if _, err := os.Stat("/sys/kernel/tracing/kprobe_events"); err == nil && len(evs) == 0 {
					t.Errorf("tcpconnect on a kernel with kprobes: no attach reported")
				}
			}
			for _, ev := range evs {
				if ids := ruleIDs(ev); len(ids) > 0 {
					t.Errorf("%s: %s %s:%s flagged by %v", tool.name, ev.Attach.Op, ev.Attach.Target.Kind, ev.Attach.Target.Name, ids)
				}
			}
		})
	}
}
