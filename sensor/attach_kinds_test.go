package sensor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/target"
)

// resolve names an event's target as the agent does (cmd/ebpf-sentry).
func resolve(ev *AttachEvent) target.Target {
	t := ev.Target
	return target.NewResolver().Resolve(target.Raw{
		AttachType: t.AttachType, FD: t.FD, Flags: t.Flags, BTFID: t.BTFID, ProgID: t.ProgID, MapID: t.MapID,
		NetNS: t.NetNS, PID: ev.Caller.PID, CgroupIno: t.CgroupIno, PerfType: t.PerfType, PerfConfig: t.PerfConfig,
		PerfOffset: t.PerfOffset, Count: t.Count, Name: t.Name, NameFromPerf: t.NameFromPerf, PerfFound: t.PerfFound,
		Addrs: t.Addrs, Syms: t.Syms, RawTP: ev.Op == OpRawTPOpen, ProgType: ev.ProgType,
	})
}

// heldAttacher is bpfattach -hold: its attaches stay (and its network
// namespace stays findable by pid) until release.
func heldAttacher(t *testing.T, args ...string) (attachRun, func()) {
	t.Helper()
	cmd := exec.Command(buildAttacher(t), append(args, "-hold")...)
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
	release := func() { in.Close(); io.Copy(io.Discard, out); cmd.Wait() }
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		release()
		t.Fatalf("bpfattach %v: %v", args, err)
	}
	var r attachRun
	if err := json.Unmarshal(line, &r); err != nil {
		release()
		t.Fatalf("bpfattach %v: %v: %s", args, err, line)
	}
	t.Cleanup(release)
	return r, release
}

// privateNetns is a network namespace of the test's own (/run/netns/NAME),
// removed at cleanup; with a veth pair (iface, up, and iface+"p") when
// iface is not "" (veth: kernels without the dummy driver have it). Made
// without iproute2, which the matrix VMs lack.
func privateNetns(t *testing.T, iface string) (path string, ino uint32) {
	return privateNetnsIndex(t, iface, 0)
}

// privateNetnsIndex is privateNetns with the veth at ifindex index (0: any).
func privateNetnsIndex(t *testing.T, iface string, index int) (path string, ino uint32) {
	t.Helper()
	ns := testutils.NewNetns(t, "sentry-attach")
	if iface != "" {
		ns.AddVeth(t, iface, index)
	}
	return ns.Path, ns.Ino
}

// opEvent finds the completed event of op (and prog id when not 0).
func opEvent(evs []*AttachEvent, op AttachOp, prog uint32) *AttachEvent {
	for _, ev := range evs {
		if ev.Op == op && (prog == 0 || ev.ProgID == prog) && ev.Result != AttachUnknown {
			return ev
		}
	}
	return nil
}

// opDone finds a completed event of op on a program (link_detach: any),
// never a library's feature probe with a bogus program fd.
func opDone(evs []*AttachEvent, op AttachOp) *AttachEvent {
	for _, ev := range evs {
		if ev.Op == op && (ev.ProgID != 0 || op == OpLinkDetach) && ev.Result != AttachUnknown {
			return ev
		}
	}
	return nil
}

// waitOps collects pid's attach events until one of each op arrived.
func waitOps(t *testing.T, s *Sensor, pid int, ops ...AttachOp) []*AttachEvent {
	t.Helper()
	return waitOpsFrom(t, pid, func(done func([]*AttachEvent) bool) []*AttachEvent {
		return collectAttaches(t, s, pid, eventWait, done)
	}, ops...)
}

// waitOpsLogged is waitOps on the events a log keeps (logAttaches).
func waitOpsLogged(t *testing.T, log *attachLog, pid int, ops ...AttachOp) []*AttachEvent {
	t.Helper()
	return waitOpsFrom(t, pid, func(done func([]*AttachEvent) bool) []*AttachEvent {
		return log.of(pid, eventWait, done)
	}, ops...)
}

