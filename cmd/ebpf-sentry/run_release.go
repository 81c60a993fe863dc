//go:build linux && amd64

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// Releases: a link goes when its last fd closes, and a perf event stops
// running its program when its last fd closes (the attacher exits, as
// bpftrace and opensnoop do when stopped). No bpf() call ends them and the
// kernel has no tracepoint for either release, so the agent checks what it
// reported attached: by id, when the attacher exits (a pidfd says so) and
// on a timer; what is gone gets its prog_detach (link_released,
// perf_event_released) with the bound on how late it was seen.

const (
	// maxReleaseTracked bounds the attachments followed (about 1 KB
	// each): past it a new attach is counted (loss release_untracked)
	// and will get no prog_detach when it goes.
	maxReleaseTracked = 8192
	// maxReleaseExitWatched bounds the pidfds held on attachers: past
	// it an attacher's exit is counted (release_exit_unwatched) and its
	// attachments are seen gone by the timer only.
	maxReleaseExitWatched = 1024
	// releaseCatchUp bounds the wait for the sensor's reader before a
	// check, so that a BPF_LINK_DETACH made before the link went is
	// handled (and its link forgotten) first.
	releaseCatchUp = 200 * time.Millisecond
)

// Observed values of attach.release.
const (
	observedExit  = "attacher_exit"
	observedSweep = "sweep"
)

// releasedAttach is one attachment reported attached and followed until
// it goes.
type releasedAttach struct {
	ev       sensor.AttachEvent // the attach as reported
	jd       judged             // its target and program facts (no instructions)
	lastLive time.Time          // the last check (or the attach) that saw it
	holder   sensor.PerfHolder  // perf: the fd last seen running the program
	how      string             // prog_attach: how it was found gone
	// unknown: prog_attach: the last check could not ask the kernel
	// (counted once until a check succeeds again)
	unknown bool
}

// progAttachKey names a BPF_PROG_ATTACH attachment by kernel identities:
// the target's (cgroup id, map id, or ifindex and network namespace
// inode), the attach type and the program id. Never a path or a name: a
// cgroup made again at the same path has a new id.
type progAttachKey struct {
	kind       int
	target     uint64
	netns      uint32
	attachType uint32
	prog       uint32
}

func progAttachKeyOf(ev *sensor.AttachEvent, prog uint32) (progAttachKey, bool) {
	t := ev.Target
	k := progAttachKey{kind: sensor.ProgAttachKind(t), attachType: t.AttachType, prog: prog}
	switch k.kind {
	case sensor.ProgAttachCgroup:
		k.target = t.CgroupIno
	case sensor.ProgAttachSockMap:
		k.target = uint64(t.MapID)
	case sensor.ProgAttachTCX:
		k.target, k.netns = uint64(t.FD), t.NetNS
	default:
		return k, false
	}
	return k, true
}

type perfKey struct {
	pid  uint32
	fd   int32
	prog uint32
}

// releaseWatch follows the links and perf attachments `run` reported.
// Its maps belong to the agent's main goroutine; the pidfd goroutine only
// touches pidfds (under mu) and the exited channel.
type releaseWatch struct {
	links    map[uint32]*releasedAttach
	perfs    map[perfKey]*releasedAttach
	attached map[progAttachKey]*releasedAttach // BPF_PROG_ATTACH

	// progAttachState asks the kernel whether a BPF_PROG_ATTACH
	// attachment is still there (sensor.ProgAttachState).
	progAttachState func(t sensor.RawTarget, prog uint32) (gone bool, how string, err error)

	// linkAlive says whether link id still exists (BPF_LINK_GET_FD_BY_ID);
	// perfProg and perfHolder query perf events (BPF_TASK_FD_QUERY).
	linkAlive func(id uint32) (bool, error)
	// nextLink walks the host's link ids in order (BPF_LINK_GET_NEXT_ID):
	// no fd made per link, much cheaper than linkAlive (BenchmarkReleaseCheck).
	nextLink func(after uint32) (uint32, error)
	// hostLinks: the links the last walk stepped over (all of the host's
	// when it finished); checks is the count of checks, to retry the walk.
	hostLinks, checks, walkedSteps int
	perfProg                       func(pid uint32, fd int32) (uint32, error)
	perfHolder                     func(prog uint32) (sensor.PerfHolder, bool, int)
	maxTracked                     int

	// lost counts by loss reason, reported through the pipeline's
	// capture losses by takeLosses.
	lost map[string]uint64

	mu     sync.Mutex
	pidfds map[uint32]int // attacher tgid → pidfd
	byFD   map[int32]uint32
	epfd   int
	wake   int // eventfd: ends the pidfd loop
	exited chan struct{}
	done   chan struct{}
}

