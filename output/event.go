package output

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// SchemaVersion is the version of the event schema in docs/event.schema.json.
// The major number changes when a field is removed or changes meaning; the
// minor number when fields are added. Consumers should ignore unknown fields.
const SchemaVersion = "1.0"

// Event is one telemetry record. Exactly the sections that belong to its kind
// are set (see docs/EVENTS.md); every string that came from a program or a
// process has gone through Escape.
type Event struct {
	SchemaVersion string    `json:"schema_version"`
	Event         Kind      `json:"event"`
	ID            string    `json:"id"`   // unique per event; consumers de-duplicate on it (delivery is at-least-once)
	Seq           uint64    `json:"seq"`  // per sensor process, increasing; gaps before a loss event are explained by it
	Time          time.Time `json:"time"` // when it happened (for prog_load: when the load was seen)
	Host          string    `json:"host"`
	// PrevHash is the sha256 of the previous event's encoded line (as the
	// sinks received it, without the newline); absent on the first event.
	// A consumer recomputes the chain: an event removed or altered in
	// between breaks it.
	PrevHash string `json:"prev_hash,omitempty"`

	Loader       *Loader       `json:"loader,omitempty"`
	Prog         *Prog         `json:"prog,omitempty"`
	Outcome      *Outcome      `json:"outcome,omitempty"`
	Analysis     *Analysis     `json:"analysis,omitempty"`
	Verdict      *Verdict      `json:"verdict,omitempty"`
	Instructions *Instructions `json:"instructions,omitempty"`

	Sensor *Sensor `json:"sensor,omitempty"`
	Rules  *Rules  `json:"rules,omitempty"`
	Loss   *Loss   `json:"loss,omitempty"`
	Tamper *Tamper `json:"tamper,omitempty"`

	Resident  *Resident       `json:"resident,omitempty"` // prog_present, prog_unseen
	Hidden    *Hidden         `json:"hidden,omitempty"`   // prog_hidden
	Fleet     *FleetFirstSeen `json:"fleet,omitempty"`
	Heartbeat *Heartbeat      `json:"heartbeat,omitempty"`
	Cbpf      *Cbpf           `json:"cbpf,omitempty"`       // cbpf_attach
	Attach    *Attach         `json:"attach,omitempty"`     // prog_attach, prog_detach
	ProgArray *ProgArrayWrite `json:"prog_array,omitempty"` // prog_array_write
	Map       *MapCreate      `json:"map,omitempty"`        // map_create
	ViaLoader *ViaLoader      `json:"via_loader,omitempty"` // prog_load from an in-kernel loader
	// Provenance: the load's signature and BPF token (prog_load;
	// docs/PROVENANCE.md), the token created (token_create), the token a
	// map was created through (map_create) or an attached program was
	// loaded through (prog_attach).
	Provenance *program.Provenance `json:"provenance,omitempty"`
}

// Loader is the process that issued BPF_PROG_LOAD.
type Loader struct {
	PID  uint32  `json:"pid"`
	TID  uint32  `json:"tid"`
	PPID uint32  `json:"ppid"`
	UID  *uint32 `json:"uid,omitempty"` // absent only when unknown
	GID  *uint32 `json:"gid,omitempty"` // absent only when unknown
	Comm string  `json:"comm"`
	Exe  string  `json:"exe,omitempty"`
	// The executable's identity as the kernel named it at the load (inode,
	// dev_t as MAJOR << 20 | MINOR) and its sha256 when user space hashed
	// that same file; prog_load only.
	ExeInode  uint64 `json:"exe_inode,omitempty"`
	ExeDev    uint32 `json:"exe_dev,omitempty"`
	ExeSHA256 string `json:"exe_sha256,omitempty"`
	CgroupID  uint64 `json:"cgroup_id,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"` // cgroup v2 path when resolved
	// Unknown names the fields the sensor lost (the load's header record
	// was dropped): their values here are placeholders, not facts.
	Unknown []string `json:"unknown,omitempty"`
	// Container and pod the cgroup path names (ContainerFromCgroup).
	Container *Container `json:"container,omitempty"`
}

// Enum is a kernel enum value with its name ("" when this build does not know it).
type Enum struct {
	ID   uint32 `json:"id"`
	Name string `json:"name,omitempty"`
}

