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
// user would) and waits for its exit. The test stops it once the attaches
// it waits for were reported, never after a fixed time: on a busy host a
// tool may take many seconds to load and attach.
func startClient(t *testing.T, name string, args ...string) (pid uint32, ended func() bool, stop func()) {
	t.Helper()
	c := startTool(t, "", name, args...)
	return c.pid, c.ended, c.stop
}

// tool is a running client (startTool).
type tool struct {
	name    string
	pid     uint32
	cmd     *exec.Cmd
	stdout  syncBuffer
	stderr  syncBuffer
	done    chan struct{}
	stopped bool
	t       *testing.T
}

// startTool starts a real tool. With ready set, its stdout is line
// buffered (stdbuf -oL: a pipe would keep the tool's lines until it exits)
// so that waitReady sees the line the tool prints once it has attached.
func startTool(t *testing.T, ready, name string, args ...string) *tool {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		testutils.SkipOrFail(t, name+" is not installed (scripts/deps.sh installs it)")
	}
	if ready != "" {
		stdbuf, err := exec.LookPath("stdbuf")
		if err != nil {
			t.Fatalf("stdbuf (coreutils), to read %s's lines as it prints them: %v", name, err)
		}
		args = append([]string{"-oL", path}, args...)
		path = stdbuf
	}
	c := &tool{name: name, done: make(chan struct{}), t: t}
	c.cmd = exec.Command(path, args...)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.pid = uint32(c.cmd.Process.Pid)
	go func() { c.cmd.Wait(); close(c.done) }()
	t.Cleanup(c.stop)
	return c
}

func (c *tool) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitReady waits until the tool printed ready (libbpf-tools print their
// header, or biolatency its "Tracing..." line, once every program is
// attached) and says true, or until it ended without and says false.
func (c *tool) waitReady(ready string) bool {
	c.t.Helper()
	deadline := waitDeadline(c.t)
	for !strings.Contains(c.stdout.String(), ready) {
		if c.ended() {
			return strings.Contains(c.stdout.String(), ready)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s (pid %d) printed no %q by the test's deadline; stdout:\n%s\nstderr:\n%s", c.name, c.pid, ready, c.stdout.String(), c.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// stop ends the tool with SIGINT and waits for its exit; SIGKILL only when
// it has not exited by the test's deadline.
func (c *tool) stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if !c.ended() {
		c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-time.After(time.Until(waitDeadline(c.t))):
			c.cmd.Process.Kill()
			<-c.done
			c.t.Errorf("%s (pid %d) did not exit on SIGINT by the test's deadline: killed", c.name, c.pid)
		}
	}
	c.t.Logf("%s: %s", c.name, strings.TrimSpace(c.stderr.String()))
}

// waitDeadline bounds a wait on something that must happen: a minute
// before the test binary's own timeout, so that a wait that fails says
// what it waited for. There is no shorter window, which a loaded host
// could outlast.
func waitDeadline(t *testing.T) time.Time {
	if d, ok := t.Deadline(); ok {
		return d.Add(-time.Minute)
	}
	return time.Now().Add(time.Hour)
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
// and the default rules flag none of them. Nothing here waits for a fixed
// time: each tool runs until it prints the line it prints once attached
// (or ends), and until the attaches wanted of it are in the sensor's
// output; it is then stopped and waited for. The sensor is then stopped
// too: once it has exited, every event it captured has been written, and
// each tool's events are judged whole.
func TestRunReportsLibbpfToolsAttachesAndTheDefaultsFlagNone(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor")
	tools := []struct {
		name  string
		ready string   // in what it prints once attached
		want  []string // kind:name attached (what this kernel lets the tool use)
	}{
		{"opensnoop", "PATH", []string{"tracepoint:syscalls/sys_enter_openat", "tracepoint:syscalls/sys_exit_openat"}},
		{"execsnoop", "PCOMM", []string{"tracepoint:syscalls/sys_enter_execve"}},
		{"biolatency", "Tracing block device I/O", []string{"tracing:block_rq_issue", "tracing:block_rq_complete"}},
		{"tcpconnect", "DPORT", nil}, // kprobes (or fentry): where the kernel has neither it fails before any attach
	}
	_, kprobeErr := os.Stat("/sys/kernel/tracing/kprobe_events")
	pids := make([]uint32, len(tools))
	for i, tool := range tools {
		t.Run(tool.name+" runs until attached", func(t *testing.T) {
			c := startTool(t, tool.ready, tool.name)
			pids[i] = c.pid
			ready := c.waitReady(tool.ready)
			if len(tool.want) > 0 && !ready {
				t.Fatalf("%s (pid %d) ended before it was attached; stderr:\n%s", tool.name, c.pid, c.stderr.String())
			}
			r.waitAttaches(t, c.pid, tool.name, func(evs []output.Event) bool {
				for _, w := range tool.want {
					kind, name, _ := strings.Cut(w, ":")
					if !hasAttachTo(evs, kind, name) {
						return false
					}
				}
				// tcpconnect, attached where the kernel has kprobes: at least one
				return !(tool.name == "tcpconnect" && ready && kprobeErr == nil) || len(evs) > 0
			})
			c.stop()
		})
	}
	r.stopAndWait(t)
	for i, tool := range tools {
		t.Run(tool.name, func(t *testing.T) {
			pid := pids[i]
			if pid == 0 {
				t.Fatalf("%s did not run", tool.name)
			}
			evs := r.attaches(t, map[uint32]bool{pid: true}, func([]output.Event) bool { return true })
			for _, w := range tool.want {
				kind, name, _ := strings.Cut(w, ":")
				if !hasAttachTo(evs, kind, name) {
					t.Errorf("%s (pid %d): no attach to %s; got:\n%s", tool.name, pid, w, describeAttaches(evs))
				}
			}
			if tool.name == "tcpconnect" && kprobeErr == nil && len(evs) == 0 {
				t.Errorf("tcpconnect on a kernel with kprobes: no attach reported")
			}
			for _, ev := range evs {
				if ids := ruleIDs(ev); len(ids) > 0 {
					t.Errorf("%s: %s %s:%s flagged by %v", tool.name, ev.Attach.Op, ev.Attach.Target.Kind, ev.Attach.Target.Name, ids)
				}
			}
		})
	}
}

// waitAttaches returns pid's attach events once want holds. The events of
// an attach the tool has made must come, so the only bound is the test's
// deadline; a failure shows the sensor's log (a consumer that fell behind
// counts attach_undelivered there).
func (r *attachRun) waitAttaches(t *testing.T, pid uint32, name string, want func([]output.Event) bool) []output.Event {
	t.Helper()
	deadline := waitDeadline(t)
	for {
		evs := r.scan(map[uint32]bool{pid: true})
		if want(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d): the attaches wanted were not reported by the test's deadline; got:\n%s\nsensor log:\n%s", name, pid, describeAttaches(evs), r.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopAndWait stops the sensor with SIGINT and waits for its exit: it
// writes every event it captured before it exits.
func (r *attachRun) stopAndWait(t *testing.T) {
	t.Helper()
	r.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-r.done:
		if r.waitErr != nil {
			t.Fatalf("sensor exit: %v\n%s", r.waitErr, r.stderr.String())
		}
	case <-time.After(time.Until(waitDeadline(t))):
		r.cmd.Process.Kill()
		<-r.done
		t.Fatalf("the sensor did not exit on SIGINT by the test's deadline:\n%s", r.stderr.String())
	}
}
