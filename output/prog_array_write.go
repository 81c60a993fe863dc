package output

import "time"

// ProgArrayWrite is the section of prog_array_write events: a write into
// or delete from a prog_array (a tail-call table), seen at the exit of the
// bpf() call (docs/GROUPS.md).
type ProgArrayWrite struct {
	Op            string `json:"op"` // update | delete
	MapID         uint32 `json:"map_id"`
	Key           uint32 `json:"key"`
	KeyUnreadable bool   `json:"key_unreadable,omitempty"`
	ValueFD       uint32 `json:"value_fd,omitempty"`
	ProgID        uint32 `json:"prog_id,omitempty"`     // the program written; 0: the fd was no program
	OldProgID     uint32 `json:"old_prog_id,omitempty"` // what the slot held before
	// Swap: the update replaced one program by another (a tail-call
	// table swap).
	Swap  bool     `json:"swap,omitempty"`
	Errno int      `json:"errno,omitempty"` // the call failed
	Group GroupRef `json:"group"`
}

// GroupRef names a loader group: its first process's tgid and start time.
type GroupRef struct {
	TGID    uint32 `json:"tgid"`
	StartNS uint64 `json:"start_ns"`
}

// NewProgArrayWrite builds a prog_array_write event, every string escaped.
func NewProgArrayWrite(t time.Time, l Loader, w ProgArrayWrite) *Event {
	l.Comm, l.Exe = Escape(l.Comm), Escape(l.Exe)
	w.Op = Escape(w.Op)
	return &Event{Event: KindProgArrayWrite, Time: t, Loader: &l, ProgArray: &w}
}