// Prog is the program's metadata.
type Prog struct {
	Name               string      `json:"name"`
	Type               Enum        `json:"type"`
	ExpectedAttachType Enum        `json:"expected_attach_type"`
	AttachTo           string      `json:"attach_to,omitempty"`
	AttachBTFID        uint32      `json:"attach_btf_id,omitempty"`
	License            string      `json:"license,omitempty"`
	GPLCompatible      bool        `json:"gpl_compatible"`
	Flags              uint32      `json:"flags,omitempty"`
	InsnCnt            uint32      `json:"insn_cnt"`                    // slots the loader declared
	CapturedSlots      int         `json:"captured_slots"`              // slots the sensor captured
	CaptureTruncated   bool        `json:"capture_truncated,omitempty"` // captured_slots < insn_cnt
	SHA256             string      `json:"sha256,omitempty"`
	InsnHash           string      `json:"insn_hash,omitempty"` // the kernel's fingerprint (allowlists, lock mode)
	Kernel             *KernelProg `json:"kernel,omitempty"`
	Source             string      `json:"source,omitempty"`
	Origin             string      `json:"origin,omitempty"`
}

// KernelProg is the identity the kernel gave a loaded program.
type KernelProg struct {
	ID  uint32 `json:"id"`
	Tag string `json:"tag"`
}

// Result is what became of a load.
type Result string

// Load results.
const (
	ResultLoaded Result = "loaded" // the kernel accepted the program
	ResultDenied Result = "denied" // the sentry made the load fail (LSM -EPERM)
	ResultKilled Result = "killed" // the sentry killed the loader
	// ResultCorrupted: the sentry overwrote the first instruction with exit
	// before the kernel copied it, so what loaded does nothing.
	ResultCorrupted Result = "corrupted"
	ResultFailed    Result = "failed"  // the kernel refused it for its own reasons (verifier…)
	ResultUnknown   Result = "unknown" // the syscall's end was not observed
)

// Outcome is the result of the bpf() call.
type Outcome struct {
	Result Result `json:"result"`
	Errno  int32  `json:"errno,omitempty"` // positive errno when the call failed
	Error  string `json:"error,omitempty"` // strerror of Errno
	// JudgedCopyDiffers: the program the kernel loaded is not the one the
	// sentry judged (its tag differs): the loader changed its instructions
	// between the sentry's read of user memory and the kernel's copy.
	JudgedCopyDiffers bool `json:"judged_copy_differs,omitempty"`
	// KilledByOther: Result killed, but not by this sensor (another sensor
	// instance, e.g. an older pinned one, or another process's SIGKILL);
	// the verdict is this sensor's own.
	KilledByOther bool `json:"killed_by_other,omitempty"`
	// RefusedBeforeHook: on the lsm/bpf_prog_load hook, the kernel refused
	// the load before that hook ran; the sentry judged it from the
	// loader's attr at the syscall's exit, for the report only.
	RefusedBeforeHook bool `json:"refused_before_hook,omitempty"`
	// Retry: this call repeats the same thread's load of the same program
	// after that failed with EAGAIN (a signal interrupted verification);
	// N attempts failed so. RetryOf is the previous attempt's load id.
	Retry   uint32 `json:"retry,omitempty"`
	RetryOf uint64 `json:"retry_of,omitempty"`
}

// NewOutcome fills Error from errno.
func NewOutcome(r Result, errno int32) Outcome {
	o := Outcome{Result: r, Errno: errno}
	if errno > 0 {
		o.Error = syscall.Errno(errno).Error()
	}
	return o
}

// Analysis is what analysis found in the instructions.
type Analysis struct {
	Helpers   []Helper `json:"helpers"`
	Kfuncs    []Kfunc  `json:"kfuncs,omitempty"`
	Maps      []Map    `json:"maps,omitempty"`
	Strings   []String `json:"strings,omitempty"`
	Subprogs  []int    `json:"subprogs,omitempty"`
	TailCalls []int    `json:"tail_calls,omitempty"`
	Problems  []string `json:"problems,omitempty"`
}

// Helper is one helper function and how often it is called.
type Helper struct {
	ID    int32  `json:"id"`
	Name  string `json:"name,omitempty"`
	Count int    `json:"count"`
}