func waitOpsFrom(t *testing.T, pid int, collect func(done func([]*AttachEvent) bool) []*AttachEvent, ops ...AttachOp) []*AttachEvent {
	t.Helper()
	evs := collect(func(evs []*AttachEvent) bool {
		for _, op := range ops {
			if opDone(evs, op) == nil {
				return false
			}
		}
		return true
	})
	for _, op := range ops {
		if opDone(evs, op) == nil {
			t.Fatalf("no completed %s event of pid %d among %d", op, pid, len(evs))
		}
	}
	return evs
}

func wantDone(t *testing.T, ev *AttachEvent) {
	t.Helper()
	if ev.Result != AttachDone || ev.Verdict != VerdictAllow {
		t.Errorf("%s: result %s errno %d verdict %s, want done and allowed", ev.Op, ev.Result, ev.Errno, ev.Verdict)
	}
}

// Every attach type this kernel has beyond the tracepoints is reported
// with its target named: BPF_PROG_ATTACH/DETACH of a cgroup, flow
// dissector and sockmap program, BPF_LINK_CREATE for cgroups, tcx,
// netkit, netfilter, uprobe_multi and kprobe_multi, and the replacements
// (BPF_F_REPLACE, BPF_LINK_UPDATE) with the old and new program.
func TestAttachKindsAreReportedWithTheirTargets(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	// Every event taken from the start, also while an attacher runs:
	// other loaders on a busy host could otherwise fill the Events
	// channel (the reader then stops and the ring drops this test's
	// attach records) or the Attaches channel (which drops them).
	log := logAttaches(s)
	cg := testutils.NewCgroup(t, "attach2")
	cgPath := func() string {
		root := cg.Path[:strings.LastIndex(cg.Path, "/")]
		return strings.TrimPrefix(cg.Path, root)
	}()

	t.Run("cgroup prog_attach, replace, prog_detach", func(t *testing.T) {
		r := runAttacher(t, "-mode", "cgroup", "-cgroup", cg.Path, "-replace", "-detach")
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		evs := waitOpsLogged(t, log, r.PID, OpProgAttach, OpProgDetach)
		first, repl := opEvent(evs, OpProgAttach, r.ProgID), opEvent(evs, OpProgAttach, r.NewProgID)
		if first == nil || repl == nil {
			t.Fatalf("prog_attach of %d and of %d (the replacement): %v, %v", r.ProgID, r.NewProgID, first, repl)
		}
		for _, ev := range []*AttachEvent{first, repl, opEvent(evs, OpProgDetach, r.NewProgID)} {
			if ev == nil {
				t.Fatalf("no prog_detach of %d", r.NewProgID)
			}
			wantDone(t, ev)
			tg := resolve(ev)
			if ev.Target.CgroupIno != cg.ID || tg.Kind != target.KindCgroup || tg.Name != cgPath {
				t.Errorf("%s: cgroup %d target %+v, want cgroup %d %q", ev.Op, ev.Target.CgroupIno, tg, cg.ID, cgPath)
			}
		}
		if repl.ReplaceProgID != r.ProgID || repl.Target.Flags&unix.BPF_F_REPLACE == 0 {
			t.Errorf("replacement: replaces %d flags %#x, want %d with BPF_F_REPLACE", repl.ReplaceProgID, repl.Target.Flags, r.ProgID)
		}
	})

	t.Run("cgroup link_create, link_update, link_detach", func(t *testing.T) {
		r := runAttacher(t, "-mode", "cgroup", "-cgroup", cg.Path, "-link", "-update", "-detach")
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		evs := waitOpsLogged(t, log, r.PID, OpLinkCreate, OpLinkUpdate, OpLinkDetach)
		c, u, d := opEvent(evs, OpLinkCreate, r.ProgID), opEvent(evs, OpLinkUpdate, r.NewProgID), opEvent(evs, OpLinkDetach, 0)
		if c == nil || u == nil {
			t.Fatalf("link_create of %d, link_update to %d: %v %v", r.ProgID, r.NewProgID, c, u)
		}
		for _, ev := range []*AttachEvent{c, u, d} {
			wantDone(t, ev)
			if ev.LinkID != r.LinkID {
				t.Errorf("%s: link %d, want %d", ev.Op, ev.LinkID, r.LinkID)
			}
		}
		if tg := resolve(c); tg.Kind != target.KindCgroup || tg.Name != cgPath || tg.AttachType != "cgroup_inet_ingress" {
			t.Errorf("link target %+v, want cgroup %q (cgroup_inet_ingress)", tg, cgPath)
		}
		if u.ReplaceProgID != 0 && u.ReplaceProgID != r.ProgID {
			t.Errorf("update replaces %d, want %d or unnamed", u.ReplaceProgID, r.ProgID)
		}
	})

	t.Run("flow dissector prog_attach and prog_detach in a private netns", func(t *testing.T) {
		ns, ino := privateNetns(t, "")
		r := runAttacher(t, "-mode", "flow_dissector", "-netns", ns, "-detach")
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		evs := waitOpsLogged(t, log, r.PID, OpProgAttach, OpProgDetach)
		for _, ev := range []*AttachEvent{opEvent(evs, OpProgAttach, r.ProgID), opEvent(evs, OpProgDetach, r.ProgID)} {
			wantDone(t, ev)
			if tg := resolve(ev); tg.Kind != target.KindNetns || tg.Name != fmt.Sprintf("net:[%d]", ino) || ev.Target.NetNS != ino {
				t.Errorf("%s: target %+v (netns %d), want netns %d", ev.Op, tg, ev.Target.NetNS, ino)
			}
		}
	})

	t.Run("sk_msg prog_attach to a sockmap", func(t *testing.T) {
		r, release := heldAttacher(t, "-mode", "sockmap", "-map-name", "attach2_skmap")
		evs := waitOpsLogged(t, log, r.PID, OpProgAttach)
		ev := opEvent(evs, OpProgAttach, r.ProgID)
		wantDone(t, ev)
		tg := resolve(ev) // while the map lives: its name
		release()
		if ev.Target.MapID != r.MapID || tg.Kind != target.KindSockmap || tg.Name != "attach2_skmap" || tg.AttachType != "sk_msg_verdict" {
			t.Errorf("target %+v (map %d), want sockmap attach2_skmap (map %d)", tg, ev.Target.MapID, r.MapID)
		}
		if ev.Target.CgroupIno != 0 {
			t.Errorf("a map fd taken for a cgroup: %d", ev.Target.CgroupIno)
		}
	})

	t.Run("tcx link_create and link_update on a veth in a private netns", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.6", "tcx links")
		ns, ino := privateNetns(t, "sentry0")
		r, release := heldAttacher(t, "-mode", "tcx", "-netns", ns, "-iface", "sentry0", "-update")
		if r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		evs := waitOpsLogged(t, log, r.PID, OpLinkCreate, OpLinkUpdate)
		c, u := opEvent(evs, OpLinkCreate, r.ProgID), opEvent(evs, OpLinkUpdate, r.NewProgID)
		tg := resolve(c) // in the caller's namespace, while it is there
		release()
		wantDone(t, c)
		wantDone(t, u)
		if c.Target.FD != uint32(r.Ifindex) || tg.Kind != target.KindInterface || tg.Interface != "sentry0" || tg.NetNS != ino || tg.AttachType != "tcx_ingress" {
			t.Errorf("target %+v, want interface sentry0 (ifindex %d) in netns %d", tg, r.Ifindex, ino)
		}
		if u.LinkID != r.LinkID || c.LinkID != r.LinkID {
			t.Errorf("links %d/%d, want %d", c.LinkID, u.LinkID, r.LinkID)
		}
	})

	t.Run("netkit link_create in a private netns", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.7", "netkit devices")
		ns, ino := privateNetns(t, "")
		r, release := heldAttacher(t, "-mode", "netkit", "-netns", ns, "-iface", "sentrynk0")
		if syscall.Errno(r.Errno) == syscall.EOPNOTSUPP && strings.Contains(r.Error, "netkit sentrynk0") {
			release()
			t.Skip("the kernel has no netkit driver (CONFIG_NETKIT): RTM_NEWLINK of kind netkit is EOPNOTSUPP")
		}
		if r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		evs := waitOpsLogged(t, log, r.PID, OpLinkCreate)
		c := opEvent(evs, OpLinkCreate, r.ProgID)
		tg := resolve(c)
		release()
		wantDone(t, c)
		if tg.Kind != target.KindInterface || tg.Interface != "sentrynk0" || tg.NetNS != ino || tg.AttachType != "netkit_primary" {
			t.Errorf("target %+v, want interface sentrynk0 in netns %d", tg, ino)
		}
	})

	t.Run("netfilter link_create in a private netns", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.4", "netfilter BPF links")
		ns, _ := privateNetns(t, "")
		r := runAttacher(t, "-mode", "netfilter", "-netns", ns)
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		c := opEvent(waitOpsLogged(t, log, r.PID, OpLinkCreate), OpLinkCreate, r.ProgID)
		wantDone(t, c)
		if tg := resolve(c); tg.Kind != target.KindNetfilter || tg.Name != "ipv4/local_out priority -128" {
			t.Errorf("target %+v, want netfilter ipv4/local_out priority -128", tg)
		}
	})

	t.Run("uprobe_multi link_create: binary and offsets named", func(t *testing.T) {
		testutils.SkipOnOldKernel(t, "6.6", "uprobe_multi links")
		libc := "/lib/x86_64-linux-gnu/libc.so.6"
		r := runAttacher(t, "-mode", "uprobe_multi", "-syms", libc+":getpid,getppid")
		if r.killed || r.Error != "" {
			t.Fatalf("bpfattach: %+v", r)
		}
		c := opEvent(waitOpsLogged(t, log, r.PID, OpLinkCreate), OpLinkCreate, r.ProgID)
		wantDone(t, c)
		tg := resolve(c)
		if tg.Kind != target.KindUprobeMulti || tg.Binary != libc || strings.Join(tg.Symbols, ",") != "getpid,getppid" || tg.Name != libc+":getpid" {
			t.Errorf("target %+v, want %s getpid,getppid", tg, libc)
		}
	})
}

