//go:build linux && amd64

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// heldClient is bpfattach -hold: what it attached stays until it is
// killed (as a tool stopped hard) or its stdin closes.
type heldClient struct {
	pid     uint32
	progID  uint32
	linkID  uint32
	ifindex int
	cmd     *exec.Cmd
	in      io.Closer
}

func startHeld(t *testing.T, args ...string) *heldClient {
	t.Helper()
	cmd := exec.Command(goBuild(t, "../../internal/cmd/bpfattach", "bpfattach"), append(args, "-hold")...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &heldClient{pid: uint32(cmd.Process.Pid), cmd: cmd, in: in}
	t.Cleanup(c.kill)
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("bpfattach %v: %v", args, err)
	}
	var res struct {
		ProgID  uint32 `json:"prog_id"`
		LinkID  uint32 `json:"link_id"`
		Ifindex int    `json:"ifindex"`
		Error   string `json:"error"`
	}
	if err := json.Unmarshal(line, &res); err != nil || res.Error != "" {
		t.Fatalf("bpfattach %v: %v %s", args, err, line)
	}
	c.progID, c.linkID, c.ifindex = res.ProgID, res.LinkID, res.Ifindex
	return c
}

// kill ends the client with SIGKILL, as a tool stopped hard: its fds
// close with the process, no detach call. It returns once it was reaped.
func (c *heldClient) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	c.cmd.Process.Kill()
	c.in.Close()
	c.cmd.Wait()
}

// detachesOf are the prog_detach events among evs for link id (0: any)
// with op.
func detachesOf(evs []output.Event, op string, linkID uint32) []output.Event {
	var out []output.Event
	for _, ev := range evs {
		if ev.Event == output.KindProgDetach && ev.Attach.Op == op && (linkID == 0 || ev.Attach.LinkID == linkID) {
			out = append(out, ev)
		}
	}
	return out
}

func attachedLink(evs []output.Event, linkID uint32) bool {
	for _, ev := range evs {
		if ev.Event == output.KindProgAttach && ev.Attach.LinkID == linkID && ev.Attach.Result == "attached" {
			return true
		}
	}
	return false
}

