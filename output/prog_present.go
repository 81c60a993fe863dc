package output

import (
	"time"
)

// Resident is the section of prog_present and prog_unseen events: a
// program found loaded in the kernel by the inventory rather than seen at
// its load, with who keeps it loaded and what the sentry did about it.
type Resident struct {
	LoadedAt time.Time       `json:"loaded_at,omitzero"` // bpf_prog_info load_time
	UID      uint32          `json:"uid"`                // created_by_uid
	Holders  []Holder        `json:"holders,omitempty"`  // processes holding an fd to it
	Pinned   []string        `json:"pinned,omitempty"`   // bpffs paths
	Links    []ResidentLink  `json:"links,omitempty"`    // links attaching it
	Response *ResidentAction `json:"response,omitempty"` // set when a block rule matched
}

// Holder is a process holding an fd to the program (or one of its links).
type Holder struct {
	PID    uint32 `json:"pid"`
	FD     int    `json:"fd"`
	Comm   string `json:"comm,omitempty"`
	Exe    string `json:"exe,omitempty"`
	ExeDev uint64 `json:"exe_dev,omitempty"`
	ExeIno uint64 `json:"exe_ino,omitempty"`
}

// ResidentLink is one link that attaches the program.
type ResidentLink struct {
	ID     uint32 `json:"id"`
	Type   string `json:"type"`
	Target string `json:"target,omitempty"`
}

// ResidentAction is what --resident-block did to a blocked resident program.
type ResidentAction struct {
	Action string   `json:"action"`           // alert | detach | kill-holders
	Done   []string `json:"done,omitempty"`   // e.g. "detached link 12", "killed pid 42"
	Failed []string `json:"failed,omitempty"` // what could not be done, and why
	// Survives says why the program may still be loaded afterwards
	// (a pin, a holder the sentry refuses to kill, an fd passed on).
	Survives []string `json:"survives,omitempty"`
}

// NewResident builds a prog_present or prog_unseen event: the program
// sections as prog_load has them (no outcome: the load was not observed)
// and the resident section, every string escaped.
func NewResident(kind Kind, in ProgLoad, r Resident, opt InsnOptions) *Event {
	ev := NewProgLoad(in, opt)
	ev.Event = kind
	ev.Outcome = nil
	ev.Loader = nil
	for i := range r.Holders {
		r.Holders[i].Comm = Escape(r.Holders[i].Comm)
		r.Holders[i].Exe = Escape(r.Holders[i].Exe)
	}
	for i := range r.Pinned {
		r.Pinned[i] = Escape(r.Pinned[i])
	}
	for i := range r.Links {
		r.Links[i].Type = Escape(r.Links[i].Type)
		r.Links[i].Target = Escape(r.Links[i].Target)
	}
	if a := r.Response; a != nil {
		c := *a
		c.Done, c.Failed, c.Survives = escapeAll(a.Done), escapeAll(a.Failed), escapeAll(a.Survives)
		r.Response = &c
	}
	ev.Resident = &r
	return ev
}

func escapeAll(in []string) []string {
	if in == nil {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = Escape(s)
	}
	return out
}