// Attaches that fail are reported with the kernel's errno, leave nothing
// waiting for an exit, and the sensor keeps reporting.
func TestFailedAttachesAreReportedAndLeaveNoState(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor})
	cg := testutils.NewCgroup(t, "attach2bad")
	cases := []struct {
		name  string
		args  func(t *testing.T) []string
		op    AttachOp
		errno syscall.Errno
	}{
		{"prog_attach to a bogus target fd", func(*testing.T) []string {
			return []string{"-mode", "cgroup", "-cgroup", cg.Path, "-target-fd", "9999"}
		}, OpProgAttach, syscall.EBADF},
		{"link_create to a bogus target fd", func(*testing.T) []string {
			return []string{"-mode", "cgroup", "-cgroup", cg.Path, "-link", "-target-fd", "9999"}
		}, OpLinkCreate, syscall.EBADF},
		{"tcx link_create on a bogus ifindex", func(t *testing.T) []string {
			testutils.SkipOnOldKernel(t, "6.6", "tcx links")
			ns, _ := privateNetns(t, "")
			return []string{"-mode", "tcx", "-netns", ns, "-ifindex", "99999"}
		}, OpLinkCreate, syscall.ENODEV},
		{"flow dissector replace, which the kernel refuses", func(t *testing.T) []string {
			ns, _ := privateNetns(t, "")
			return []string{"-mode", "flow_dissector", "-netns", ns, "-replace"}
		}, OpProgAttach, syscall.EINVAL},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args(t)
			// -link with -target-fd: the raw link goes to the bogus fd
			r := runAttacher(t, args...)
			if r.killed || syscall.Errno(r.Errno) != c.errno {
				t.Fatalf("bpfattach: %+v, want errno %v", r, c.errno)
			}
			evs := collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool {
				for _, ev := range evs {
					if ev.Op == c.op && ev.Result == AttachFailed {
						return true
					}
				}
				return false
			})
			var got *AttachEvent
			for _, ev := range evs {
				if ev.Op == c.op && ev.Result == AttachFailed {
					got = ev
				}
			}
			if got == nil {
				t.Fatalf("no failed %s of pid %d among %d events", c.op, r.PID, len(evs))
			}
			if syscall.Errno(got.Errno) != c.errno {
				t.Errorf("errno %v, want %v", syscall.Errno(got.Errno), c.errno)
			}
			s.mu.Lock()
			var stale []uint64
			for id, ev := range s.attachPending {
				if int(ev.Caller.PID) == r.PID {
					stale = append(stale, id)
				}
			}
			s.mu.Unlock()
			if len(stale) > 0 {
				t.Errorf("attach records of the exited caller still wait for an exit: %v", stale)
			}
			// nor in the kernel: the entry's pairing record went at the exit
			var in sentryAttachInflight
			if err := s.coll.Maps[sentryMapAttachInflight].Lookup(got.Caller.TID, &in); !errors.Is(err, ebpf.ErrKeyNotExist) {
				t.Errorf("attach_inflight still holds thread %d of the exited caller (lookup: %v)", got.Caller.TID, err)
			}
		})
	}
	// the sensor still reports after the failures
	r := runAttacher(t, "-mode", "cgroup", "-cgroup", cg.Path, "-detach")
	if r.Error != "" {
		t.Fatalf("bpfattach: %+v", r)
	}
	wantDone(t, opEvent(waitOps(t, s, r.PID, OpProgAttach), OpProgAttach, r.ProgID))
}