// A link that goes with its last fd (its attacher killed) gets exactly
// one prog_detach naming the link, the program and the target; a pinned
// link gets none while the pin holds it, and one once unpinned; a link
// ended by BPF_LINK_DETACH gets that call's prog_detach and no second one
// when its fd closes; a perf event attached with PERF_EVENT_IOC_SET_BPF
// gets one when the attacher's perf fd closes. Each "none" is asserted
// once a later client's release was reported: every check covers every
// followed attachment, so the check that found the later one gone had
// looked at the earlier one too.
func TestRunReportsReleasedAttachments(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor", "--release-check-interval", "300ms")
	tp := []string{"-builtin", "tracepoint", "-tracepoint", "syscalls/sys_enter_getpid"}

	sentinel := func(t *testing.T) { t.Helper(); releaseSentinel(t, r) }

	t.Run("a link whose attacher is killed gets one prog_detach with its program and target", func(t *testing.T) {
		c := startHeld(t, tp...)
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return attachedLink(evs, c.linkID) })
		c.kill()
		r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "link_released", c.linkID)) > 0 })
		sentinel(t)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		got := detachesOf(evs, "link_released", c.linkID)
		if len(got) != 1 {
			t.Fatalf("link %d: want one link_released, got %d:\n%s", c.linkID, len(got), describeAttaches(evs))
		}
		a := got[0].Attach
		if a.ProgID != c.progID || a.Target.Kind != "tracepoint" || a.Target.Name != "syscalls/sys_enter_getpid" {
			t.Errorf("link_released: prog %d target %s:%s; want prog %d on tracepoint:syscalls/sys_enter_getpid", a.ProgID, a.Target.Kind, a.Target.Name, c.progID)
		}
		if got[0].Prog == nil || got[0].Prog.Name != "attach_tra" {
			t.Errorf("link_released: want the program's load facts (name attach_tra), got %+v", got[0].Prog)
		}
		if rel := a.Release; rel == nil || (rel.Observed != observedExit && rel.Observed != observedSweep) || rel.DetectedWithinMS < 0 {
			t.Errorf("link_released: release %+v: want observed attacher_exit or sweep and a bound", rel)
		}
		if a.Release != nil {
			t.Logf("link %d released: observed %s within %d ms", c.linkID, a.Release.Observed, a.Release.DetectedWithinMS)
		}
		if got[0].Loader == nil || got[0].Loader.PID != c.pid {
			t.Errorf("link_released: loader %+v, want the attacher pid %d", got[0].Loader, c.pid)
		}
	})

	t.Run("a pinned link gets no prog_detach until it is unpinned", func(t *testing.T) {
		pin := fmt.Sprintf("/sys/fs/bpf/sentry-released-link-%d", os.Getpid())
		c := startHeld(t, append(tp, "-pin", pin)...)
		t.Cleanup(func() { os.Remove(pin) })
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return attachedLink(evs, c.linkID) })
		c.kill()
		sentinel(t)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		if got := detachesOf(evs, "link_released", c.linkID); len(got) != 0 {
			t.Fatalf("pinned link %d: reported released while pinned:\n%s", c.linkID, describeAttaches(evs))
		}
		if err := os.Remove(pin); err != nil {
			t.Fatal(err)
		}
		evs = r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "link_released", c.linkID)) > 0 })
		got := detachesOf(evs, "link_released", c.linkID)
		if len(got) != 1 {
			t.Fatalf("unpinned link %d: want one link_released, got %d:\n%s", c.linkID, len(got), describeAttaches(evs))
		}
		if got[0].Attach.Release.Observed != observedSweep {
			t.Errorf("unpinned link: observed %q, want sweep (no exit ended it)", got[0].Attach.Release.Observed)
		}
	})

	t.Run("a link ended by BPF_LINK_DETACH gets one prog_detach, not a second at its release", func(t *testing.T) {
		cg := testutils.NewCgroup(t, "released")
		c := startHeld(t, "-mode", "cgroup", "-cgroup", cg.Path, "-link", "-detach")
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "link_detach", c.linkID)) > 0 })
		c.kill()
		sentinel(t)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		if !attachedLink(evs, c.linkID) {
			t.Fatalf("cgroup link %d: no prog_attach; got:\n%s", c.linkID, describeAttaches(evs))
		}
		if n, m := len(detachesOf(evs, "link_detach", c.linkID)), len(detachesOf(evs, "link_released", c.linkID)); n != 1 || m != 0 {
			t.Fatalf("cgroup link %d: %d link_detach and %d link_released, want 1 and 0:\n%s", c.linkID, n, m, describeAttaches(evs))
		}
	})

	t.Run("a perf event attached by ioctl gets one prog_detach when its attacher is killed", func(t *testing.T) {
		c := startHeld(t, append(tp, "-ioctl")...)
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool {
			return hasAttachTo(evs, "tracepoint", "syscalls/sys_enter_getpid")
		})
		c.kill()
		r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "perf_event_released", 0)) > 0 })
		sentinel(t)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		got := detachesOf(evs, "perf_event_released", 0)
		if len(got) != 1 {
			t.Fatalf("perf attach of prog %d: want one perf_event_released, got %d:\n%s", c.progID, len(got), describeAttaches(evs))
		}
		a := got[0].Attach
		if a.ProgID != c.progID || a.Target.Name != "syscalls/sys_enter_getpid" || a.Release == nil || a.Release.HolderPID != c.pid {
			t.Errorf("perf_event_released: %+v; want prog %d, the getpid tracepoint, holder pid %d", a, c.progID, c.pid)
		}
	})
}

