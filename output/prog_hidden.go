package output

// Hidden is the section of prog_hidden events: a program present in one
// view of the kernel and missing from another (docs/EVENTS.md).
type Hidden struct {
	ID          uint32   `json:"id,omitempty"`   // 0 when only kallsyms shows it
	Tag         string   `json:"tag,omitempty"`  // from its kallsyms symbol
	Name        string   `json:"name,omitempty"` // from its kallsyms symbol
	SeenBy      []string `json:"seen_by"`        // get_next_id | bpf_iter | kallsyms
	MissingFrom []string `json:"missing_from"`
}

// NewHidden builds a prog_hidden event. in carries the program, its
// analysis and verdict when it could be read by id; Program nil otherwise.
func NewHidden(in ProgLoad, h Hidden, opt InsnOptions) *Event {
	ev := &Event{Event: KindProgHidden, Time: in.Time}
	if in.Program != nil {
		ev = NewProgLoad(in, opt)
		ev.Event = KindProgHidden
		ev.Outcome, ev.Loader = nil, nil
	}
	h.Tag, h.Name = Escape(h.Tag), Escape(h.Name)
	h.SeenBy, h.MissingFrom = escapeAll(h.SeenBy), escapeAll(h.MissingFrom)
	if h.SeenBy == nil {
		h.SeenBy = []string{}
	}
	if h.MissingFrom == nil {
		h.MissingFrom = []string{}
	}
	ev.Hidden = &h
	return ev
}
