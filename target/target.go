package target

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Kind is the family of an attach point.
type Kind string

const (
	KindTracepoint    Kind = "tracepoint"
	KindRawTracepoint Kind = "raw_tracepoint"
	KindKprobe        Kind = "kprobe"
	KindKretprobe     Kind = "kretprobe"
	KindUprobe        Kind = "uprobe"
	KindUretprobe     Kind = "uretprobe"
	KindKprobeMulti   Kind = "kprobe_multi"
	KindUprobeMulti   Kind = "uprobe_multi"
	KindTracing       Kind = "tracing" // fentry, fexit, fmod_ret, tp_btf, lsm, iter: a kernel function by BTF id
	KindFreplace      Kind = "freplace"
	KindCgroup        Kind = "cgroup"
	KindInterface     Kind = "interface" // xdp, tcx, netkit
	KindNetfilter     Kind = "netfilter"
	KindPerfEvent     Kind = "perf_event" // a hardware/software perf event
	KindSockmap       Kind = "sockmap"    // sk_msg / sk_skb verdicts and parsers: a sockmap or sockhash
	KindNetns         Kind = "netns"      // flow dissector: the caller's network namespace
	KindOther         Kind = "other"
)

// Raw is what the kernel side reported about a target (sensor.RawTarget's
// fields, so this package does not depend on the sensor).
type Raw struct {
	AttachType   uint32
	FD           uint32 // or ifindex
	Flags        uint32
	BTFID        uint32
	ProgID       uint32
	MapID        uint32 // the target fd as a map (sockmap, sockhash)
	NetNS        uint32 // the caller's network namespace inode (0: unknown)
	PID          uint32 // the caller (its /proc/PID/ns/net names an interface in its namespace)
	CgroupIno    uint64
	PerfType     uint32
	PerfConfig   uint64
	PerfOffset   uint64
	Count        uint32
	Name         string
	NameFromPerf bool
	PerfFound    bool // the target fd was a perf event (PerfType, PerfConfig are its)
	Addrs        []uint64
	Syms         []string
	// RawTP: the op was BPF_RAW_TRACEPOINT_OPEN.
	RawTP bool
	// ProgType is the attached program's type (its load, or the kernel's).
	ProgType uint32
}

// Target is an attach point with names.
type Target struct {
	Kind Kind `json:"kind"`
	// Name is what `attach_to` rules match: "syscalls/sys_enter_getdents64",
	// "sys_enter", "vfs_read", "/usr/lib/…/libpam.so.0:pam_get_authtok",
	// "eth0", "/system.slice/x.service".
	Name      string   `json:"name,omitempty"`
	Binary    string   `json:"binary,omitempty"`
	Symbol    string   `json:"symbol,omitempty"`
	Offset    uint64   `json:"offset,omitempty"`
	Symbols   []string `json:"symbols,omitempty"` // multi-probes: every symbol resolved
	Interface string   `json:"interface,omitempty"`
	Ifindex   uint32   `json:"ifindex,omitempty"`
	Cgroup    string   `json:"cgroup,omitempty"`
	CgroupID  uint64   `json:"cgroup_id,omitempty"`
	ProgID    uint32   `json:"target_prog_id,omitempty"`
	MapID     uint32   `json:"map_id,omitempty"`
	// NetNS is the network namespace (inode) of an interface or flow
	// dissector target, when the caller's is not the sensor's.
	NetNS uint32 `json:"netns,omitempty"`
	// AttachType is the bpf_attach_type's name ("trace_fentry", "cgroup_inet_ingress" …).
	AttachType string `json:"attach_type,omitempty"`
	// Unresolved says what could not be named (and why), never guessed.
	Unresolved string `json:"unresolved,omitempty"`
}

// Names are the strings rules match for this target: Name and every multi
// symbol, so a benign first symbol hides nothing.
func (t Target) Names() []string {
	var out []string
	if t.Name != "" {
		out = append(out, t.Name)
	}
	for _, s := range t.Symbols {
		if s != t.Name && s != t.Symbol {
			out = append(out, s)
		}
	}
	return out
}