// releaseSentinel attaches a link and has it killed; it returns once that
// link's release was reported: a check that began after the call did.
func releaseSentinel(t *testing.T, r *attachRun) {
	t.Helper()
	c := startHeld(t, "-builtin", "tracepoint", "-tracepoint", "syscalls/sys_enter_getpid")
	pids := map[uint32]bool{c.pid: true}
	r.attaches(t, pids, func(evs []output.Event) bool { return attachedLink(evs, c.linkID) })
	c.kill()
	evs := r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "link_released", c.linkID)) > 0 })
	if len(detachesOf(evs, "link_released", c.linkID)) == 0 {
		t.Fatalf("sentinel link %d: no link_released; got:\n%s", c.linkID, describeAttaches(evs))
	}
}

// bpftrace stopped as a user stops it (SIGINT): every link and perf
// attachment it was reported making gets its prog_detach.
func TestRunReportsBpftraceDetachesWhenStopped(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor", "--release-check-interval", "300ms")
	pid, _, stop := startClient(t, "bpftrace", "-e", `tracepoint:syscalls:sys_enter_getpid { @n = count(); }`)
	pids := map[uint32]bool{pid: true}
	r.attaches(t, pids, func(evs []output.Event) bool {
		return hasAttachTo(evs, "tracepoint", "syscalls/sys_enter_getpid")
	})
	stop()
	want := func(evs []output.Event) (links []uint32, perfs int) {
		for _, ev := range evs {
			a := ev.Attach
			if ev.Event != output.KindProgAttach || a.Result != "attached" {
				continue
			}
			switch {
			case a.LinkID != 0 && (a.Op == "link_create" || a.Op == "raw_tracepoint_open"):
				links = append(links, a.LinkID)
			case a.Op == "perf_event_set_bpf":
				perfs++
			}
		}
		return links, perfs
	}
	done := func(evs []output.Event) bool {
		links, perfs := want(evs)
		for _, id := range links {
			if len(detachesOf(evs, "link_released", id)) == 0 {
				return false
			}
		}
		return len(detachesOf(evs, "perf_event_released", 0)) >= perfs
	}
	evs := r.attaches(t, pids, done)
	links, perfs := want(evs)
	if len(links)+perfs == 0 {
		t.Fatalf("bpftrace (pid %d): no link or perf attach reported:\n%s", pid, describeAttaches(evs))
	}
	if !done(evs) {
		t.Fatalf("bpftrace (pid %d) stopped: links %v and %d perf attaches, not all released:\n%s", pid, links, perfs, describeAttaches(evs))
	}
	for _, id := range links {
		if n := len(detachesOf(evs, "link_released", id)); n != 1 {
			t.Errorf("bpftrace link %d: %d link_released, want 1", id, n)
		}
	}
	if !strings.Contains(describeAttaches(evs), "tracepoint:syscalls/sys_enter_getpid") {
		t.Errorf("no getpid tracepoint named:\n%s", describeAttaches(evs))
	}
}

// With the timer off, the attacher's exit alone (its pidfd) starts the
// check: the release is reported as observed at attacher_exit.
func TestRunReportsAReleasedLinkAtItsAttachersExit(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor", "--release-check-interval", "0")
	c := startHeld(t, "-builtin", "tracepoint", "-tracepoint", "syscalls/sys_enter_getpid")
	pids := map[uint32]bool{c.pid: true}
	r.attaches(t, pids, func(evs []output.Event) bool { return attachedLink(evs, c.linkID) })
	c.kill()
	evs := r.attaches(t, pids, func(evs []output.Event) bool { return len(detachesOf(evs, "link_released", c.linkID)) > 0 })
	got := detachesOf(evs, "link_released", c.linkID)
	if len(got) != 1 {
		t.Fatalf("link %d: want one link_released, got %d:\n%s", c.linkID, len(got), describeAttaches(evs))
	}
	rel := got[0].Attach.Release
	if rel == nil || rel.Observed != observedExit {
		t.Fatalf("link_released without a timer: release %+v, want observed attacher_exit", rel)
	}
	t.Logf("link %d released: observed %s, detected within %d ms of its attach", c.linkID, rel.Observed, rel.DetectedWithinMS)
}