// Kfunc is one kernel function called through BTF.
type Kfunc struct {
	BTFID int32  `json:"btf_id"`
	Name  string `json:"name,omitempty"`
	Count int    `json:"count"`
}

// Map is one map the program references.
type Map struct {
	Name string `json:"name,omitempty"`
	Type string `json:"type,omitempty"`
	FD   int32  `json:"fd,omitempty"`
	Uses int    `json:"uses"`
}

// String is a string found in the program.
type String struct {
	Insn int    `json:"insn"`
	Text string `json:"text"`
	Kind string `json:"kind"`
}

// Verdict is what the rules decided. The sensor maps the rules engine's
// result into it, so this schema does not depend on the rules package.
type Verdict struct {
	Action     string      `json:"action"`                // allow | alert | block
	EnforcedBy string      `json:"enforced_by,omitempty"` // enforcer that acted (lsm, signal…); "" when nothing was enforced
	Rules      []RuleMatch `json:"rules"`
}

// RuleMatch is one rule that matched.
type RuleMatch struct {
	ID       string   `json:"id"`
	Action   string   `json:"action"`             // alert | block
	Severity string   `json:"severity,omitempty"` // info | low | medium | high | critical
	Tags     []string `json:"tags,omitempty"`
	Why      string   `json:"why,omitempty"`
}

// InsnMode selects which forms of the instructions a prog_load event carries.
type InsnMode string

// Instruction modes.
const (
	InsnModeNone InsnMode = "none"
	InsnModeText InsnMode = "text"
	InsnModeRaw  InsnMode = "raw"
	InsnModeBoth InsnMode = "both"
	// InsnModeAuto: both forms for a load a person will read (Flagged),
	// raw only for the others. Text costs the agent most of its work per
	// load and the sinks most of the bytes; raw is cheap, complete up to
	// the cap, and renders again later (inspect --event, the console).
	InsnModeAuto InsnMode = "auto"
)

// ParseInsnMode checks an --event-insns value.
func ParseInsnMode(s string) (InsnMode, error) {
	switch m := InsnMode(s); m {
	case InsnModeNone, InsnModeText, InsnModeRaw, InsnModeBoth, InsnModeAuto:
		return m, nil
	}
	return "", fmt.Errorf("instructions mode %q: want auto, none, text, raw or both", s)
}

// Forms says which forms of the instructions an event built from in
// carries under these options.
func (o InsnOptions) Forms(in ProgLoad) (text, raw bool) {
	switch o.Mode {
	case InsnModeText:
		return true, false
	case InsnModeRaw:
		return false, true
	case InsnModeBoth:
		return true, true
	case InsnModeAuto:
		return Flagged(in), true
	}
	return false, false
}

// Flagged reports whether a load is one a person should read, not only
// count: no rules judged it, a rule matched it, its verdict is anything but
// allow (alert, block, unknown), the sentry acted on the loader, the loaded
// program is not the judged one, or the sensor did not capture or judge it
// whole. InsnModeAuto puts the disassembly text in these events only.
func Flagged(in ProgLoad) bool {
	v := in.Verdict
	if v == nil || len(v.Rules) > 0 || (v.Action != "allow" && v.Action != "none" && v.Action != "") {
		return true
	}
	switch in.Outcome.Result {
	case ResultKilled, ResultDenied, ResultCorrupted:
		return true
	}
	if in.Outcome.JudgedCopyDiffers || in.Outcome.KilledByOther || in.Incomplete {
		return true
	}
	if p := in.Program; p != nil && (p.Truncated || uint64(len(p.Insns)/8) < uint64(p.InsnCnt) || (p.Loader != nil && len(p.Loader.Unknown) > 0)) {
		return true
	}
	return false
}

// Instructions carries the program's instructions, possibly capped. A capped
// list says so: shown < total and truncated is true.
type Instructions struct {
	Truncated bool      `json:"truncated"`
	Text      *InsnText `json:"text,omitempty"`
	Raw       *InsnRaw  `json:"raw,omitempty"`
}

// InsnText is the disassembly, one line per instruction (an ld_imm64 is one line).
type InsnText struct {
	Lines []string `json:"lines"`
	Shown int      `json:"shown"`
	Total int      `json:"total"`
}