// Resolver names targets on the running host; safe for concurrent use.
type Resolver struct {
	Tracefs string // "/sys/kernel/tracing" when empty
	Cgroup2 string // "/sys/fs/cgroup" when empty

	mu        sync.Mutex
	tpIDs     map[uint64]string
	vmlinux   *btf.Spec
	btfErr    error
	btfLoaded bool
	pmu       map[uint32]string // dynamic perf PMU type → "kprobe" / "uprobe"
	ksyms     []ksym
	cgroups   map[uint64]string
}

type ksym struct {
	addr uint64
	name string
}

// NewResolver returns a resolver for the running host.
func NewResolver() *Resolver { return &Resolver{} }

func (r *Resolver) tracefs() string {
	if r.Tracefs != "" {
		return r.Tracefs
	}
	return "/sys/kernel/tracing"
}

// cgroup attach types of enum bpf_attach_type (their target is a cgroup).
var cgroupTypes = map[uint32]bool{0: true, 1: true, 2: true, 3: true, 6: true, 8: true, 9: true, 10: true, 11: true,
	12: true, 13: true, 14: true, 15: true, 18: true, 19: true, 20: true, 21: true, 22: true, 29: true, 30: true,
	31: true, 32: true, 34: true, 43: true, 49: true, 50: true, 51: true, 52: true, 53: true}

const (
	atTraceRawTP   = 23
	atFentry       = 24
	atLSMMac       = 27
	atTraceIter    = 28
	atXDP          = 37
	atSkSkbParser  = 4
	atSkSkbVerdict = 5
	atSkMsgVerdict = 7
	atFlowDissect  = 17
	atSkSkbVerd2   = 38
	atPerfEvent    = 41
	atKprobeMulti  = 42
	atNetfilter    = 45
	atTCXIngress   = 46
	atTCXEgress    = 47
	atUprobeMulti  = 48
	atNetkitPri    = 54
	atNetkitPeer   = 55
	atKprobeSess   = 56
	atUprobeSess   = 57
	progTypeExt    = 28
	perfTracepoint = 2
)

