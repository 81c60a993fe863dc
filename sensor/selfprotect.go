package sensor

import (
	"encoding/binary"
	"fmt"
	"strings"

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
	return fmt.Sprintf("%s on the sentry's %s %d by pid %d (uid %d): %s", a.Command, a.Object, a.ObjectID, a.PID, a.UID, a.Action)
}

// AccessAttempts delivers every AccessAttempt; closed after Close. Attempts
// nobody reads are dropped and counted (access_attempt_dropped).
func (s *Sensor) AccessAttempts() <-chan AccessAttempt { return s.attempts }

var objNames = map[uint32]string{
	uint32(sentrySentryObjSENTRY_OBJ_MAP): "map", uint32(sentrySentryObjSENTRY_OBJ_PROG): "prog",
	uint32(sentrySentryObjSENTRY_OBJ_LINK): "link",
}

func accessAttempt(t *sentrySentryTamper) AccessAttempt {
	cmd := fmt.Sprintf("bpf command %d", t.Cmd)
	if int(t.Cmd) < len(bpfCmdNames) { // enum bpf_cmd (token.go)
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
	for _, name := range []string{sentryProgSentryLsmGuard, sentryProgSentryLsmGuardMap} {
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

// guardPrograms are loaded with the sensor on LSM hooks.
func guardPrograms(spec *ebpf.CollectionSpec, lsm bool) map[string]bool {
	keep := map[string]bool{}
	if lsm {
		for _, name := range []string{sentryProgSentryLsmGuard, sentryProgSentryLsmGuardMap} {
			if spec.Programs[name] != nil {
				keep[name] = true
			}
		}
	}
	return keep
}