// InsnRaw is the raw instruction bytes (8 per slot, little-endian), base64.
type InsnRaw struct {
	Base64 string `json:"base64"`
	Shown  int    `json:"shown_slots"`
	Total  int    `json:"total_slots"`
}

// InsnOptions caps the instructions put in events.
type InsnOptions struct {
	Mode InsnMode
	Max  int // most lines / slots per form; <= 0 means no cap
}

// DefaultInsnMax keeps a prog_load event under about 200 KiB with both forms.
const DefaultInsnMax = 4096

// ProgLoad is what the sensor (or inspect/scan) knows about one program load.
type ProgLoad struct {
	Time    time.Time
	Program *program.Program
	Report  *analysis.Report // nil when analysis failed or was skipped
	Outcome Outcome
	Verdict *Verdict // nil: no rules evaluated
	// Disasm is the rendered disassembly, one line per instruction, from the
	// insn formatters. Lines are escaped before they go into the event,
	// which shares the slice when none needs it: do not modify it after
	// NewProgLoad.
	Disasm []string
	// DisasmTotal is the program's instruction count when Disasm holds only
	// the first lines (a caller that renders no more than InsnOptions.Max
	// shows: text costs more than the rest of the event); 0: len(Disasm).
	DisasmTotal int
	// Cgroup is the loader's cgroup v2 path when resolved (CgroupPaths).
	Cgroup string
	// InsnHash is the fingerprint the kernel-side walk computed (0: none).
	InsnHash uint64
	// Incomplete: the sensor did not capture or judge this load whole (a
	// record lost, the loader's memory unreadable, a chunk hash mismatch).
	// It makes the load Flagged; the event's own fields say what is missing.
	Incomplete bool
}

// NewProgLoad builds a prog_load event. It copies and escapes everything, so
// the caller may reuse its inputs afterwards.
func NewProgLoad(in ProgLoad, opt InsnOptions) *Event {
	p := in.Program
	if p == nil {
		p = &program.Program{}
	}
	ev := &Event{Event: KindProgLoad, Time: in.Time}
	if p.Loader != nil {
		l := p.Loader
		ev.Loader = &Loader{
			PID: l.PID, TID: l.TID, PPID: l.PPID,
			Comm: Escape(l.Comm), Exe: Escape(l.Exe), CgroupID: l.CgroupID,
			ExeInode: l.ExeInode, ExeDev: l.ExeDev, ExeSHA256: Escape(l.ExeSHA256),
			Cgroup: Escape(in.Cgroup), Container: ContainerFromCgroup(in.Cgroup),
			Unknown: l.Unknown,
		}
		if l.Knows("uid") {
			ev.Loader.UID = &l.UID
		}
		if l.Knows("gid") {
			ev.Loader.GID = &l.GID
		}
	}
	slots := len(p.Insns) / 8
	pr := &Prog{
		Name:               Escape(p.Name),
		Type:               Enum{p.Type, ProgTypeName(p.Type)},
		ExpectedAttachType: Enum{p.ExpectedAttachType, attachTypeNameFor(p.Type, p.ExpectedAttachType)},
		AttachTo:           Escape(p.AttachTo),
		AttachBTFID:        p.AttachBTFID,
		License:            Escape(p.License),
		Flags:              p.Flags,
		InsnCnt:            p.InsnCnt,
		CapturedSlots:      slots,
		CaptureTruncated:   p.Truncated || uint64(slots) < uint64(p.InsnCnt),
		Source:             string(p.Source),
		Origin:             Escape(p.Origin),
	}
	if p.Kernel != nil {
		pr.Kernel = &KernelProg{ID: p.Kernel.ID, Tag: Escape(p.Kernel.Tag)}
	}
	if in.InsnHash != 0 {
		pr.InsnHash = fmt.Sprintf("0x%016x", in.InsnHash)
	}
	ev.Prog = pr
	out := in.Outcome
	if out.Result == "" {
		out.Result = ResultUnknown
	}
	out.Error = Escape(out.Error)
	ev.Outcome = &out
	if r := in.Report; r != nil {
		pr.SHA256 = r.SHA256
		pr.GPLCompatible = r.GPL
		ev.Analysis = newAnalysis(r)
	}
	if in.Verdict != nil {
		ev.Verdict = copyVerdict(in.Verdict)
	}
	text, raw := opt.Forms(in)
	ev.Instructions = newInstructions(p.Insns, in.Disasm, max(in.DisasmTotal, len(in.Disasm)), text, raw, opt.Max)
	ev.Provenance = newProvenance(p.Provenance)
	return ev
}