// A block rule on a cgroup, a network namespace (flow dissector) or a
// sockmap stops attaches there, and the block holds: where the BPF LSM
// runs the kernel refuses the attach with EPERM; on the syscall hooks the
// caller is killed at entry, the BPF_PROG_ATTACH still completes (it
// outlives its caller, unlike a link), and the agent detaches it on the
// exit record (undo: detached_by_sentry): BPF_PROG_QUERY on the target
// shows nothing afterwards. (In the VMs this runs as
// TestAttachIsReportedAndBlockedByTarget/cgroup, on that test's sensor.)
func TestAttachIsBlockedByCgroup(t *testing.T) {
	testAttachBlocks(t, startSensor(t, Config{Mode: ModeEnforce}))
}

func testAttachBlocks(t *testing.T, s *Sensor) {
	cg := testutils.NewCgroup(t, "attach3blk")
	ns, nsIno := privateNetns(t, "")
	// a pinned sockmap outlives its creator, and so do its attachments:
	// made (and its id learnt) by an unblocked run first
	pin := fmt.Sprintf("/sys/fs/bpf/sentry-attach3-skmap-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(pin) })
	pre := runAttacher(t, "-mode", "sockmap", "-map-name", "attach3_skmap", "-map-pin", pin, "-detach")
	if pre.killed || pre.Error != "" || pre.MapID == 0 {
		t.Fatalf("bpfattach (sockmap setup): %+v", pre)
	}
	blocks := []AttachBlock{{Kind: KeyCgroup, Value: cg.ID, Rule: 0}, {Kind: KeyNetns, Value: uint64(nsIno), Rule: 1},
		{Kind: KeyMapID, Value: uint64(pre.MapID), Rule: 2}}
	if err := s.SetAttachBlocks(blocks, []string{"no-cgroup-attach", "no-flow-dissector", "no-sockmap-attach"}); err != nil {
		t.Fatal(err)
	}
	// query lists what the target holds of attach type at
	type query struct {
		target func(t *testing.T) int
		at     ebpf.AttachType
	}
	cases := []struct {
		name string
		args []string
		op   AttachOp
		rule string
		q    *query // BPF_PROG_ATTACH: the target to check afterwards
	}{
		{"cgroup prog_attach", []string{"-mode", "cgroup", "-cgroup", cg.Path}, OpProgAttach, "no-cgroup-attach",
			&query{func(t *testing.T) int { return cgroupFD(t, cg.Path) }, ebpf.AttachCGroupInetIngress}},
		{"cgroup link_create", []string{"-mode", "cgroup", "-cgroup", cg.Path, "-link"}, OpLinkCreate, "no-cgroup-attach", nil},
		{"flow dissector prog_attach", []string{"-mode", "flow_dissector", "-netns", ns}, OpProgAttach, "no-flow-dissector",
			&query{func(t *testing.T) int { return pathFD(t, ns) }, ebpf.AttachFlowDissector}},
		{"sockmap prog_attach (pinned map)", []string{"-mode", "sockmap", "-map-pin", pin}, OpProgAttach, "no-sockmap-attach",
			&query{func(t *testing.T) int {
				m, err := ebpf.LoadPinnedMap(pin, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() })
				return m.FD()
			}, ebpf.AttachSkMsgVerdict}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runAttacher(t, c.args...)
			// the attach itself, not a library's feature probe before it
			blocked := func(evs []*AttachEvent) *AttachEvent {
				for _, ev := range evs {
					if ev.Op == c.op && ev.Verdict == VerdictBlock && ev.Result != AttachUnknown {
						return ev
					}
				}
				return nil
			}
			ev := blocked(collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool { return blocked(evs) != nil }))
			if ev == nil || ev.Verdict != VerdictBlock || ev.RuleID != c.rule {
				t.Fatalf("event %+v (attacher %+v), want a block by %s", ev, r, c.rule)
			}
			switch s.Enforcer() {
			case EnforcerDeny:
				if r.killed || syscall.Errno(r.Errno) != syscall.EPERM || ev.Action != ActionDenied || ev.Errno != int(syscall.EPERM) {
					t.Errorf("deny: attacher %+v, event action %s errno %d; want EPERM", r, ev.Action, ev.Errno)
				}
			default:
				if !r.killed || ev.Action != ActionKilled || ev.Result != AttachKilled {
					t.Errorf("kill: attacher %+v, event action %s result %s; want killed", r, ev.Action, ev.Result)
				}
			}
			if c.q == nil {
				if ev.Undo != nil {
					t.Errorf("%s: undo %+v, want none (a link dies with its caller's fds)", c.op, ev.Undo)
				}
				return
			}
			if s.Enforcer() == EnforcerDeny {
				if ev.Undo != nil {
					t.Errorf("undo %+v after an LSM refusal, want none", ev.Undo)
				}
			} else {
				if ev.Undo == nil || ev.Undo.Outcome != UndoDetached || ev.Undo.Window <= 0 {
					t.Fatalf("undo %+v, want %s with its window", ev.Undo, UndoDetached)
				}
				t.Logf("attached for %v before the sensor detached it", ev.Undo.Window)
			}
			// what the target holds afterwards: nothing either way
			if c.q.at == ebpf.AttachSkMsgVerdict && !testutils.KernelVersion(t).AtLeast(testutils.Version{Major: 6, Minor: 0}) {
				return // no BPF_PROG_QUERY on a sockmap before 6.0: the undo outcome above is the kernel's word
			}
			res, err := link.QueryPrograms(link.QueryOptions{Target: c.q.target(t), Attach: c.q.at})
			if err != nil {
				t.Fatalf("BPF_PROG_QUERY: %v", err)
			}
			for _, p := range res.Programs {
				if uint32(p.ID) == ev.ProgID {
					if c.q.at == ebpf.AttachCGroupInetIngress {
						cgDetach(t, cg.Path, ev.ProgID)
					}
					t.Errorf("prog %d still attached after the block (enforcer %s)", ev.ProgID, s.Enforcer())
				}
			}
		})
	}
	if l, err := s.Losses(); err == nil && l[undoFailedCounter] != 0 {
		t.Errorf("%s: %d", undoFailedCounter, l[undoFailedCounter])
	}
}

