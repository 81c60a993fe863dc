//go:build linux && amd64

package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/inventory"
	"github.com/ebpf-sentry/ebpf-sentry/loaderrun"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// unreadablePayloadRule blocks, in enforce mode, a program loaded by an
// in-kernel loader whose instructions the sentry could not read: it cannot
// be judged, so it is refused, as --block-unreadable refuses such loads.
const unreadablePayloadRule = "unreadable-instructions"

// loaderWatcher judges what syscall programs load from inside the kernel
// (bpf_sys_bpf, the light skeleton's path). The bracket reports each
// BPF_PROG_TEST_RUN of a syscall program with its CLOCK_BOOTTIME window;
// the programs whose load time lies in it and that no hook reported are
// fetched by id and judged by run's rules. In enforce mode the caller is
// stopped at the run's exit, before it returns to user space: a block
// verdict kills it (its fds, and with them the payload's links, close),
// anything else resumes it.
type loaderWatcher struct {
	b       *loaderrun.Bracket
	ch      chan *loaderrun.Run
	enforce bool
	k       *residentKeeper
	set     func() *rules.Set
	text    io.Writer
	root    string

	// The kernel, replaced in unit tests.
	loadedBetween func(from, to uint64) ([]uint32, error)
	signal        func(pid uint32, sig unix.Signal) error
	awaitExit     func(pid uint32, within time.Duration) bool
	stillLoaded   func(id uint32) bool
}

// startLoaderWatcher attaches the bracket; without it run goes on, and
// in-kernel loads are left to reconciliation (prog_unseen), as it says.
func startLoaderWatcher(on, enforce bool, k *residentKeeper, set func() *rules.Set, text io.Writer) *loaderWatcher {
	w := newLoaderWatcher(enforce, k, set, text)
	if !on {
		slog.Info("BPF_PROG_TEST_RUN bracket off (--bracket-loaders=false): programs loaded by syscall programs are found only by reconciliation")
		return w
	}
	b, err := loaderrun.New(loaderrun.Options{Self: uint32(os.Getpid()), Stop: enforce})
	if err != nil {
		slog.Warn("BPF_PROG_TEST_RUN bracket unavailable: programs loaded by syscall programs are found only by reconciliation", "err", err)
		return w
	}
	w.b, w.ch = b, make(chan *loaderrun.Run, 256)
	slog.Info("in-kernel loads bracketed", "hook", "syscalls:sys_{enter,exit}_bpf BPF_PROG_TEST_RUN", "stop_caller", enforce)
	go func() {
		defer close(w.ch)
		for {
			r, err := b.Read()
			if err != nil {
				return
			}
			w.ch <- r
		}
	}()
	return w
}

func newLoaderWatcher(enforce bool, k *residentKeeper, set func() *rules.Set, text io.Writer) *loaderWatcher {
	return &loaderWatcher{enforce: enforce, k: k, set: set, text: text, root: "/",
		loadedBetween: inventory.LoadedBetween, signal: signalPID, awaitExit: awaitExit, stillLoaded: progLoaded}
}

func (w *loaderWatcher) events() <-chan *loaderrun.Run { return w.ch }

// receive handles one value from events(); a closed channel stops it.
func (w *loaderWatcher) receive(r *loaderrun.Run, ok bool) {
	if !ok {
		w.ch = nil
		return
	}
	w.handle(r)
}

// close stops the bracket and judges every run it recorded before that,
// as handle does while running: a caller the bracket stopped is resumed or
// killed, never left stopped behind an agent that is gone.
func (w *loaderWatcher) close() {
	if w.b == nil {
		return
	}
	if err := w.b.Finish(); err != nil {
		// The reader may not have been flushed: closing it ends the
		// reading goroutine, so the drain below cannot wait forever.
		slog.Warn("stop the BPF_PROG_TEST_RUN bracket; runs still in its ring are not judged", "err", err)
		w.b.Close()
	}
	for w.ch != nil {
		r, ok := <-w.ch // the reader goroutine ends at ErrFlushed and closes ch
		w.receive(r, ok)
	}
	w.b.Close()
}

