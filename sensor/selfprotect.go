package sensor

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AccessAttempt is a bpf() call of another process on the sentry's own BPF
// objects that could change or stop it (bpf/include/selfprotect.h): a
// writable fd on one of its maps, an update or delete of their elements, a
// detach or update of one of its links. In enforce mode the caller was
// killed (syscall hooks) or refused (LSM hooks) before the call ran.
type AccessAttempt struct {
	PID, TID, UID uint32
	Comm          string // as the caller set it: reported, never trusted
	Command       string // the bpf() command, e.g. BPF_MAP_GET_FD_BY_ID
	Object        string // "map", "prog" or "link"
	ObjectID      uint32
	Action        Action // ActionKilled, ActionDenied, ActionMonitor or ActionKillFailed
}

func (a AccessAttempt) String() string {
	if a.Signal() {
		what := a.Action.String()
		if a.Action == ActionNone {
			what = "seen, not stoppable by a syscall hook"
		}
		return fmt.Sprintf("%s to the sentry's agent (pid %d) by pid %d (uid %d): %s", a.Command, a.ObjectID, a.PID, a.UID, what)
	}
	return fmt.Sprintf("%s on the sentry's %s %d by pid %d (uid %d): %s", a.Command, a.Object, a.ObjectID, a.PID, a.UID, a.Action)
}

// Signal says whether the attempt is a signal to the agent (Command is the
// signal's name, ObjectID the agent's pid) rather than a bpf() call.
func (a AccessAttempt) Signal() bool { return a.Object == "agent" }

// AccessAttempts delivers every AccessAttempt; closed after Close. Attempts
// nobody reads are dropped and counted (access_attempt_dropped).
func (s *Sensor) AccessAttempts() <-chan AccessAttempt { return s.attempts }

var objNames = map[uint32]string{
	uint32(sentrySentryObjSENTRY_OBJ_MAP): "map", uint32(sentrySentryObjSENTRY_OBJ_PROG): "prog",
	uint32(sentrySentryObjSENTRY_OBJ_LINK): "link", uint32(sentrySentryObjSENTRY_OBJ_AGENT): "agent",
}

func accessAttempt(t *sentrySentryTamper) AccessAttempt {
	cmd := fmt.Sprintf("bpf command %d", t.Cmd)
	switch {
	case t.ObjKind == uint32(sentrySentryObjSENTRY_OBJ_AGENT): // a signal
		cmd = fmt.Sprintf("signal %d", t.Cmd)
		if n := unix.SignalName(syscall.Signal(t.Cmd)); n != "" {
			cmd = n
		}
	case int(t.Cmd) < len(bpfCmdNames): // enum bpf_cmd (token.go)
		cmd = "BPF_" + strings.ToUpper(bpfCmdNames[t.Cmd])
	}
	obj, ok := objNames[t.ObjKind]
	if !ok {
		obj = fmt.Sprintf("object kind %d", t.ObjKind)
	}
	return AccessAttempt{PID: t.H.Pid, TID: t.Tid, UID: t.Uid, Comm: cString(t.Comm[:]), Command: cmd,
		Object: obj, ObjectID: t.ObjId, Action: Action(t.Action)}
}

var tamperSize = binary.Size(sentrySentryTamper{})

// deliverAttempt never blocks the ring reader: an attempt nobody takes
// is counted.
func (s *Sensor) deliverAttempt(a AccessAttempt) {
	select {
	case s.attempts <- a:
	default:
		s.mu.Lock()
		s.userLost["access_attempt_dropped"]++
		s.mu.Unlock()
	}
}

// attachGuards attaches the LSM guard programs (LSM hooks only; the
// syscall hooks guard in their enter program), before anything is staged.
func (s *Sensor) attachGuards() error {
	for _, name := range []string{sentryProgSentryLsmGuard, sentryProgSentryLsmGuardMap, sentryProgSentryLsmGuardKill} {
		p := s.coll.Programs[name]
		if p == nil {
			return fmt.Errorf("no %s program", name)
		}
		l, err := link.AttachLSM(link.LSMOptions{Program: p})
		if err != nil {
			return fmt.Errorf("attach %s: %w", name, err)
		}
		s.links = append(s.links, l)
	}
	return nil
}

