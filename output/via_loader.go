package output

// ViaLoader is set on a prog_load whose program was loaded from inside the
// kernel by a BPF_PROG_TYPE_SYSCALL program (bpf_sys_bpf: the light
// skeleton's loader) rather than by the bpf() system call. It names the
// loader program; the event's loader is the process that ran it
// (BPF_PROG_TEST_RUN).
type ViaLoader struct {
	ID   uint32 `json:"id"`
	Tag  string `json:"tag"`
	Name string `json:"name"`
	// Response is what a block verdict did to the process that ran the
	// loader and to what the payload was attached to; absent otherwise.
	Response *ResidentAction `json:"response,omitempty"`
}

// WithViaLoader marks ev (a prog_load) as loaded by loader program v.
func WithViaLoader(ev *Event, v ViaLoader) *Event {
	v.Tag, v.Name = Escape(v.Tag), Escape(v.Name)
	if a := v.Response; a != nil {
		c := *a
		c.Done, c.Failed, c.Survives = escapeAll(a.Done), escapeAll(a.Failed), escapeAll(a.Survives)
		v.Response = &c
	}
	ev.ViaLoader = &v
	return ev
}