func newReleaseWatch() *releaseWatch {
	w := &releaseWatch{links: map[uint32]*releasedAttach{}, perfs: map[perfKey]*releasedAttach{},
		attached: map[progAttachKey]*releasedAttach{}, progAttachState: sensor.ProgAttachState,
		linkAlive: linkExists, nextLink: nextLinkID, perfProg: sensor.PerfEventProg, perfHolder: sensor.PerfHolderOf, maxTracked: maxReleaseTracked,
		lost: map[string]uint64{}, pidfds: map[uint32]int{}, byFD: map[int32]uint32{}, epfd: -1, wake: -1,
		exited: make(chan struct{}, 1), done: make(chan struct{})}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		slog.Warn("attacher exits not watched: released links are found by the timer only", "err", err)
		close(w.done)
		return w
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		slog.Warn("attacher exits not watched: released links are found by the timer only", "err", err)
		close(w.done)
		return w
	}
	unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)})
	w.epfd, w.wake = epfd, wake
	go w.watchExits()
	return w
}

// linkExists is BPF_LINK_GET_FD_BY_ID on id: ENOENT, the link is gone.
// Link ids are allocated cyclically, so a gone id is not reused before
// the 31-bit space wraps.
func linkExists(id uint32) (bool, error) {
	attr := struct{ id, next, flags uint32 }{id: id}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_GET_FD_BY_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	switch {
	case errno == unix.ENOENT:
		return false, nil
	case errno != 0:
		return true, fmt.Errorf("link %d: %w", id, errno)
	}
	unix.Close(int(fd))
	return true, nil
}

// nextLinkID is BPF_LINK_GET_NEXT_ID: the lowest link id above after;
// ENOENT past the last.
func nextLinkID(after uint32) (uint32, error) {
	attr := struct{ start, next, flags uint32 }{start: after}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_GET_NEXT_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return 0, errno
	}
	return attr.next, nil
}

// walkLinks marks which followed links the host's link ids still hold,
// walking them in order for at most budget steps: walked is the last id
// looked at (every followed id up to it is decided), 0 on error.
func (w *releaseWatch) walkLinks(budget int) (live map[uint32]bool, walked uint32) {
	live = make(map[uint32]bool, len(w.links))
	id := uint32(0)
	w.walkedSteps = 0
	for range budget {
		next, err := w.nextLink(id)
		w.walkedSteps++
		if errors.Is(err, unix.ENOENT) {
			return live, ^uint32(0)
		}
		if err != nil {
			slog.Debug("released links: walk", "after", id, "err", err)
			return live, id
		}
		id = next
		if _, ok := w.links[id]; ok {
			live[id] = true
		}
	}
	return live, id
}

// Exited delivers a value when a watched attacher has exited.
func (w *releaseWatch) Exited() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.exited
}