// Resolve names one target.
func (r *Resolver) Resolve(raw Raw) Target {
	t := Target{AttachType: program.AttachTypes.NameOr(raw.AttachType)}
	at := raw.AttachType
	switch {
	case raw.RawTP && raw.Name != "":
		t.Kind, t.Name = KindRawTracepoint, raw.Name
		t.AttachType = ""
	case raw.PerfFound || at == atPerfEvent && !raw.RawTP:
		r.perf(raw, &t)
	case at == atKprobeMulti || at == atKprobeSess:
		t.Kind = KindKprobeMulti
		t.Symbols = slices.Clone(raw.Syms)
		for _, a := range raw.Addrs {
			if n := r.ksymAt(a); n != "" {
				t.Symbols = append(t.Symbols, n)
			}
		}
		if len(t.Symbols) > 0 {
			t.Name = t.Symbols[0]
		}
		if int(raw.Count) > len(t.Symbols) {
			t.Unresolved = fmt.Sprintf("%d of %d symbols reported", len(t.Symbols), raw.Count)
		}
	case at == atUprobeMulti || at == atUprobeSess:
		t.Kind, t.Binary = KindUprobeMulti, raw.Name
		for _, off := range raw.Addrs {
			if s := elfSymbolAt(raw.Name, off); s != "" {
				t.Symbols = append(t.Symbols, s)
			}
		}
		t.Name = raw.Name
		if len(t.Symbols) > 0 {
			t.Symbol = t.Symbols[0]
			t.Name = raw.Name + ":" + t.Symbol
		}
	case at == atXDP || at == atTCXIngress || at == atTCXEgress || at == atNetkitPri || at == atNetkitPeer:
		t.Kind, t.Ifindex = KindInterface, raw.FD
		if own := ownNetNS(); raw.NetNS != 0 && raw.NetNS != own {
			t.NetNS = raw.NetNS
		}
		if name, err := interfaceName(raw.FD, t.NetNS, raw.PID); err == nil {
			t.Interface, t.Name = name, name
		} else {
			t.Unresolved = err.Error()
		}
	case (at == atSkSkbParser || at == atSkSkbVerdict || at == atSkMsgVerdict || at == atSkSkbVerd2) && raw.MapID != 0:
		t.Kind, t.MapID = KindSockmap, raw.MapID
		t.Name = fmt.Sprintf("map %d", raw.MapID)
		if n := mapName(raw.MapID); n != "" {
			t.Name = n
		}
	case at == atFlowDissect:
		t.Kind = KindNetns
		if raw.NetNS != 0 {
			t.Name = fmt.Sprintf("net:[%d]", raw.NetNS)
			if raw.NetNS != ownNetNS() {
				t.NetNS = raw.NetNS
			}
		} else {
			t.Unresolved = "the caller's network namespace was not read"
		}
	case at == atNetfilter:
		t.Kind = KindNetfilter
		t.Name = netfilterName(uint32(raw.PerfConfig), uint32(raw.PerfConfig>>32), int32(uint32(raw.PerfOffset)))
	case raw.ProgType == progTypeExt || raw.ProgID != 0 && at >= atTraceRawTP && at <= atLSMMac:
		t.Kind, t.ProgID = KindFreplace, raw.ProgID
		t.Name = fmt.Sprintf("prog %d", raw.ProgID)
		if raw.ProgType != progTypeExt {
			t.Kind = KindTracing
		}
	case at >= atTraceRawTP && at <= atTraceIter || at == 43 || raw.RawTP:
		t.Kind = KindTracing
		if raw.BTFID != 0 {
			if n, err := r.btfName(raw.BTFID); err == nil {
				// tp_btf and raw tracepoint programs are verified
				// against the tracepoint's btf_trace_<name> typedef
				t.Name = strings.TrimPrefix(n, "btf_trace_")
			} else {
				t.Unresolved = fmt.Sprintf("btf id %d: %v", raw.BTFID, err)
			}
		}
	case cgroupTypes[at]:
		t.Kind, t.CgroupID = KindCgroup, raw.CgroupIno
		if p := r.cgroupPath(raw.CgroupIno); p != "" {
			t.Cgroup, t.Name = p, p
		} else {
			t.Unresolved = fmt.Sprintf("cgroup %d not found under the cgroup2 mount", raw.CgroupIno)
		}
	default:
		t.Kind = KindOther
	}
	return t
}

func (r *Resolver) perf(raw Raw, t *Target) {
	if raw.PerfType == perfTracepoint {
		t.Kind = KindTracepoint
		if n := r.tracepointName(raw.PerfConfig); n != "" {
			t.Name = n
			r.legacyProbe(t)
		} else {
			t.Unresolved = fmt.Sprintf("tracepoint id %d not in %s/events", raw.PerfConfig, r.tracefs())
		}
		return
	}
	switch r.pmuName(raw.PerfType) {
	case "kprobe":
		t.Kind = KindKprobe
		if raw.PerfConfig&1 != 0 {
			t.Kind = KindKretprobe
		}
		t.Symbol, t.Offset = raw.Name, raw.PerfOffset
		t.Name = raw.Name
		if raw.Name == "" && raw.PerfOffset != 0 {
			t.Name = r.ksymAt(raw.PerfOffset) // kprobe by address: config2 is it
		}
	case "uprobe":
		t.Kind = KindUprobe
		if raw.PerfConfig&1 != 0 {
			t.Kind = KindUretprobe
		}
		t.Binary, t.Offset = raw.Name, raw.PerfOffset
		t.Symbol = elfSymbolAt(raw.Name, raw.PerfOffset)
		t.Name = raw.Name
		if t.Symbol != "" {
			t.Name += ":" + t.Symbol
		}
		if raw.Name == "" {
			t.Unresolved = "the binary path was not seen at perf_event_open"
		}
	default:
		t.Kind = KindPerfEvent
		if !raw.PerfFound {
			t.Unresolved = "the target fd was not an open perf event"
			return
		}
		pmu := r.pmuName(raw.PerfType)
		if pmu == "" {
			pmu = fmt.Sprintf("type %d", raw.PerfType)
		}
		t.Name = fmt.Sprintf("%s config %#x", pmu, raw.PerfConfig)
	}
}