// handle judges what one run loaded; a stopped caller is always resumed or
// killed before it returns.
func (w *loaderWatcher) handle(r *loaderrun.Run) {
	resume := r.Stopped
	defer func() {
		if resume {
			if err := w.signal(r.PID, unix.SIGCONT); err != nil {
				slog.Warn("resume the caller of a syscall program", "pid", r.PID, "err", err)
			}
		}
	}()
	failClosed := func(what string, err error) {
		slog.Error("in-kernel loads of a syscall program run not judged", "what", what, "pid", r.PID, "loader_prog_id", r.ProgID, "err", err)
		if w.enforce {
			resume = false
			if err := w.signal(r.PID, unix.SIGKILL); err != nil {
				slog.Warn("kill the caller of an unjudged syscall program run", "pid", r.PID, "err", err)
			}
		}
	}
	ids, err := w.loadedBetween(r.EnterNs, r.ExitNs)
	if err != nil {
		failClosed("list the programs loaded during the run", err)
		return
	}
	want := map[uint32]bool{}
	for _, id := range ids {
		if id != r.ProgID && !w.k.seen[id] {
			want[id] = true
		}
	}
	if len(want) == 0 {
		return
	}
	inv, err := w.k.scan(&inventory.Options{Root: w.k.root, Programs: want})
	if err != nil {
		failClosed("read the programs loaded during the run", err)
		return
	}
	loader := w.loaderOf(r)
	aopts := &analysis.Options{}
	if ks, err := readCalledKallsyms(inv); err == nil {
		aopts.Kallsyms = ks
	}
	set := w.set()
	type judged struct {
		p  *inventory.Program
		in output.ProgLoad
	}
	var all []judged
	block := false
	for i := range inv.Programs {
		p := &inv.Programs[i]
		if heldOnlyByOthers(p, r.PID) {
			// Loaded meanwhile by another process through the bpf()
			// syscall (whose hook reports it), not by this run: bpf_sys_bpf
			// installs its fds in the caller.
			continue
		}
		w.k.seen[p.ID] = true
		in := output.ProgLoad{Time: time.Now(), Outcome: output.Outcome{Result: output.ResultLoaded}}
		if p.Prog == nil {
			if p.Unreadable == inventory.UnreadableGone {
				continue // loaded and unloaded within the run: nothing to stop
			}
			in.Program = residentStub(p)
			in.Verdict = &output.Verdict{Action: "block", Rules: []output.RuleMatch{{ID: unreadablePayloadRule, Action: "block", Severity: "high",
				Why: "loaded from inside the kernel and unreadable by id: " + p.Unreadable}}}
		} else {
			p.Prog.Loader = loader
			rep, v, kf := judgeScanned(p, set, aopts)
			in.Program, in.Report, in.Verdict = p.Prog, rep, outputVerdict(v)
			ins, _ := p.Prog.Decode()
			for _, x := range ins {
				in.Disasm = append(in.Disasm, fmt.Sprintf("%d: %s", x.Index, kf.Format(x)))
			}
		}
		in.Program.Loader = loader
		if in.Verdict.Action == "block" {
			block = true
		}
		all = append(all, judged{p, in})
	}
	var resp *output.ResidentAction
	if block {
		resp = &output.ResidentAction{Action: "alert"}
		if w.enforce {
			resume = false
			progs := make([]*inventory.Program, len(all))
			for i, j := range all {
				progs[i] = j.p
			}
			resp = w.stop(r, progs, inv.Links)
		}
	}
	for _, j := range all {
		in := j.in
		if resp != nil && resp.Action == "kill" && !w.stillLoaded(j.p.ID) {
			in.Outcome.Result = output.ResultKilled
			if in.Verdict.Action == "block" {
				in.Verdict.EnforcedBy = "signal"
			}
		}
		v := output.ViaLoader{ID: r.ProgID, Tag: r.ProgTag, Name: r.ProgName}
		if in.Verdict.Action == "block" {
			v.Response = resp
		}
		ev := output.WithViaLoader(output.NewProgLoad(in, w.k.insns), v)
		// The payload carries its loader's signature and token facts (provenance issue).
		provenanceBook.Inherit(ev, v.ID, v.Tag, v.Name)
		w.k.emit(ev)
		if w.text != nil {
			fmt.Fprintln(w.text, viaLoaderLine(ev))
		}
	}
}

// heldOnlyByOthers: some process holds an fd to p, and the run's caller
// does not.
func heldOnlyByOthers(p *inventory.Program, pid uint32) bool {
	for _, h := range p.Holders {
		if h.PID == pid {
			return false
		}
	}
	return len(p.Holders) > 0
}

// stop kills the stopped caller, waits for its fds to close, then detaches
// the links of whatever the run loaded that is still loaded, and says what
// survives.
func (w *loaderWatcher) stop(r *loaderrun.Run, progs []*inventory.Program, all []inventory.Link) *output.ResidentAction {
	a := &output.ResidentAction{Action: "kill"}
	if r.PID == w.k.self || r.PID == 1 {
		a.Survives = append(a.Survives, fmt.Sprintf("pid %d (%q) is not killed", r.PID, r.Comm))
		return a
	}
	if err := w.signal(r.PID, unix.SIGKILL); err != nil {
		a.Failed = append(a.Failed, fmt.Sprintf("kill pid %d: %v", r.PID, err))
	} else {
		a.Done = append(a.Done, fmt.Sprintf("killed pid %d (%q), stopped at the end of its BPF_PROG_TEST_RUN for %s", r.PID, r.Comm, sinceBoot(r.ExitNs)))
		if !w.awaitExit(r.PID, 2*time.Second) {
			a.Failed = append(a.Failed, fmt.Sprintf("pid %d had not exited 2 s after SIGKILL", r.PID))
		}
	}
	links := map[uint32]inventory.Link{}
	for _, l := range all {
		links[l.ID] = l
	}
	for _, p := range progs {
		if !w.stillLoaded(p.ID) {
			continue
		}
		for _, id := range p.Links {
			if err := inventory.DetachLink(id); err != nil {
				a.Failed = append(a.Failed, err.Error())
				continue
			}
			a.Done = append(a.Done, fmt.Sprintf("detached link %d (%s) of prog %d", id, links[id].Target, p.ID))
		}
		for _, pin := range p.Pins {
			a.Survives = append(a.Survives, fmt.Sprintf("prog %d pinned at %s", p.ID, pin))
		}
		for _, h := range p.Holders {
			if h.PID != r.PID {
				a.Survives = append(a.Survives, fmt.Sprintf("prog %d held by pid %d (%q)", p.ID, h.PID, h.Comm))
			}
		}
		a.Survives = append(a.Survives, fmt.Sprintf("prog %d is still loaded after the kill (referenced by a map, a pin or another process)", p.ID))
	}
	return a
}