// A block rule on an interface is keyed by (network namespace, ifindex):
// two namespaces each with an interface of the same index (their
// loopback, ifindex 1: the VMs have no veth driver), one blocked: an XDP
// link (and, from 6.6, a tcx link) to that index in the other namespace is
// allowed, in the blocked one it is blocked. (In the VMs this runs as
// TestAttachIsReportedAndBlockedByTarget/interface, on that test's sensor.)
func TestAttachIsBlockedByInterface(t *testing.T) {
	testAttachInterfaceBlocks(t, startSensor(t, Config{Mode: ModeEnforce}))
}

func testAttachInterfaceBlocks(t *testing.T, s *Sensor) {
	const idx = 1 // the loopback of every network namespace
	nsA, inoA := privateNetns(t, "")
	nsB, _ := privateNetns(t, "")
	if err := s.SetAttachBlocks([]AttachBlock{{Kind: KeyIfindex, Value: IfindexKey(inoA, idx), Rule: 0}}, []string{"no-lo-attach"}); err != nil {
		t.Fatal(err)
	}
	modes := []string{"xdp"}
	if testutils.KernelVersion(t).AtLeast(testutils.Version{Major: 6, Minor: 6}) {
		modes = append(modes, "tcx")
	}
	for _, mode := range modes {
		t.Run(mode+" in the other namespace is allowed", func(t *testing.T) {
			r := runAttacher(t, "-mode", mode, "-netns", nsB, "-iface", "lo")
			if r.killed || r.Error != "" || r.Ifindex != idx {
				t.Fatalf("bpfattach: %+v (want ifindex %d)", r, idx)
			}
			ev := opEvent(waitOps(t, s, r.PID, OpLinkCreate), OpLinkCreate, r.ProgID)
			wantDone(t, ev)
		})
		t.Run(mode+" in the blocked namespace is blocked", func(t *testing.T) {
			r := runAttacher(t, "-mode", mode, "-netns", nsA, "-iface", "lo")
			blocked := func(evs []*AttachEvent) *AttachEvent {
				for _, ev := range evs {
					if ev.Op == OpLinkCreate && ev.ProgID != 0 && ev.Result != AttachUnknown {
						return ev
					}
				}
				return nil
			}
			ev := blocked(collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool { return blocked(evs) != nil }))
			if ev == nil || ev.Verdict != VerdictBlock || ev.RuleID != "no-lo-attach" || ev.Target.NetNS != inoA {
				t.Fatalf("event %+v (attacher %+v), want a block by no-lo-attach in netns %d", ev, r, inoA)
			}
			if s.Enforcer() == EnforcerDeny {
				if r.killed || syscall.Errno(r.Errno) != syscall.EPERM {
					t.Errorf("deny: attacher %+v, want EPERM", r)
				}
			} else if !r.killed || ev.Action != ActionKilled {
				t.Errorf("kill: attacher %+v, event action %s; want killed", r, ev.Action)
			}
		})
	}
}