// legacyProbe fills binary/symbol for tracefs-created probes
// ("uprobes/NAME", "kprobes/NAME") from uprobe_events / kprobe_events.
func (r *Resolver) legacyProbe(t *Target) {
	group, event, _ := strings.Cut(t.Name, "/")
	file := ""
	switch {
	case strings.HasPrefix(group, "uprobe") || strings.HasPrefix(group, "uretprobe"):
		file = "uprobe_events"
	case strings.HasPrefix(group, "kprobe") || strings.HasPrefix(group, "kretprobe"):
		file = "kprobe_events"
	default:
		return
	}
	b, err := os.ReadFile(filepath.Join(r.tracefs(), file))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		_, name, _ := strings.Cut(f[0], ":")
		if name != group+"/"+event {
			continue
		}
		if file == "uprobe_events" {
			t.Kind = KindUprobe
			if strings.HasPrefix(f[0], "r") {
				t.Kind = KindUretprobe
			}
			bin, off, _ := strings.Cut(f[1], ":")
			if o, err := strconv.ParseUint(strings.SplitN(off, "(", 2)[0], 0, 64); err == nil {
				t.Binary, t.Offset = bin, o
				t.Symbol = elfSymbolAt(bin, o)
				t.Name = bin
				if t.Symbol != "" {
					t.Name += ":" + t.Symbol
				}
			}
		} else {
			t.Kind = KindKprobe
			if strings.HasPrefix(f[0], "r") {
				t.Kind = KindKretprobe
			}
			sym, _, _ := strings.Cut(f[1], "+")
			t.Symbol, t.Name = sym, sym
		}
		return
	}
}

func (r *Resolver) tracepointName(id uint64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n, ok := r.tpIDs[id]; ok {
		return n
	}
	// A miss re-reads the ids: probes come and go.
	r.tpIDs = map[uint64]string{}
	files, _ := filepath.Glob(filepath.Join(r.tracefs(), "events", "*", "*", "id"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		dir := filepath.Dir(f)
		r.tpIDs[v] = filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
	}
	return r.tpIDs[id]
}

// TracepointIDs returns the ids of the tracepoints whose "group/name"
// satisfies match (for the kernel attach table).
func (r *Resolver) TracepointIDs(match func(string) bool) []uint64 {
	r.tracepointName(0)
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for id, n := range r.tpIDs {
		if match(n) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (r *Resolver) loadBTF() (*btf.Spec, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.btfLoaded {
		r.vmlinux, r.btfErr = btf.LoadKernelSpec()
		r.btfLoaded = true
	}
	return r.vmlinux, r.btfErr
}

func (r *Resolver) btfName(id uint32) (string, error) {
	spec, err := r.loadBTF()
	if err != nil {
		return "", err
	}
	t, err := spec.TypeByID(btf.TypeID(id))
	if err != nil {
		return "", err
	}
	return t.TypeName(), nil
}

// FuncBTFIDs returns the vmlinux BTF ids of functions whose name satisfies
// match, at most max of them (for the kernel attach table).
func (r *Resolver) FuncBTFIDs(match func(string) bool, max int) ([]uint32, error) {
	spec, err := r.loadBTF()
	if err != nil {
		return nil, err
	}
	var out []uint32
	for typ, err := range spec.All() {
		if err != nil {
			return out, err
		}
		fn, ok := typ.(*btf.Func)
		if !ok || !match(fn.Name) {
			continue
		}
		id, err := spec.TypeID(fn)
		if err != nil {
			continue
		}
		out = append(out, uint32(id))
		if len(out) >= max {
			break
		}
	}
	return out, nil
}

func (r *Resolver) pmuName(typ uint32) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pmu == nil {
		r.pmu = map[uint32]string{}
		// the fixed types, then every PMU the kernel lists (kprobe and
		// uprobe are dynamic)
		for v, n := range []string{"hardware", "software", "tracepoint", "hw_cache", "raw", "breakpoint"} {
			r.pmu[uint32(v)] = n
		}
		files, _ := filepath.Glob("/sys/bus/event_source/devices/*/type")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
				r.pmu[uint32(v)] = filepath.Base(filepath.Dir(f))
			}
		}
	}
	return r.pmu[typ]
}