// loaderOf is the process that ran the loader, as /proc shows it while it
// is stopped; its tgid, tid and uid come from the kernel's record.
func (w *loaderWatcher) loaderOf(r *loaderrun.Run) *program.Loader {
	l := &program.Loader{PID: r.PID, TID: r.TID, UID: r.UID, Comm: r.Comm}
	proc := filepath.Join(w.root, "proc", strconv.Itoa(int(r.PID)))
	l.Exe, _ = os.Readlink(filepath.Join(proc, "exe"))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(proc, "exe"), &st); err == nil {
		l.ExeInode, l.ExeDev = st.Ino, unix.Major(st.Dev)<<20|unix.Minor(st.Dev)
	} else {
		l.Unknown = append(l.Unknown, "exe")
	}
	known := map[string]bool{}
	if f, err := os.Open(filepath.Join(proc, "status")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			fs := strings.Fields(v)
			if len(fs) == 0 {
				continue
			}
			n, err := strconv.ParseUint(fs[0], 10, 32)
			if err != nil {
				continue
			}
			switch k {
			case "PPid":
				l.PPID, known["ppid"] = uint32(n), true
			case "Gid":
				l.GID, known["gid"] = uint32(n), true
			}
		}
		f.Close()
	}
	for _, f := range []string{"ppid", "gid", "cgroup_id"} {
		if !known[f] {
			l.Unknown = append(l.Unknown, f)
		}
	}
	return l
}

// viaLoaderLine is run --format text's line for a program loaded by an
// in-kernel loader.
func viaLoaderLine(ev *output.Event) string {
	var b strings.Builder
	b.WriteString(ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteString(" prog_load")
	if v := ev.ViaLoader; v != nil {
		fmt.Fprintf(&b, " via_loader=%q(id=%d tag=%s)", v.Name, v.ID, v.Tag)
	}
	if l := ev.Loader; l != nil {
		fmt.Fprintf(&b, " loader=%q pid=%d exe=%q", l.Comm, l.PID, l.Exe)
	}
	if p := ev.Prog; p != nil {
		fmt.Fprintf(&b, " prog=%q type=%s", p.Name, p.Type.Name)
		if p.Kernel != nil {
			fmt.Fprintf(&b, " id=%d tag=%s", p.Kernel.ID, p.Kernel.Tag)
		}
	}
	if o := ev.Outcome; o != nil {
		fmt.Fprintf(&b, " outcome=%s", o.Result)
	}
	if v := ev.Verdict; v != nil && len(v.Rules) > 0 {
		ids := make([]string, len(v.Rules))
		for i, r := range v.Rules {
			ids[i] = r.ID + ":" + r.Action
		}
		fmt.Fprintf(&b, " rules=%s", strings.Join(ids, ","))
	}
	if v := ev.ViaLoader; v != nil && v.Response != nil {
		fmt.Fprintf(&b, " response=%s done=%q failed=%q survives=%q", v.Response.Action, v.Response.Done, v.Response.Failed, v.Response.Survives)
	}
	return b.String()
}

// sinceBoot is how long ago CLOCK_BOOTTIME read ns, to the millisecond.
func sinceBoot(ns uint64) time.Duration {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts) != nil || uint64(ts.Nano()) < ns {
		return 0
	}
	return (time.Duration(uint64(ts.Nano())-ns) + time.Millisecond/2).Truncate(time.Millisecond)
}

// signalPID signals a process through a pidfd (a tgid the kernel reported;
// the process is stopped, so the pid cannot have been reused unless it
// died meanwhile).
func signalPID(pid uint32, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.PidfdSendSignal(fd, sig, nil, 0)
}

// awaitExit waits until pid has exited (its fds are closed by then).
func awaitExit(pid uint32, within time.Duration) bool {
	fd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return true // gone already
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(within)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// progLoaded reports whether program id is still loaded.
func progLoaded(id uint32) bool {
	ids, err := inventory.ProgramIDs()
	return err != nil || slices.Contains(ids, id)
}
