package output

import "time"

// Cbpf is the section of cbpf_attach events: a setsockopt that attaches a
// socket filter, the filter as tcpdump -d prints it, and what it tests.
type Cbpf struct {
	Option      string        `json:"option"`            // SO_ATTACH_FILTER | SO_ATTACH_REUSEPORT_CBPF | SO_ATTACH_BPF
	FD          int32         `json:"fd"`                // the socket
	Socket      string        `json:"socket,omitempty"`  // packet | raw | other, when the fd could be resolved
	Len         uint32        `json:"len"`               // sock_fprog.len (SO_ATTACH_BPF: the program fd)
	Problem     string        `json:"problem,omitempty"` // bad arguments, reported
	Ports       []uint32      `json:"ports,omitempty"`   // TCP/UDP ports it compares
	Magic       []CbpfCompare `json:"magic,omitempty"`   // values compared past the transport header
	Disassembly []string      `json:"disassembly,omitempty"`
}

// CbpfCompare is one magic-value comparison.
type CbpfCompare struct {
	Insn  int    `json:"insn"`
	Load  string `json:"load"`
	Size  int    `json:"size"`
	Op    string `json:"op"`
	Value uint32 `json:"value"`
}

// NewCbpfAttach builds a cbpf_attach event, every string escaped.
func NewCbpfAttach(t time.Time, l Loader, c Cbpf, v *Verdict) *Event {
	l.Comm, l.Exe = Escape(l.Comm), Escape(l.Exe)
	c.Problem, c.Socket = Escape(c.Problem), Escape(c.Socket)
	c.Disassembly = escapeAll(c.Disassembly)
	for i := range c.Magic {
		c.Magic[i].Load, c.Magic[i].Op = Escape(c.Magic[i].Load), Escape(c.Magic[i].Op)
	}
	ev := &Event{Event: KindCbpfAttach, Time: t, Loader: &l, Cbpf: &c}
	if v != nil {
		ev.Verdict = copyVerdict(v)
	}
	return ev
}