// track follows an attach the agent just reported, and forgets the links
// a BPF_LINK_DETACH ended (already reported: one detach per attach).
func (w *releaseWatch) track(ev *sensor.AttachEvent, jd judged) {
	if w == nil || ev.Result != sensor.AttachDone || ev.Caller == nil {
		return
	}
	switch ev.Op {
	case sensor.OpLinkDetach:
		delete(w.links, ev.LinkID)
		return
	case sensor.OpLinkUpdate:
		if t := w.links[ev.LinkID]; t != nil && ev.ProgID != 0 {
			t.ev.ProgID, t.jd.prog, t.jd.facts = ev.ProgID, factsOnly(jd.prog), jd.facts
		}
		return
	case sensor.OpLinkCreate, sensor.OpRawTPOpen:
		if ev.LinkID == 0 {
			return
		}
	case sensor.OpPerfSetBPF:
		if ev.ProgID == 0 || !ev.Target.PerfFound {
			return
		}
	case sensor.OpProgDetach:
		w.forgetDetached(ev)
		return
	case sensor.OpProgAttach:
		// outlives its caller (no exit watched): followed until its
		// target no longer holds it
		w.trackProgAttach(ev, jd)
		return
	default:
		return
	}
	if w.tracked() >= w.maxTracked {
		w.lost["release_untracked"]++
		return
	}
	t := &releasedAttach{ev: *ev, jd: jd, lastLive: ev.Time}
	t.jd.prog, t.jd.rep, t.jd.verdict = factsOnly(jd.prog), nil, rules.Verdict{}
	if ev.Op == sensor.OpPerfSetBPF {
		t.holder = sensor.PerfHolder{PID: ev.Caller.PID, FD: int32(ev.Target.FD)}
		w.perfs[perfKey{ev.Caller.PID, int32(ev.Target.FD), ev.ProgID}] = t
	} else {
		w.links[ev.LinkID] = t
	}
	w.watchExit(ev.Caller.PID)
}

func (w *releaseWatch) trackProgAttach(ev *sensor.AttachEvent, jd judged) {
	if ev.ProgID == 0 || w.attached == nil {
		return
	}
	if ev.ReplaceProgID != 0 { // BPF_F_REPLACE: that call's event says so
		if old, ok := progAttachKeyOf(ev, ev.ReplaceProgID); ok {
			delete(w.attached, old)
		}
	}
	k, ok := progAttachKeyOf(ev, ev.ProgID)
	if !ok {
		w.lost["release_prog_attach_unchecked"]++
		return
	}
	if _, ok := w.attached[k]; ok {
		return // attached again (flags changed): one attachment
	}
	if w.tracked() >= w.maxTracked {
		w.lost["release_untracked"]++
		return
	}
	t := &releasedAttach{ev: *ev, jd: jd, lastLive: ev.Time}
	t.jd.prog, t.jd.rep, t.jd.verdict = factsOnly(jd.prog), nil, rules.Verdict{}
	w.attached[k] = t
}

// forgetDetached drops what a reported BPF_PROG_DETACH ended: that
// program, or (no program given: a cgroup's single program, a sockmap's)
// every program on the target with that attach type.
func (w *releaseWatch) forgetDetached(ev *sensor.AttachEvent) {
	k, ok := progAttachKeyOf(ev, ev.ProgID)
	if !ok {
		return
	}
	if ev.ProgID != 0 {
		delete(w.attached, k)
		return
	}
	for o := range w.attached {
		if o.kind == k.kind && o.target == k.target && o.netns == k.netns && o.attachType == k.attachType {
			delete(w.attached, o)
		}
	}
}

// factsOnly is the program's facts without what only the analysis needs
// (instructions, references, data sections): what a prog_detach shows,
// kept while the attachment lives.
func factsOnly(p *program.Program) *program.Program {
	if p == nil {
		return nil
	}
	c := *p
	c.Insns, c.Refs, c.Data = nil, nil, nil
	return &c
}

