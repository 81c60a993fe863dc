//go:build linux && amd64

package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
	"github.com/ebpf-sentry/ebpf-sentry/cbpf/capture"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// cbpfMagicRule is the built-in rule for classic filters: a packet or raw
// socket filtered on magic values past the transport header (a BPFDoor-style
// trigger) by a process that is not a known packet tool.
const cbpfMagicRule = "default-cbpf-magic-filter"

// defaultPacketTools are the executables allowed to filter on payload
// bytes; they are matched by device and inode, never by name.
var defaultPacketTools = []string{
	"/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/usr/bin/tshark", "/usr/bin/dumpcap",
	"/usr/sbin/dhclient", "/sbin/dhclient", "/usr/sbin/dhcpcd", "/usr/lib/systemd/systemd-networkd",
	"/usr/sbin/wpa_supplicant", "/usr/bin/arping", "/usr/sbin/arping", "/usr/sbin/lldpd",
}

type exeID struct{ dev, ino uint64 }

// cbpfWatcher turns the setsockopt hook's records into cbpf_attach events.
type cbpfWatcher struct {
	c       *capture.Capture
	ch      chan *capture.Attach
	tools   map[exeID]string
	enforce bool
	emit    func(*output.Event)
	text    io.Writer
	root    string
	// rules is run's rule set: its cbpf rules judge each filter beside the
	// built-in magic-filter rule (nil: the built-in rule only).
	rules func() *rules.Set
}

// startCbpfWatcher attaches the hook; on kernels without it run goes on
// without classic-BPF capture, and says so.
func startCbpfWatcher(enforce bool, emit func(*output.Event), text io.Writer) *cbpfWatcher {
	w := &cbpfWatcher{tools: map[exeID]string{}, enforce: enforce, emit: emit, text: text, root: "/"}
	for _, p := range defaultPacketTools {
		var st syscall.Stat_t
		if syscall.Stat(p, &st) == nil {
			w.tools[exeID{uint64(st.Dev), st.Ino}] = p
		}
	}
	c, err := capture.New()
	if err != nil {
		slog.Warn("classic BPF capture unavailable: socket filters are not watched", "err", err)
		return w
	}
	w.c, w.ch = c, make(chan *capture.Attach, 256)
	slog.Info("classic BPF capture running", "hook", "syscalls:sys_enter_setsockopt", "packet_tools", len(w.tools))
	go func() {
		defer close(w.ch)
		for {
			a, err := c.Read()
			if err != nil {
				return
			}
			w.ch <- a
		}
	}()
	return w
}

func (w *cbpfWatcher) events() <-chan *capture.Attach { return w.ch }

// receive handles one value from events(); a closed channel stops it.
func (w *cbpfWatcher) receive(a *capture.Attach, ok bool) {
	if !ok {
		w.ch = nil
		return
	}
	w.handle(a)
}

func (w *cbpfWatcher) close() {
	if w.c != nil {
		w.c.Close()
	}
}

var optionNames = map[int32]string{capture.SOAttachFilter: "SO_ATTACH_FILTER", capture.SOAttachReuseportCBPF: "SO_ATTACH_REUSEPORT_CBPF", capture.SOAttachBPF: "SO_ATTACH_BPF"}

