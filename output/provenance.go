package output

import (
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// newProvenance copies a load's provenance for an event, escaping every
// string that came from the loader's system (mount paths and options,
// the token creator's comm and exe). nil stays nil.
func newProvenance(p *program.Provenance) *program.Provenance {
	if p == nil {
		return nil
	}
	c := *p
	c.Keyring = Escape(c.Keyring)
	c.Verification = Escape(c.Verification)
	if t := p.Token; t != nil {
		tc := *t
		tc.Mount, tc.MountOptions, tc.Error = Escape(t.Mount), Escape(t.MountOptions), Escape(t.Error)
		for _, d := range []*program.Delegation{&tc.AllowedCmds, &tc.AllowedMaps, &tc.AllowedProgs, &tc.AllowedAttachs} {
			names := make([]string, len(d.Names))
			for i, n := range d.Names {
				names[i] = Escape(n)
			}
			if len(names) == 0 {
				names = nil
			}
			d.Names = names
		}
		if cr := t.Creator; cr != nil {
			cc := *cr
			cc.Comm, cc.Exe = Escape(cr.Comm), Escape(cr.Exe)
			tc.Creator = &cc
		}
		c.Token = &tc
	}
	if in := p.Inherited; in != nil {
		ic := *in
		ic.LoaderTag, ic.LoaderName = Escape(in.LoaderTag), Escape(in.LoaderName)
		ic.From = newProvenance(in.From)
		if ic.From != nil {
			ic.From.Inherited = nil // one level: the loader's own provenance
		}
		c.Inherited = &ic
	}
	return &c
}

// ProvenanceBook keeps the provenance of loaded programs by kernel prog id,
// so that a program a loader program loads from inside the kernel
// (bpf_sys_bpf: a light skeleton, a signed loader and its payload) carries
// the provenance its loader was loaded with: the signature was checked on
// the loader, not on what the loader loads. Bounded: past Max entries the
// oldest is forgotten and counted in Evicted.
type ProvenanceBook struct {
	Max int

	mu      sync.Mutex
	byID    map[uint32]bookEntry
	order   []uint32
	Evicted uint64
}

type bookEntry struct {
	prov *program.Provenance // nil: loaded unsigned, without a token
	name string              // the program's name, as its prog_load gave it
	tag  string
}

// DefaultProvenanceBookSize bounds a book: one entry per loaded program.
const DefaultProvenanceBookSize = 65536

// NewProvenanceBook makes a book of at most max programs (0: the default).
func NewProvenanceBook(max int) *ProvenanceBook {
	if max <= 0 {
		max = DefaultProvenanceBookSize
	}
	return &ProvenanceBook{Max: max, byID: map[uint32]bookEntry{}}
}

// Name is the name of the program with this id and tag as its prog_load
// reported it, if the book has it.
func (b *ProvenanceBook) Name(id uint32, tag string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.byID[id]
	if !ok || e.tag != tag {
		return "", false
	}
	return e.name, true
}

// Remember records a prog_load event's provenance under its prog id, when
// the program loaded.
func (b *ProvenanceBook) Remember(ev *Event) {
	if ev == nil || ev.Event != KindProgLoad || ev.Prog == nil || ev.Prog.Kernel == nil || ev.Prog.Kernel.ID == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	id := ev.Prog.Kernel.ID
	if _, ok := b.byID[id]; !ok {
		b.order = append(b.order, id)
	}
	b.byID[id] = bookEntry{prov: ev.Provenance, name: ev.Prog.Name, tag: ev.Prog.Kernel.Tag}
	for len(b.order) > b.Max {
		delete(b.byID, b.order[0])
		b.order = b.order[1:]
		b.Evicted++
	}
}

// Inherit fills ev.Provenance.Inherited for a program loaded from inside
// the kernel by the loader program loaderID (the event's via_loader):
// From is the loader's provenance when its load was seen, nil otherwise.
func (b *ProvenanceBook) Inherit(ev *Event, loaderID uint32, loaderTag, loaderName string) {
	if ev == nil || loaderID == 0 {
		return
	}
	in := &program.Inherited{LoaderID: loaderID, LoaderTag: Escape(loaderTag), LoaderName: Escape(loaderName)}
	b.mu.Lock()
	e, seen := b.byID[loaderID]
	b.mu.Unlock()
	if seen {
		from := newProvenance(e.prov)
		if from == nil {
			from = &program.Provenance{} // the loader was loaded unsigned
		}
		from.Inherited = nil
		in.From = from
	}
	if ev.Provenance == nil {
		ev.Provenance = &program.Provenance{}
	}
	ev.Provenance.Inherited = in
}

// NewTokenCreate builds a token_create event: creator is the process that
// called BPF_TOKEN_CREATE, tok the token (its error says why the call
// failed, when it did).
func NewTokenCreate(t time.Time, creator Loader, tok *program.Token) *Event {
	creator.Comm, creator.Exe = Escape(creator.Comm), Escape(creator.Exe)
	if creator.UID == nil && tok != nil && tok.Creator != nil {
		uid := tok.Creator.UID
		creator.UID = &uid
	}
	for f, missing := range map[string]bool{"uid": creator.UID == nil, "gid": creator.GID == nil} {
		if missing && !slices.Contains(creator.Unknown, f) {
			creator.Unknown = append(creator.Unknown, f)
		}
	}
	slices.Sort(creator.Unknown)
	return &Event{Event: KindTokenCreate, Time: t, Loader: &creator,
		Provenance: newProvenance(&program.Provenance{Token: tok})}
}

func ecsTokenCreate(ev *Event, e *ECSEvent) {
	e.Message = "BPF token created"
	if l := ev.Loader; l != nil {
		p := &ECSProcess{PID: l.PID, Name: l.Comm, Executable: l.Exe}
		p.Thread.ID, p.Parent.PID = l.TID, l.PPID
		e.Process = p
		e.Message += " by " + l.Comm
	}
}

// MapCreate is the section of map_create events: a BPF_MAP_CREATE made
// through a BPF token (6.9+), reported at the call's exit.
type MapCreate struct {
	MapID      uint32 `json:"map_id,omitempty"` // 0: not created
	Type       string `json:"type"`
	KeySize    uint32 `json:"key_size"`
	ValueSize  uint32 `json:"value_size"`
	MaxEntries uint32 `json:"max_entries"`
	Flags      uint32 `json:"flags"`
	Name       string `json:"name,omitempty"`
	Result     string `json:"result"` // created | failed
	Errno      int32  `json:"errno,omitempty"`
	Error      string `json:"error,omitempty"`
}

// NewMapCreate builds a map_create event: creator is the calling process,
// prov its token (via_token, token_fd and the token's origin).
func NewMapCreate(t time.Time, creator Loader, m MapCreate, prov *program.Provenance) *Event {
	creator.Comm, creator.Exe, creator.Cgroup = Escape(creator.Comm), Escape(creator.Exe), Escape(creator.Cgroup)
	m.Type, m.Name = Escape(m.Type), Escape(m.Name)
	for f, missing := range map[string]bool{"uid": creator.UID == nil, "gid": creator.GID == nil} {
		if missing && !slices.Contains(creator.Unknown, f) {
			creator.Unknown = append(creator.Unknown, f)
		}
	}
	slices.Sort(creator.Unknown)
	m.Result = "created"
	if m.Errno > 0 {
		m.Result = "failed"
		if m.Error == "" {
			m.Error = syscall.Errno(m.Errno).Error()
		}
	}
	return &Event{Event: KindMapCreate, Time: t, Loader: &creator, Map: &m, Provenance: newProvenance(prov)}
}

func ecsMapCreate(ev *Event, e *ECSEvent) {
	e.Message = "BPF map created through a BPF token"
	if m := ev.Map; m != nil {
		e.Message = "BPF map " + m.Type + " created through a BPF token: " + m.Result
	}
	if l := ev.Loader; l != nil {
		p := &ECSProcess{PID: l.PID, Name: l.Comm, Executable: l.Exe}
		p.Thread.ID, p.Parent.PID = l.TID, l.PPID
		e.Process = p
	}
}

// SetProvenance replaces the event's provenance with an escaped copy of p
// (a prog_attach whose program the kernel says was loaded through a token).
func (ev *Event) SetProvenance(p *program.Provenance) { ev.Provenance = newProvenance(p) }
