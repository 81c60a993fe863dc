//go:build linux && amd64

package main

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// fakeReleaseWatch is a releaseWatch over fake kernel answers, with no
// exit watching.
func fakeReleaseWatch(alive map[uint32]bool, max int) *releaseWatch {
	return &releaseWatch{links: map[uint32]*releasedAttach{}, perfs: map[perfKey]*releasedAttach{}, maxTracked: max,
		linkAlive: func(id uint32) (bool, error) { return alive[id], nil },
		lost:      map[string]uint64{}, epfd: -1, wake: -1}
}

func linkAttach(op sensor.AttachOp, link, prog uint32) *sensor.AttachEvent {
	return &sensor.AttachEvent{Op: op, LinkID: link, ProgID: prog, Result: sensor.AttachDone, Caller: &program.Loader{PID: 0}, Time: time.Unix(100, 0)}
}

func TestReleaseWatchReportsEachGoneLinkOnceAndCountsWhatItCannotFollow(t *testing.T) {
	alive := map[uint32]bool{1: true, 2: true, 3: true}
	w := fakeReleaseWatch(alive, 3)
	w.track(linkAttach(sensor.OpLinkCreate, 1, 10), judged{prog: &program.Program{Name: "a", Insns: make([]byte, 80)}, facts: "load"})
	w.track(linkAttach(sensor.OpRawTPOpen, 2, 11), judged{facts: "unknown"})
	w.track(linkAttach(sensor.OpLinkCreate, 3, 12), judged{})
	w.track(linkAttach(sensor.OpLinkCreate, 4, 13), judged{}) // past the cap
	if w.lost["release_untracked"] != 1 || w.tracked() != 3 {
		t.Fatalf("cap 3, four links: tracked %d, untracked %d; want 3 and 1", w.tracked(), w.lost["release_untracked"])
	}
	if p := w.links[1].jd.prog; p == nil || p.Insns != nil || p.Name != "a" {
		t.Errorf("followed program facts: %+v; want the name kept and no instructions", p)
	}
	// link 2 ended by BPF_LINK_DETACH (reported by that call): forgotten
	w.track(linkAttach(sensor.OpLinkDetach, 2, 0), judged{})
	// a failed attach is not followed
	f := linkAttach(sensor.OpLinkCreate, 9, 14)
	f.Result = sensor.AttachFailed
	w.track(f, judged{})
	alive[1], alive[2] = false, false
	gone := w.check(time.Unix(200, 0))
	if len(gone) != 1 || gone[0].ev.LinkID != 1 {
		t.Fatalf("links 1 and 2 gone, 2 detached by a call: got %d gone, want link 1 only", len(gone))
	}
	ev, _ := releasedEvent(gone[0], time.Unix(200, 0), observedSweep)
	if ev.Event != "prog_detach" || ev.Attach.Op != "link_released" || ev.Attach.ProgID != 10 || ev.Attach.Release.DetectedWithinMS != 100000 || ev.Prog == nil {
		t.Errorf("released event: %s %+v prog %v; want prog_detach link_released prog 10 within 100000 ms with the program", ev.Event, ev.Attach, ev.Prog)
	}
	if again := w.check(time.Unix(201, 0)); len(again) != 0 {
		t.Errorf("a second check reported %d again", len(again))
	}
	// link 3 still there: the bound restarts at each check that saw it
	alive[3] = false
	gone = w.check(time.Unix(202, 0))
	if len(gone) != 1 || gone[0].lastLive != time.Unix(201, 0) {
		t.Fatalf("link 3: got %d gone, last live %v; want one, last live at the previous check", len(gone), gone)
	}
}

func TestReleaseWatchFollowsAPerfEventToItsLastHolder(t *testing.T) {
	w := fakeReleaseWatch(nil, 10)
	running := map[sensor.PerfHolder]uint32{{PID: 7, FD: 3}: 20}
	w.perfProg = func(pid uint32, fd int32) (uint32, error) {
		if id, ok := running[sensor.PerfHolder{PID: pid, FD: fd}]; ok {
			return id, nil
		}
		return 0, unix.ESRCH
	}
	w.perfHolder = func(prog uint32) (sensor.PerfHolder, bool, int) {
		for h, id := range running {
			if id == prog {
				return h, true, 0
			}
		}
		return sensor.PerfHolder{}, false, 0
	}
	ev := &sensor.AttachEvent{Op: sensor.OpPerfSetBPF, ProgID: 20, Result: sensor.AttachDone, Caller: &program.Loader{PID: 7},
		Target: sensor.RawTarget{FD: 3, PerfFound: true}, Time: time.Unix(100, 0)}
	w.track(ev, judged{})
	// the attacher exits, a child it forked still holds the perf event
	delete(running, sensor.PerfHolder{PID: 7, FD: 3})
	running[sensor.PerfHolder{PID: 8, FD: 3}] = 20
	if gone := w.check(time.Unix(101, 0)); len(gone) != 0 {
		t.Fatalf("perf event held by the child: reported gone")
	}
	delete(running, sensor.PerfHolder{PID: 8, FD: 3})
	gone := w.check(time.Unix(102, 0))
	if len(gone) != 1 {
		t.Fatalf("no holder left: %d gone, want 1", len(gone))
	}
	out, _ := releasedEvent(gone[0], time.Unix(102, 0), observedExit)
	if r := out.Attach.Release; out.Attach.Op != "perf_event_released" || r.HolderPID != 8 || r.Observed != observedExit || r.DetectedWithinMS != 1000 {
		t.Errorf("perf_event_released: %+v %+v; want holder pid 8, attacher_exit, within 1000 ms", out.Attach, r)
	}
}