// handle judges one attach and reports it; a block kills the process.
func (w *cbpfWatcher) handle(a *capture.Attach) {
	proc := filepath.Join(w.root, "proc", strconv.Itoa(int(a.PID)))
	uid := a.UID
	// The setsockopt hook records no parent or group.
	l := output.Loader{PID: a.PID, TID: a.TID, UID: &uid, Comm: a.Comm, Unknown: []string{"ppid", "gid"}}
	l.Exe, _ = os.Readlink(filepath.Join(proc, "exe"))
	var id exeID
	var st syscall.Stat_t
	haveID := syscall.Stat(filepath.Join(proc, "exe"), &st) == nil
	if haveID {
		id = exeID{uint64(st.Dev), st.Ino}
	}
	c := output.Cbpf{Option: optionNames[a.Optname], FD: a.FD, Len: a.Len, Problem: a.Problem, Socket: socketKind(proc, a.FD)}
	v := &output.Verdict{Action: "allow", Rules: []output.RuleMatch{}}
	_, tool := w.tools[id]
	if len(a.Insns) > 0 {
		an := cbpf.Analyze(a.Insns)
		c.Ports = an.Ports
		for _, m := range an.Magic {
			c.Magic = append(c.Magic, output.CbpfCompare{Insn: m.Insn, Load: m.Load, Size: m.Size, Op: m.Op, Value: m.Value})
		}
		c.Disassembly = strings.Split(strings.TrimSuffix(cbpf.Disassemble(a.Insns), "\n"), "\n")
		if len(an.Magic) > 0 && c.Socket != "other" && !(haveID && tool) {
			v.Action = "block"
			v.Rules = append(v.Rules, output.RuleMatch{ID: cbpfMagicRule, Action: "block", Severity: "high",
				Why: fmt.Sprintf("%s socket filtered on %d magic values by an executable that is not a known packet tool", socketOr(c.Socket), len(an.Magic))})
		}
	}
	w.judgeByRules(v, a, &c, &l, st, haveID)
	if v.Action == "block" && w.enforce {
		if err := killIdentified(a.PID, proc, id, haveID); err != nil {
			slog.Warn("cbpf: kill", "pid", a.PID, "err", err)
		} else {
			v.EnforcedBy = "signal"
		}
	}
	ev := output.NewCbpfAttach(time.Now(), l, c, v)
	w.emit(ev)
	if w.text != nil {
		line := fmt.Sprintf("%s cbpf_attach loader=%q pid=%d exe=%q option=%s fd=%d socket=%s len=%d ports=%v magic=%d",
			ev.Time.UTC().Format("2006-01-02T15:04:05.000Z"), a.Comm, a.PID, l.Exe, c.Option, a.FD, socketOr(c.Socket), a.Len, c.Ports, len(c.Magic))
		if c.Problem != "" {
			line += fmt.Sprintf(" problem=%q", c.Problem)
		}
		for _, r := range v.Rules {
			line += " rules=" + r.ID + ":" + r.Action
		}
		if v.EnforcedBy != "" {
			line += " action=killed"
		}
		fmt.Fprintln(w.text, line)
	}
}

// judgeByRules adds the hits of run's cbpf rules to v (YAML rules with a
// cbpf match: ports, magic values, socket type, option, and the loader's
// exe, exe identity and uid).
func (w *cbpfWatcher) judgeByRules(v *output.Verdict, a *capture.Attach, c *output.Cbpf, l *output.Loader, st syscall.Stat_t, haveID bool) {
	if w.rules == nil {
		return
	}
	f := &rules.Cbpf{Option: c.Option, Socket: c.Socket, Ports: c.Ports}
	for _, m := range c.Magic {
		f.Magic = append(f.Magic, m.Value)
	}
	loader := &program.Loader{PID: a.PID, TID: a.TID, UID: a.UID, Comm: a.Comm, Exe: l.Exe, Unknown: []string{"ppid", "gid", "cgroup_id"}}
	if haveID {
		loader.ExeInode, loader.ExeDev = st.Ino, unix.Major(st.Dev)<<20|unix.Minor(st.Dev)
	} else {
		loader.Unknown = append(loader.Unknown, "exe")
	}
	rv := rules.EvaluateCbpf(w.rules(), f, loader)
	if rv.Action == rules.ActionBlock {
		v.Action = "block"
	} else if rv.Action == rules.ActionAlert && v.Action == "allow" {
		v.Action = "alert"
	}
	for _, h := range rv.Hits {
		why := make([]string, len(h.Why))
		for i, r := range h.Why {
			why[i] = r.String()
		}
		v.Rules = append(v.Rules, output.RuleMatch{ID: h.ID, Action: h.Action.String(), Severity: h.Severity.String(), Tags: h.Tags, Why: strings.Join(why, "; ")})
	}
}

func socketOr(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// killIdentified SIGKILLs pid through a pidfd, after checking that the
// process still runs the executable that was judged.
func killIdentified(pid uint32, proc string, id exeID, haveID bool) error {
	pidfd, err := unix.PidfdOpen(int(pid), 0)
	if err != nil {
		return err
	}
	defer unix.Close(pidfd)
	var st syscall.Stat_t
	if haveID {
		if err := syscall.Stat(filepath.Join(proc, "exe"), &st); err != nil || (exeID{uint64(st.Dev), st.Ino}) != id {
			return fmt.Errorf("pid %d no longer runs the judged executable", pid)
		}
	}
	return unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
}

// socketKind says whether fd of the process is a packet or raw socket
// (from its net namespace's /proc tables), "other", or "" when unknown.
func socketKind(proc string, fd int32) string {
	target, err := os.Readlink(filepath.Join(proc, "fd", strconv.Itoa(int(fd))))
	if err != nil || !strings.HasPrefix(target, "socket:[") {
		return ""
	}
	ino := strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")
	for _, t := range []struct {
		file, kind string
		col        int
	}{
		{"packet", "packet", 8}, {"raw", "raw", 9}, {"raw6", "raw", 9},
	} {
		f, err := os.Open(filepath.Join(proc, "net", t.file))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) > t.col && fs[t.col] == ino {
				f.Close()
				return t.kind
			}
		}
		f.Close()
	}
	return "other"
}