func pathFD(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func cgroupFD(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// cgDetach removes a program a killed caller left attached.
func cgDetach(t *testing.T, path string, id uint32) {
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
	if err != nil {
		t.Logf("detach prog %d: %v", id, err)
		return
	}
	defer p.Close()
	if err := link.RawDetachProgram(link.RawDetachProgramOptions{Target: cgroupFD(t, path), Program: p, Attach: ebpf.AttachCGroupInetIngress}); err != nil {
		t.Logf("detach prog %d: %v", id, err)
	}
}

// kprobe_multi links name their symbols (kernels with kprobes: the matrix
// VMs, where it runs on TestAttachIsReportedAndBlockedByTarget's sensor;
// this host has none).
func TestKprobeMultiAttachNamesItsSymbols(t *testing.T) {
	kprobeMultiCase(t, nil)
}

// kprobeMultiCase runs on s, or on a sensor of its own when s is nil.
func kprobeMultiCase(t *testing.T, s *Sensor) {
	if !testutils.KernelFacts(t).Kprobes {
		t.Skip("the kernel has no kprobes (CONFIG_KPROBES): no kprobe_multi")
	}
	testutils.SkipOnOldKernel(t, "5.18", "kprobe_multi links")
	// probed before a sensor starts (a start costs minutes in a VM):
	// kernels without fprobe refuse kprobe_multi links
	if r := runAttacher(t, "-mode", "kprobe_multi", "-syms", "vfs_read,vfs_write"); r.NotSupp {
		t.Skipf("the kernel refuses kprobe_multi links (no fprobe): %s", r.Error)
	}
	if s == nil {
		s = startSensor(t, Config{Mode: ModeMonitor})
	}
	r := runAttacher(t, "-mode", "kprobe_multi", "-syms", "vfs_read,vfs_write")
	if r.killed || r.Error != "" {
		t.Fatalf("bpfattach: %+v", r)
	}
	c := opEvent(waitOps(t, s, r.PID, OpLinkCreate), OpLinkCreate, r.ProgID)
	wantDone(t, c)
	if tg := resolve(c); tg.Kind != target.KindKprobeMulti || strings.Join(tg.Symbols, ",") != "vfs_read,vfs_write" {
		t.Errorf("target %+v, want kprobe_multi vfs_read,vfs_write", tg)
	}
}

// A cgroup directory named like a BPF object's file ("bpf-map",
// "bpf-prog", the names the kernel gives map and program fds) is still a
// cgroup: the attach hook tells maps and programs from other fds by the
// f_op the kernel gave the sensor's own (kallsyms lists no bpf_map_fops on
// most kernels), never by a name, so a block rule on such a cgroup holds
// and the event names the cgroup, not a map or a program.
func TestAttachToACgroupNamedLikeABPFObjectIsStillACgroup(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce})
	parent := testutils.NewCgroup(t, "attachname")
	for _, name := range []string{"bpf-map", "bpf-prog"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(parent.Path, name)
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(path) })
			var st syscall.Stat_t
			if err := syscall.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			rule := "no-attach-" + name
			if err := s.SetAttachBlocks([]AttachBlock{{Kind: KeyCgroup, Value: st.Ino, Rule: 0}}, []string{rule}); err != nil {
				t.Fatal(err)
			}
			r := runAttacher(t, "-mode", "cgroup", "-cgroup", path, "-link")
			// the attach itself, not a library's feature probe (fd -1) before it
			linkCreate := func(evs []*AttachEvent) *AttachEvent {
				for _, ev := range evs {
					if ev.Op == OpLinkCreate && ev.Target.AttachType == uint32(ebpf.AttachCGroupInetIngress) &&
						int32(ev.Target.FD) >= 0 && ev.Result != AttachUnknown {
						return ev
					}
				}
				return nil
			}
			ev := linkCreate(collectAttaches(t, s, r.PID, eventWait, func(evs []*AttachEvent) bool { return linkCreate(evs) != nil }))
			if ev == nil {
				t.Fatalf("no link_create event (attacher %+v)", r)
			}
			if ev.Target.CgroupIno != st.Ino || ev.Target.MapID != 0 || ev.Target.ProgID != 0 {
				t.Errorf("target %+v, want cgroup inode %d and no map or program", ev.Target, st.Ino)
			}
			if ev.Verdict != VerdictBlock || ev.RuleID != rule {
				t.Errorf("verdict %v rule %q, want a block by %s", ev.Verdict, ev.RuleID, rule)
			}
			switch s.Enforcer() {
			case EnforcerDeny:
				if r.killed || syscall.Errno(r.Errno) != syscall.EPERM {
					t.Errorf("deny: attacher %+v, want EPERM", r)
				}
			default:
				if !r.killed || ev.Action != ActionKilled {
					t.Errorf("kill: attacher %+v, event action %s, want killed", r, ev.Action)
				}
			}
		})
	}
}