// watchExit opens a pidfd on the attacher: it becomes readable when the
// process has exited, after its fds were closed (and its links released).
func (w *releaseWatch) watchExit(pid uint32) {
	if w.epfd < 0 || pid == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.pidfds[pid]; ok {
		return
	}
	if len(w.pidfds) >= maxReleaseExitWatched {
		w.lost["release_exit_unwatched"]++
		return
	}
	fd, err := unix.PidfdOpen(int(pid), unix.PIDFD_NONBLOCK)
	if err != nil {
		// gone already (ESRCH): check now rather than at the next tick
		w.signalExit()
		return
	}
	w.pidfds[pid], w.byFD[int32(fd)] = fd, pid
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		delete(w.pidfds, pid)
		delete(w.byFD, int32(fd))
		unix.Close(fd)
		w.lost["release_exit_unwatched"]++
	}
}

func (w *releaseWatch) signalExit() {
	select {
	case w.exited <- struct{}{}:
	default: // a check is pending: it covers this exit too
	}
}

func (w *releaseWatch) watchExits() {
	defer close(w.done)
	evs := make([]unix.EpollEvent, 32)
	for {
		n, err := unix.EpollWait(w.epfd, evs, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			slog.Warn("attacher exits: epoll", "err", err)
			return
		}
		ended := false
		w.mu.Lock()
		for _, e := range evs[:n] {
			if int(e.Fd) == w.wake {
				w.mu.Unlock()
				return
			}
			if pid, ok := w.byFD[e.Fd]; ok {
				unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, int(e.Fd), nil)
				unix.Close(int(e.Fd))
				delete(w.byFD, e.Fd)
				delete(w.pidfds, pid)
				ended = true
			}
		}
		w.mu.Unlock()
		if ended {
			w.signalExit()
		}
	}
}

func (w *releaseWatch) close() {
	if w == nil || w.epfd < 0 {
		return
	}
	var one [8]byte
	one[0] = 1
	unix.Write(w.wake, one[:])
	<-w.done
	w.mu.Lock()
	for _, fd := range w.pidfds {
		unix.Close(fd)
	}
	w.pidfds, w.byFD = map[uint32]int{}, map[int32]uint32{}
	w.mu.Unlock()
	unix.Close(w.epfd)
	unix.Close(w.wake)
	w.epfd = -1
}

// check finds the followed attachments that are gone, forgets them and
// returns them with the release filled in. A link or perf event whose
// state cannot be read is kept (and logged), never reported gone.
func (w *releaseWatch) check(now time.Time) []*releasedAttach {
	if w == nil {
		return nil
	}
	var gone []*releasedAttach
	// One walk of the host's link ids decides the followed links up to
	// where it stopped (a host with far more links than followed ones
	// stops it early); the rest are checked one by one by id.
	// A walk step costs about a quarter of a check by id (an fd made and
	// closed; BenchmarkReleaseCheck): walk while the host has at most four
	// links per followed one, and look again every 32nd check.
	var live map[uint32]bool
	var walked uint32
	w.checks++
	if n := len(w.links); n > 0 && w.nextLink != nil && (w.hostLinks <= 4*n || w.checks%32 == 0) {
		budget := 4*n + 64
		live, walked = w.walkLinks(budget)
		w.hostLinks = budget + 1
		if walked == ^uint32(0) {
			w.hostLinks = w.walkedSteps
		}
	}
	for id, t := range w.links {
		var alive bool
		if id <= walked {
			alive = live[id]
		} else {
			var err error
			if alive, err = w.linkAlive(id); err != nil {
				slog.Debug("released links: check", "link_id", id, "err", err)
			}
		}
		if alive {
			t.lastLive = now
			continue
		}
		delete(w.links, id)
		gone = append(gone, t)
	}
	for k, t := range w.perfs {
		if id, err := w.perfProg(t.holder.PID, t.holder.FD); err == nil && id == k.prog {
			t.lastLive = now
			continue
		}
		// The fd last seen running it no longer does: another copy of
		// the perf event (fork, SCM_RIGHTS, pidfd_getfd) keeps it
		// attached; a walk of every fd table finds one.
		h, found, unreadable := w.perfHolder(k.prog)
		if found {
			t.holder, t.lastLive = h, now
			continue
		}
		if unreadable > 0 {
			slog.Debug("perf attachments: fds not queried", "prog_id", k.prog, "unreadable", unreadable)
			continue
		}
		delete(w.perfs, k)
		gone = append(gone, t)
	}
	for k, t := range w.attached {
		isGone, how, err := w.progAttachState(t.ev.Target, k.prog)
		if err != nil {
			// not known: kept, never reported gone; counted once per
			// stretch of failed checks (a kernel without BPF_PROG_QUERY on a
			// sockmap: EINVAL; the map's going is still seen)
			if !t.unknown {
				w.lost["release_prog_attach_unknown"]++
			}
			t.unknown = true
			slog.Debug("prog_attach attachments: check", "prog_id", k.prog, "attach_type", k.attachType, "err", err)
			continue
		}
		t.unknown = false
		if !isGone {
			t.lastLive = now
			continue
		}
		t.how = how
		delete(w.attached, k)
		gone = append(gone, t)
	}
	return gone
}