// attachTypeNameFor names an expected attach type. Value 0 is both
// BPF_CGROUP_INET_INGRESS and "not set", which is what it means for every
// program type but cgroup_skb; naming it there would mislead.
func attachTypeNameFor(progType, attach uint32) string {
	const progTypeCgroupSKB = 8
	if attach == 0 && progType != progTypeCgroupSKB {
		return ""
	}
	return AttachTypeName(attach)
}

func newAnalysis(r *analysis.Report) *Analysis {
	a := &Analysis{Helpers: make([]Helper, 0, len(r.Helpers))}
	for _, h := range r.Helpers {
		a.Helpers = append(a.Helpers, Helper{ID: h.ID, Name: Escape(h.Name), Count: h.Count})
	}
	for _, k := range r.Kfuncs {
		a.Kfuncs = append(a.Kfuncs, Kfunc{BTFID: k.BTFID, Name: Escape(k.Name), Count: k.Count})
	}
	for _, m := range r.Maps {
		a.Maps = append(a.Maps, Map{Name: Escape(m.Name), Type: Escape(m.Type), FD: m.FD, Uses: len(m.At)})
	}
	for _, s := range r.Strings {
		a.Strings = append(a.Strings, String{Insn: s.Insn, Text: escapeUnprintable(s.Text), Kind: Escape(string(s.Kind))})
	}
	a.Subprogs = append(a.Subprogs, r.Subprogs...)
	a.TailCalls = append(a.TailCalls, r.TailCalls...)
	for _, pb := range r.Problems {
		a.Problems = append(a.Problems, Escape(pb))
	}
	if r.ProblemsDropped > 0 { // the analysis keeps the first analysis.MaxProblems
		a.Problems = append(a.Problems, fmt.Sprintf("… and %d more decode problems (not listed)", r.ProblemsDropped))
	}
	return a
}

func copyVerdict(v *Verdict) *Verdict {
	c := &Verdict{Action: Escape(v.Action), EnforcedBy: Escape(v.EnforcedBy), Rules: make([]RuleMatch, 0, len(v.Rules))}
	for _, r := range v.Rules {
		m := RuleMatch{ID: Escape(r.ID), Action: Escape(r.Action), Severity: Escape(r.Severity), Why: Escape(r.Why)}
		for _, t := range r.Tags {
			m.Tags = append(m.Tags, Escape(t))
		}
		c.Rules = append(c.Rules, m)
	}
	if c.Action == "" || c.Action == "none" {
		c.Action = "allow" // nothing matched (the rules engine calls it none)
	}
	return c
}

func newInstructions(raw []byte, disasm []string, disasmTotal int, withText, withRaw bool, maxPerForm int) *Instructions {
	if !withText && !withRaw {
		return nil
	}
	capAt := func(total int) int {
		if maxPerForm > 0 && total > maxPerForm {
			return maxPerForm
		}
		return total
	}
	ins := &Instructions{}
	if withText {
		n := min(capAt(disasmTotal), len(disasm))
		// The event keeps the caller's lines unless one needs escaping
		// (ProgLoad.Disasm belongs to the event once given): no copy of
		// up to --event-insn-max lines per load.
		t := &InsnText{Lines: disasm[:n:n], Shown: n, Total: disasmTotal}
		if t.Lines == nil {
			t.Lines = []string{} // the schema's lines are an array, never null
		}
		copied := false
		for i := range n {
			if e := escapeUnprintable(disasm[i]); e != disasm[i] {
				if !copied {
					t.Lines, copied = slices.Clone(disasm[:n]), true
				}
				t.Lines[i] = e
			}
		}
		ins.Text = t
		ins.Truncated = ins.Truncated || n < disasmTotal
	}
	if withRaw {
		total := len(raw) / 8
		n := capAt(total)
		ins.Raw = &InsnRaw{Base64: base64String(raw[:n*8]), Shown: n, Total: total}
		ins.Truncated = ins.Truncated || n < total
	}
	return ins
}