// progAttached: a prog_attach of program prog reported attached.
func progAttached(evs []output.Event, prog uint32) bool {
	for _, ev := range evs {
		if ev.Event == output.KindProgAttach && ev.Attach.Op == "prog_attach" && ev.Attach.ProgID == prog && ev.Attach.Result == "attached" {
			return true
		}
	}
	return false
}

// progReleased are the prog_attach_released events of program prog.
func progReleased(evs []output.Event, prog uint32) []output.Event {
	var out []output.Event
	for _, ev := range detachesOf(evs, "prog_attach_released", 0) {
		if ev.Attach.ProgID == prog {
			out = append(out, ev)
		}
	}
	return out
}

// A BPF_PROG_ATTACH attachment outlives its attacher (killed here, as a
// tool stopped hard: nothing detaches) and ends with its target: a cgroup
// removed gets one prog_detach prog_attach_released for its program, and
// the cgroup made again at the same path, with a program of its own, is
// not taken for the old one (the check names it by id). A tcx program
// attached with BPF_PROG_ATTACH to a veth gets one when the veth is
// deleted, though a new veth of the same name and ifindex took its place.
// Each "none" is asserted once a later sentinel's release was reported.
func TestRunReportsProgAttachmentsWhoseTargetIsGone(t *testing.T) {
	r := startAttachRun(t, "--mode", "monitor", "--release-check-interval", "300ms")

	t.Run("a removed cgroup, and a new one at its path", func(t *testing.T) {
		cg := testutils.NewCgroup(t, "released-prog-attach")
		old := startHeld(t, "-mode", "cgroup", "-cgroup", cg.Path)
		pids := map[uint32]bool{old.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return progAttached(evs, old.progID) })
		old.kill()
		if err := os.Remove(cg.Path); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(cg.Path, 0o755); err != nil {
			t.Fatal(err)
		}
		cur := startHeld(t, "-mode", "cgroup", "-cgroup", cg.Path)
		pids[cur.pid] = true
		r.attaches(t, pids, func(evs []output.Event) bool {
			return progAttached(evs, cur.progID) && len(progReleased(evs, old.progID)) > 0
		})
		releaseSentinel(t, r)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		got := progReleased(evs, old.progID)
		if len(got) != 1 {
			t.Fatalf("removed cgroup: want one prog_attach_released of prog %d, got %d:\n%s", old.progID, len(got), describeAttaches(evs))
		}
		a := got[0].Attach
		if a.Target.Kind != "cgroup" || got[0].Loader == nil || got[0].Loader.PID != old.pid ||
			a.Release == nil || a.Release.Observed != observedSweep || !strings.Contains(a.Note, "removed (rmdir)") {
			t.Errorf("prog_attach_released: loader %+v attach %+v; want the cgroup target, the attacher pid %d, observed sweep, a note saying the cgroup was removed", got[0].Loader, a, old.pid)
		}
		if got[0].Prog == nil || got[0].Prog.Name != "attach_cgroup" {
			t.Errorf("prog_attach_released: want the program's facts (attach_cgroup), got %+v", got[0].Prog)
		}
		if n := len(progReleased(evs, cur.progID)); n != 0 {
			t.Errorf("the cgroup made again at %s: its program %d reported released %d times", cg.Path, cur.progID, n)
		}
		t.Logf("prog %d: %s (within %d ms)", old.progID, a.Note, a.Release.DetectedWithinMS)
	})

	t.Run("a deleted interface, and a new one with its name and ifindex", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.6", "tcx")
		ns := testutils.NewNetns(t, "released")
		if err := ns.NewVeth("sentryrel0", 0); errors.Is(err, unix.EOPNOTSUPP) {
			t.Skipf("the kernel has no veth driver (RTM_NEWLINK of kind veth: %v); the namespace case below covers tcx", err)
		} else if err != nil {
			t.Fatal(err)
		}
		c := startHeld(t, "-mode", "tcx", "-prog-attach", "-netns", ns.Path, "-iface", "sentryrel0")
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return progAttached(evs, c.progID) })
		c.kill() // the attachment stays: it belongs to the interface
		ns.DelLink(t, "sentryrel0")
		ns.AddVeth(t, "sentryrel0", c.ifindex)
		evs := r.attaches(t, pids, func(evs []output.Event) bool { return len(progReleased(evs, c.progID)) > 0 })
		if len(progReleased(evs, c.progID)) == 0 {
			t.Fatalf("deleted veth: no prog_attach_released of prog %d:\n%s", c.progID, describeAttaches(evs))
		}
		releaseSentinel(t, r)
		evs = r.attaches(t, pids, func([]output.Event) bool { return true })
		got := progReleased(evs, c.progID)
		if len(got) != 1 {
			t.Fatalf("deleted veth: want one prog_attach_released of prog %d, got %d:\n%s", c.progID, len(got), describeAttaches(evs))
		}
		a := got[0].Attach
		if a.Target.Kind != "interface" || a.Target.Ifindex != uint32(c.ifindex) || got[0].Loader == nil || got[0].Loader.PID != c.pid || a.Release == nil {
			t.Errorf("prog_attach_released: loader %+v attach %+v; want interface ifindex %d, the attacher pid %d and a release", got[0].Loader, a, c.ifindex, c.pid)
		}
		t.Logf("prog %d: %s (within %d ms)", c.progID, a.Note, a.Release.DetectedWithinMS)
	})

	t.Run("a freed sockmap", func(t *testing.T) {
		c := startHeld(t, "-mode", "sockmap")
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return progAttached(evs, c.progID) })
		c.kill() // its fd on the map was the last: the map goes, with its programs
		r.attaches(t, pids, func(evs []output.Event) bool { return len(progReleased(evs, c.progID)) > 0 })
		releaseSentinel(t, r)
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		got := progReleased(evs, c.progID)
		if len(got) != 1 {
			t.Fatalf("freed sockmap: want one prog_attach_released of prog %d, got %d:\n%s", c.progID, len(got), describeAttaches(evs))
		}
		if a := got[0].Attach; !strings.Contains(a.Note, "is gone (freed)") || got[0].Loader == nil || got[0].Loader.PID != c.pid {
			t.Errorf("prog_attach_released: loader %+v attach %+v; want the attacher pid %d and a note saying the map was freed", got[0].Loader, a, c.pid)
		}
		t.Logf("prog %d: %s", c.progID, got[0].Attach.Note)
	})

	t.Run("a deleted network namespace, with its loopback", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.6", "tcx")
		ns := testutils.NewNetns(t, "released")
		c := startHeld(t, "-mode", "tcx", "-prog-attach", "-netns", ns.Path, "-iface", "lo")
		pids := map[uint32]bool{c.pid: true}
		r.attaches(t, pids, func(evs []output.Event) bool { return progAttached(evs, c.progID) })
		releaseSentinel(t, r) // followed, and checked alive
		evs := r.attaches(t, pids, func([]output.Event) bool { return true })
		if n := len(progReleased(evs, c.progID)); n != 0 {
			t.Fatalf("tcx on lo of a live namespace reported released %d times:\n%s", n, describeAttaches(evs))
		}
		c.kill()
		ns.Remove(t)
		r.attaches(t, pids, func(evs []output.Event) bool { return len(progReleased(evs, c.progID)) > 0 })
		releaseSentinel(t, r)
		evs = r.attaches(t, pids, func([]output.Event) bool { return true })
		got := progReleased(evs, c.progID)
		if len(got) != 1 {
			t.Fatalf("deleted namespace: want one prog_attach_released of prog %d, got %d:\n%s", c.progID, len(got), describeAttaches(evs))
		}
		if a := got[0].Attach; !strings.Contains(a.Note, "network namespace") || a.Target.Ifindex != 1 {
			t.Errorf("prog_attach_released: %+v; want ifindex 1 (lo) and a note naming the gone namespace", a)
		}
		t.Logf("prog %d: %s", c.progID, got[0].Attach.Note)
	})
}