// tracked is how many attachments are followed.
func (w *releaseWatch) tracked() int {
	if w == nil {
		return 0
	}
	return len(w.links) + len(w.perfs) + len(w.attached)
}

// takeLosses reports (and resets) what could not be followed.
func (w *releaseWatch) takeLosses(tel *telemetry) {
	if w == nil {
		return
	}
	for k, v := range w.lost {
		if v > 0 {
			tel.Pipeline.CaptureLoss(k, v)
			slog.Warn("released attachments not followed", "reason", k, "count", v)
		}
	}
	clear(w.lost)
}

// releasedEvent is the prog_detach of an attachment found gone: the
// original attacher as loader, the original target and program facts.
func releasedEvent(t *releasedAttach, now time.Time, observed string) (*output.Event, *sensor.AttachEvent) {
	ev := t.ev
	ev.Time = now
	ev.Op = sensor.OpLinkReleased
	switch t.ev.Op {
	case sensor.OpPerfSetBPF:
		ev.Op = sensor.OpPerfReleased
	case sensor.OpProgAttach:
		ev.Op = sensor.OpProgAttachReleased
	}
	ev.Result, ev.Errno, ev.Undo, ev.AfterTheFact = sensor.AttachDone, 0, nil, false
	ev.Verdict, ev.Action, ev.RuleIndex, ev.RuleID = sensor.VerdictAllow, sensor.ActionNone, -1, ""
	out := attachEvent(&ev, t.jd)
	within := now.Sub(t.lastLive)
	if within < 0 {
		within = 0
	}
	out.Attach.Release = &output.AttachRelease{Observed: observed, DetectedWithinMS: within.Milliseconds()}
	switch ev.Op {
	case sensor.OpPerfReleased:
		out.Attach.Release.HolderPID, out.Attach.Release.HolderFD = t.holder.PID, t.holder.FD
		out.Attach.Note = "no process holds a perf event running this program any more (its last fd closed); the kernel has no hook for that: found by checking the attacher's fd and every fd table"
	case sensor.OpProgAttachReleased:
		out.Attach.Note = "the BPF_PROG_ATTACH attachment is gone without a BPF_PROG_DETACH the sentry reported: " + t.how
	default:
		out.Attach.Note = "the link's last fd closed (no BPF_LINK_DETACH; e.g. the attacher exited); the kernel has no hook for that: found gone by id"
	}
	return out, &ev
}

// reportReleased checks the followed attachments and reports those gone.
func (j *attachJudge) reportReleased(w io.Writer, o *runOptions, tel *telemetry, observed string) {
	now := time.Now()
	for _, t := range j.release.check(now) {
		out, ev := releasedEvent(t, now, observed)
		tel.Pipeline.Emit(out)
		if o.format == "text" {
			fmt.Fprintf(w, "%s observed=%s within=%dms\n", attachLine(ev, t.jd), observed, out.Attach.Release.DetectedWithinMS)
		}
	}
	j.release.takeLosses(tel)
}