// BPF_PROG_ATTACH attachments: followed by kernel identities; a reported
// BPF_PROG_DETACH or BPF_F_REPLACE forgets one; one the kernel cannot be
// asked about is counted each check and never reported gone; targets
// with no check (flow dissector) are counted, not followed.
func TestReleaseWatchFollowsProgAttachesByTargetIdentity(t *testing.T) {
	gone := map[uint32]bool{}
	unknown := map[uint32]bool{}
	w := fakeReleaseWatch(nil, 4)
	w.attached = map[progAttachKey]*releasedAttach{}
	w.progAttachState = func(_ sensor.RawTarget, prog uint32) (bool, string, error) {
		if unknown[prog] {
			return false, "", unix.EPERM
		}
		return gone[prog], "test", nil
	}
	cg := func(op sensor.AttachOp, ino uint64, prog uint32) *sensor.AttachEvent {
		ev := linkAttach(op, 0, prog)
		ev.Target = sensor.RawTarget{AttachType: 0 /* cgroup_inet_ingress */, CgroupIno: ino}
		return ev
	}
	w.track(cg(sensor.OpProgAttach, 100, 1), judged{})
	w.track(cg(sensor.OpProgAttach, 100, 2), judged{})
	w.track(cg(sensor.OpProgAttach, 200, 1), judged{}) // the same program on another cgroup
	rep := cg(sensor.OpProgAttach, 100, 3)
	rep.ReplaceProgID = 2
	w.track(rep, judged{})
	fd := linkAttach(sensor.OpProgAttach, 0, 5)
	fd.Target = sensor.RawTarget{AttachType: 17 /* flow dissector */, NetNS: 1}
	w.track(fd, judged{})
	if w.tracked() != 3 || w.lost["release_prog_attach_unchecked"] != 1 {
		t.Fatalf("tracked %d (want 3: prog 2 replaced), unchecked %d (want 1)", w.tracked(), w.lost["release_prog_attach_unchecked"])
	}
	w.track(cg(sensor.OpProgDetach, 200, 1), judged{})
	gone[1], unknown[3] = true, true
	got := w.check(time.Unix(200, 0))
	if len(got) != 1 || got[0].ev.Target.CgroupIno != 100 || got[0].ev.ProgID != 1 {
		t.Fatalf("prog 1 gone from cgroup 100 (its cgroup 200 attach detached by a call): got %d gone", len(got))
	}
	ev, _ := releasedEvent(got[0], time.Unix(200, 0), observedSweep)
	if ev.Event != "prog_detach" || ev.Attach.Op != "prog_attach_released" || !strings.Contains(ev.Attach.Note, "test") {
		t.Errorf("released event: %s %+v; want prog_detach prog_attach_released with the check's finding", ev.Event, ev.Attach)
	}
	if w.lost["release_prog_attach_unknown"] != 1 || w.tracked() != 1 {
		t.Errorf("prog 3 not checkable: unknown %d (want 1), tracked %d (want 1)", w.lost["release_prog_attach_unknown"], w.tracked())
	}
	// counted once while it stays uncheckable, again after a good check
	w.check(time.Unix(201, 0))
	if w.lost["release_prog_attach_unknown"] != 1 {
		t.Errorf("a second failed check counted again: %d", w.lost["release_prog_attach_unknown"])
	}
	unknown[3] = false
	w.check(time.Unix(202, 0))
	unknown[3] = true
	w.check(time.Unix(203, 0))
	if w.lost["release_prog_attach_unknown"] != 2 || w.tracked() != 1 {
		t.Errorf("uncheckable, checked, uncheckable: unknown %d (want 2), tracked %d (want 1)", w.lost["release_prog_attach_unknown"], w.tracked())
	}
}