func (r *Resolver) ksymAt(addr uint64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ksyms == nil {
		r.ksyms = []ksym{}
		if f, err := os.Open("/proc/kallsyms"); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fl := strings.Fields(sc.Text())
				if len(fl) < 3 {
					continue
				}
				if a, err := strconv.ParseUint(fl[0], 16, 64); err == nil && a != 0 {
					r.ksyms = append(r.ksyms, ksym{a, fl[2]})
				}
			}
			f.Close()
			slices.SortFunc(r.ksyms, func(a, b ksym) int { return cmpU64(a.addr, b.addr) })
		}
	}
	i, found := slices.BinarySearchFunc(r.ksyms, addr, func(k ksym, a uint64) int { return cmpU64(k.addr, a) })
	if found {
		return r.ksyms[i].name
	}
	if i > 0 {
		return fmt.Sprintf("%s+%#x", r.ksyms[i-1].name, addr-r.ksyms[i-1].addr)
	}
	return ""
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *Resolver) cgroupPath(ino uint64) string {
	if ino == 0 {
		return ""
	}
	root := r.Cgroup2
	if root == "" {
		root = cgroup2Mount()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.cgroups[ino]; ok {
		return p
	}
	r.cgroups = map[uint64]string{}
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := statIno(info); ok {
				rel := strings.TrimPrefix(path, root)
				if rel == "" {
					rel = "/"
				}
				r.cgroups[st] = rel
			}
		}
		return nil
	})
	return r.cgroups[ino]
}

// elfSymbolAt names the function of an ELF file that contains the file
// offset off (what uprobes are given), "" when none does.
func elfSymbolAt(path string, off uint64) string {
	if path == "" {
		return ""
	}
	f, err := elf.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	// file offset → virtual address through the loadable segment holding it
	vaddr, ok := uint64(0), false
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && off >= p.Off && off < p.Off+p.Filesz {
			vaddr, ok = off-p.Off+p.Vaddr, true
			break
		}
	}
	if !ok {
		return ""
	}
	// Aliases share an address (getpid, __getpid): the public name wins.
	best, exact := "", ""
	for _, get := range []func() ([]elf.Symbol, error){f.DynamicSymbols, f.Symbols} {
		syms, err := get()
		if err != nil {
			continue
		}
		for _, s := range syms {
			if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Name == "" {
				continue
			}
			switch {
			case vaddr == s.Value:
				if exact == "" || strings.HasPrefix(exact, "_") && !strings.HasPrefix(s.Name, "_") {
					exact = s.Name
				}
			case best == "" && vaddr > s.Value && vaddr < s.Value+s.Size:
				best = fmt.Sprintf("%s+%#x", s.Name, vaddr-s.Value)
			}
		}
	}
	if exact != "" {
		return exact
	}
	return best
}

// netfilterName names a netfilter hook: protocol family, hook and priority
// as LINK_CREATE gave them.
func netfilterName(pf, hook uint32, prio int32) string {
	fam := map[uint32]string{2: "ipv4", 10: "ipv6"}[pf]
	if fam == "" {
		fam = fmt.Sprintf("pf %d", pf)
	}
	h := []string{"prerouting", "local_in", "forward", "local_out", "postrouting"}
	hn := fmt.Sprintf("hook %d", hook)
	if int(hook) < len(h) {
		hn = h[hook]
	}
	return fmt.Sprintf("%s/%s priority %d", fam, hn, prio)
}

// cgroup2Mount is the first cgroup2 mount in /proc/self/mountinfo
// (/sys/fs/cgroup on a unified host, /sys/fs/cgroup/unified on a hybrid
// one), "/sys/fs/cgroup" when none is listed. A cgroup v1 directory's inode
// is no cgroup id: only the v2 tree is searched.
func cgroup2Mount() string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "/sys/fs/cgroup"
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if ok && len(f) >= 5 && strings.HasPrefix(post, "cgroup2 ") {
			return f[4]
		}
	}
	return "/sys/fs/cgroup"
}