// base64String is base64.StdEncoding.EncodeToString with one allocation
// instead of two: EncodeToString encodes into a slice and copies it into the
// string, and raw is in every prog_load event under --event-insns auto
// (11 KB of base64 at 1,000 instructions).
func base64String(raw []byte) string {
	var b strings.Builder
	b.Grow(base64.StdEncoding.EncodedLen(len(raw)))
	w := base64.NewEncoder(base64.StdEncoding, &b)
	_, _ = w.Write(raw) // a strings.Builder never fails
	_ = w.Close()
	return b.String()
}

// Sensor describes the sensor in lifecycle events.
type Sensor struct {
	Version     string  `json:"version,omitempty"`
	PID         int     `json:"pid,omitempty"`
	Hook        string  `json:"hook,omitempty"`           // lsm_prog_load, lsm_bpf, tp_btf, tracepoint, kprobe
	Enforcer    string  `json:"enforcer,omitempty"`       // lsm, signal, none
	Guarantee   string  `json:"guarantee,omitempty"`      // what the hook/enforcer pair can promise, in words
	MonitorOnly bool    `json:"monitor_only"`             // enforcement globally off
	RulesCount  int     `json:"rules_count"`              // rules active
	Reason      string  `json:"reason,omitempty"`         // sensor_stopped: why
	Uptime      float64 `json:"uptime_seconds,omitempty"` // sensor_stopped
	// Startup is sensor_started's seconds from the agent's exec to judging
	// loads (the enforcing hook attached with the rules in place).
	Startup float64 `json:"startup_seconds,omitempty"`
}

// SensorStarted is emitted once the sensor judges loads: the enforcing hook
// attached with the rules in place.
func SensorStarted(s Sensor) *Event {
	return &Event{Event: KindSensorStarted, Sensor: escapeSensor(s)}
}

// SensorStopped is emitted when the sensor detaches (reason: signal, error…).
func SensorStopped(s Sensor) *Event {
	return &Event{Event: KindSensorStopped, Sensor: escapeSensor(s)}
}

func escapeSensor(s Sensor) *Sensor {
	s.Version, s.Hook, s.Enforcer = Escape(s.Version), Escape(s.Hook), Escape(s.Enforcer)
	s.Guarantee, s.Reason = Escape(s.Guarantee), Escape(s.Reason)
	return &s
}

// Rules describes a rule set in rules_reloaded / rules_rejected events.
type Rules struct {
	Source string `json:"source"`           // file path or "embedded"
	Count  int    `json:"count"`            // rules in the set (rejected: rules still active)
	SHA256 string `json:"sha256,omitempty"` // of the rule file
	Error  string `json:"error,omitempty"`  // rules_rejected: why, with file:line:column
}

// RulesReloaded is emitted when a new rule set becomes active.
func RulesReloaded(r Rules) *Event {
	r.Source, r.SHA256, r.Error = Escape(r.Source), Escape(r.SHA256), ""
	return &Event{Event: KindRulesReloaded, Rules: &r}
}

// RulesRejected is emitted when a rule set fails validation; the previous
// set stays active and Count says how many rules that is.
func RulesRejected(r Rules) *Event {
	r.Source, r.SHA256, r.Error = Escape(r.Source), Escape(r.SHA256), Escape(r.Error)
	return &Event{Event: KindRulesRejected, Rules: &r}
}

// Loss reports events lost since the previous loss event.
type Loss struct {
	Interval float64     `json:"interval_seconds"` // time covered by these counts
	Items    []LossCount `json:"items"`
}

// Stage says where a loss happened.
type Stage string

// Loss stages.
const (
	StageCapture Stage = "capture" // before user space: ring buffer full, capture incomplete…
	StageSink    Stage = "sink"    // a sink could not deliver
)

// LossCount is one (stage, sink, reason) counter.
type LossCount struct {
	Stage  Stage  `json:"stage"`
	Sink   string `json:"sink,omitempty"` // stage sink: the sink's name
	Reason string `json:"reason"`
	Count  uint64 `json:"count"` // in this interval
	Total  uint64 `json:"total"` // since the sensor started
}