// recordOwnIDs tells the kernel side the ids of the sentry's programs and
// links (its maps it knows by itself), so that detaching or updating its
// links is guarded.
func (s *Sensor) recordOwnIDs() error {
	m := s.coll.Maps[sentryMapOwnIds]
	put := func(kind sentrySentryObj, id uint32) error {
		k := sentrySentryOwnKey{Kind: uint32(kind), Id: id}
		if err := m.Put(&k, uint32(1)); err != nil {
			return fmt.Errorf("record the sentry's own %s %d: %w", objNames[uint32(kind)], id, err)
		}
		return nil
	}
	for _, p := range s.coll.Programs {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				if err := put(sentrySentryObjSENTRY_OBJ_PROG, uint32(id)); err != nil {
					return err
				}
			}
		}
	}
	for _, l := range s.links {
		if info, err := l.Info(); err == nil {
			if err := put(sentrySentryObjSENTRY_OBJ_LINK, uint32(info.ID)); err != nil {
				return err
			}
		}
	}
	return nil
}

// signalWatch are the syscall tracepoints that report signals to the agent
// where no LSM hook can refuse them.
var signalWatch = []struct{ prog, tracepoint string }{
	{sentryProgSentrySignalKill, "sys_enter_kill"},
	{sentryProgSentrySignalTgkill, "sys_enter_tgkill"},
	{sentryProgSentrySignalTkill, "sys_enter_tkill"},
	{sentryProgSentrySignalSigqueue, "sys_enter_rt_sigqueueinfo"},
	{sentryProgSentrySignalTgsigqueue, "sys_enter_rt_tgsigqueueinfo"},
}

// guardPrograms are loaded with the sensor: the LSM guards on LSM hooks,
// the signal watch on the others.
func guardPrograms(spec *ebpf.CollectionSpec, lsm bool) map[string]bool {
	keep := map[string]bool{}
	names := []string{sentryProgSentryLsmGuard, sentryProgSentryLsmGuardMap, sentryProgSentryLsmGuardKill}
	if !lsm {
		names = names[:0]
		for _, w := range signalWatch {
			names = append(names, w.prog)
		}
	}
	for _, name := range names {
		if spec.Programs[name] != nil {
			keep[name] = true
		}
	}
	return keep
}

// attachSignalWatch attaches the signal tracepoints, best-effort (a kernel
// without syscall tracepoints or perf links still judges loads), and says
// what it covers for Signals.
func (s *Sensor) attachSignalWatch() string {
	var missing []string
	bare := 0
	for _, w := range signalWatch {
		p := s.coll.Programs[w.prog]
		if p == nil {
			missing = append(missing, w.tracepoint)
			continue
		}
		l, err := link.Tracepoint("syscalls", w.tracepoint, p, nil)
		if err != nil {
			missing = append(missing, w.tracepoint)
			continue
		}
		if _, err := l.Info(); err != nil {
			// a bare perf event (before 5.15): Health could not tell it
			// is still attached
			l.Close()
			missing = append(missing, w.tracepoint)
			bare++
			continue
		}
		// not pinned: the report needs the agent that reads it
		s.attachLinks = append(s.attachLinks, l)
	}
	if bare == len(signalWatch) {
		return "not seen: tracepoint links need 5.15 (a bare perf event could not be checked by the heartbeat, so none is attached)"
	}
	if len(missing) == len(signalWatch) {
		return "not seen: no syscall tracepoint for kill and its kin"
	}
	r := "reported, not refused (no BPF LSM): kill, tgkill, tkill and rt_(tg)sigqueueinfo naming the agent's pid from the initial pid namespace"
	if len(missing) > 0 {
		r += fmt.Sprintf("; not seen through %s", strings.Join(missing, ", "))
	}
	return r
}

// Signals says how signals from other processes to the agent are handled
// on this kernel.
func (s *Sensor) Signals() string {
	if s.hook.IsLSM() {
		if s.cfg.GuardSignals && s.cfg.Mode == ModeEnforce {
			return "refused (lsm/task_kill) unless sent by the agent's parent or init; reported"
		}
		return "reported (lsm/task_kill), not refused (signal guard off or monitor mode)"
	}
	return s.signals
}
