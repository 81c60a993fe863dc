package output

import (
	"fmt"
	"strings"
	"time"
)

// ECSVersion is the Elastic Common Schema version the ecs format follows.
const ECSVersion = "8.11.0"

// ECSEvent is an event shaped for Elastic Common Schema: the standard fields
// a SIEM indexes and correlates on (@timestamp, event.*, host.*, process.*,
// user.*, rule.*) filled from the native event, and the native sections
// unchanged under ebpf_sentry, so nothing is lost in the mapping.
type ECSEvent struct {
	Timestamp time.Time `json:"@timestamp"`
	ECS       struct {
		Version string `json:"version"`
	} `json:"ecs"`
	Message string       `json:"message"`
	Event   ECSEventInfo `json:"event"`
	Host    struct {
		Name string `json:"name"`
	} `json:"host"`
	Agent struct {
		Type string `json:"type"`
	} `json:"agent"`
	Process *ECSProcess `json:"process,omitempty"`
	// Container and Orchestrator come from the loader's cgroup path.
	Container    *ECSContainer    `json:"container,omitempty"`
	Orchestrator *ECSOrchestrator `json:"orchestrator,omitempty"`
	User         *ECSID           `json:"user,omitempty"`
	Group        *ECSID           `json:"group,omitempty"`
	Rule         *ECSRule         `json:"rule,omitempty"`
	Sentry       *Event           `json:"ebpf_sentry"`
}

// ECSEventInfo is ECS's event.* field set.
type ECSEventInfo struct {
	Kind     string   `json:"kind"`     // event | alert
	Category []string `json:"category"` // process, intrusion_detection, configuration
	Type     []string `json:"type"`     // info, denied, start, end, change, error
	Action   string   `json:"action"`   // the native event kind with dashes
	Outcome  string   `json:"outcome,omitempty"`
	ID       string   `json:"id"`
	Sequence uint64   `json:"sequence"`
	Severity int      `json:"severity"` // the syslog severity (0 worst … 7)
	Dataset  string   `json:"dataset"`
	Module   string   `json:"module"`
}

// ECSProcess is ECS's process.* for the loader.
type ECSProcess struct {
	PID        uint32 `json:"pid"`
	Name       string `json:"name"`
	Executable string `json:"executable,omitempty"`
	// Hash is the executable's sha256 (loader.exe_sha256, prog_load only).
	// ECS has no field for its inode and device: they stay in
	// ebpf_sentry.loader.exe_inode and exe_dev.
	Hash   *ECSHash `json:"hash,omitempty"`
	Thread struct {
		ID uint32 `json:"id"`
	} `json:"thread"`
	Parent struct {
		PID uint32 `json:"pid"`
	} `json:"parent"`
}

// ECSHash is ECS's hash.* of a file.
type ECSHash struct {
	SHA256 string `json:"sha256"`
}

// ecsProcess is the loader as ECS's process.*.
func ecsProcess(l *Loader) *ECSProcess {
	p := &ECSProcess{PID: l.PID, Name: l.Comm, Executable: l.Exe}
	p.Thread.ID, p.Parent.PID = l.TID, l.PPID
	if l.ExeSHA256 != "" {
		p.Hash = &ECSHash{SHA256: l.ExeSHA256}
	}
	return p
}

// ECSContainer is ECS's container.* for the loader's container.
type ECSContainer struct {
	ID      string `json:"id"`
	Runtime string `json:"runtime,omitempty"`
}

// ECSOrchestrator is ECS's orchestrator.* for the loader's pod: its UID
// (orchestrator.resource.id, type pod).
type ECSOrchestrator struct {
	Type     string `json:"type"`
	Resource struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"resource"`
}

// ECSID is an ECS object whose only field here is its id (user, group).
type ECSID struct {
	ID string `json:"id"`
}

// ECSRule is ECS's rule.*; with several matches the fields are arrays, as
// Elasticsearch allows for any field.
type ECSRule struct {
	ID       []string `json:"id"`
	Ruleset  string   `json:"ruleset"`
	Category []string `json:"category,omitempty"` // severities
}

// ToECS maps a stamped event to its ECS shape.
func ToECS(ev *Event) *ECSEvent {
	e := &ECSEvent{Timestamp: ev.Time, Sentry: ev}
	e.ECS.Version = ECSVersion
	e.Host.Name = ev.Host
	e.Agent.Type = "ebpf-sentry"
	e.Event = ECSEventInfo{
		Kind: "event", ID: ev.ID, Sequence: ev.Seq, Severity: int(severityOf(ev)),
		Action: strings.ReplaceAll(string(ev.Event), "_", "-"), Dataset: "ebpf_sentry." + string(ev.Event), Module: "ebpf_sentry",
	}
	if spec, ok := kindSpecs[ev.Event]; ok {
		e.Event.Kind, e.Event.Category, e.Event.Type = spec.ECS.Kind, []string{spec.ECS.Category}, []string{spec.ECS.Type}
		if spec.ecs != nil {
			spec.ecs(ev, e)
		}
	}
	return e
}

func ecsProgLoad(ev *Event, e *ECSEvent) {
	e.Event.Category, e.Event.Type = []string{"process"}, []string{"info"}
	name := ""
	if ev.Prog != nil {
		name = ev.Prog.Name
	}
	e.Message = "BPF program " + name + " loaded"
	if o := ev.Outcome; o != nil {
		switch o.Result {
		case ResultLoaded:
			e.Event.Outcome = "success"
		case ResultUnknown:
			e.Event.Outcome = "unknown"
		default:
			e.Event.Outcome = "failure"
			e.Event.Type = []string{"denied"}
			if o.Result == ResultFailed {
				e.Event.Type = []string{"error"}
			}
			e.Message = "BPF program " + name + " " + string(o.Result)
		}
	}
	if l := ev.Loader; l != nil {
		e.Process = ecsProcess(l)
		if c := l.Container; c != nil {
			e.Container = &ECSContainer{ID: c.ID, Runtime: c.Runtime}
			if c.PodUID != "" {
				o := &ECSOrchestrator{Type: "kubernetes"}
				o.Resource.Type, o.Resource.ID = "pod", c.PodUID
				e.Orchestrator = o
			}
		}
		if l.UID != nil {
			e.User = &ECSID{ID: fmt.Sprint(*l.UID)}
		}
		if l.GID != nil {
			e.Group = &ECSID{ID: fmt.Sprint(*l.GID)}
		}
		e.Message += " by " + l.Comm
	}
	if v := ev.Verdict; v != nil && len(v.Rules) > 0 {
		e.Event.Kind = "alert"
		e.Event.Category = append(e.Event.Category, "intrusion_detection")
		r := &ECSRule{Ruleset: "ebpf-sentry"}
		for _, m := range v.Rules {
			r.ID = append(r.ID, m.ID)
			if m.Severity != "" {
				r.Category = append(r.Category, m.Severity)
			}
		}
		e.Rule = r
		e.Message += " (rules: " + strings.Join(r.ID, ", ") + "; " + v.Action + ")"
	}
}

// The ECS mappers of the kinds (KindSpec.ecs): each starts from its kind's
// ECSClass and writes the message.

func ecsCbpfAttach(ev *Event, e *ECSEvent) {
	e.Message = "socket filter attached"
	if c := ev.Cbpf; c != nil {
		e.Message += " with " + c.Option
	}
	ecsByAndJudged(ev, e)
}

func ecsHidden(ev *Event, e *ECSEvent) {
	e.Message = "BPF program hidden"
	if h := ev.Hidden; h != nil {
		e.Message = fmt.Sprintf("BPF program id %d tag %s %s seen by %s, missing from %s", h.ID, h.Tag, h.Name,
			strings.Join(h.SeenBy, ","), strings.Join(h.MissingFrom, ","))
	}
}

func ecsResident(ev *Event, e *ECSEvent) {
	ecsProgLoad(ev, e)
	name := ""
	if ev.Prog != nil {
		name = ev.Prog.Name
	}
	what := map[Kind]string{KindProgPresent: " present", KindProgUnseen: " loaded unseen by the load hook"}[ev.Event]
	e.Message = "BPF program " + name + what + strings.TrimPrefix(e.Message, "BPF program "+name+" loaded")
}

func ecsSensor(ev *Event, e *ECSEvent) {
	e.Message = "ebpf-sentry started"
	if ev.Event == KindSensorStopped {
		e.Message = "ebpf-sentry stopped"
	}
	if ev.Sensor != nil && ev.Sensor.Hook != "" {
		e.Message += ": hook " + ev.Sensor.Hook + ", enforcer " + ev.Sensor.Enforcer
	}
}

func ecsRules(ev *Event, e *ECSEvent) {
	e.Event.Outcome = "success"
	e.Message = "rules reloaded"
	if ev.Event == KindRulesRejected {
		e.Event.Outcome, e.Message = "failure", "rules rejected"
	}
	if ev.Rules != nil {
		e.Message += " from " + ev.Rules.Source
	}
}

func ecsTamper(ev *Event, e *ECSEvent) {
	e.Message = "ebpf-sentry tampered with"
	if ev.Tamper != nil {
		e.Message += ": " + ev.Tamper.What + ": " + ev.Tamper.Detail
	}
}

func ecsFleetFirstSeen(ev *Event, e *ECSEvent) {
	if f := ev.Fleet; f != nil {
		e.Message = "program " + f.SHA256 + " (" + f.Name + ") new to the fleet, first on " + f.Host
	}
}

func ecsHeartbeat(ev *Event, e *ECSEvent) {
	e.Message = "ebpf-sentry heartbeat"
	if hb := ev.Heartbeat; hb != nil {
		e.Message += fmt.Sprintf(": %d/%d hooks attached, tables intact %v", hb.HooksAttached, hb.Hooks, hb.TablesIntact)
	}
}

func ecsLoss(ev *Event, e *ECSEvent) {
	var n uint64
	if ev.Loss != nil {
		for _, it := range ev.Loss.Items {
			n += it.Count
		}
	}
	e.Message = fmt.Sprintf("%d events lost", n)
}

func ecsProgArrayWrite(ev *Event, e *ECSEvent) {
	e.Message = "prog_array write"
	if w := ev.ProgArray; w != nil {
		e.Message = fmt.Sprintf("prog_array %d slot %d: %s", w.MapID, w.Key, w.Op)
		if w.Swap {
			e.Message = fmt.Sprintf("prog_array %d slot %d: tail-call swap of prog %d for prog %d", w.MapID, w.Key, w.OldProgID, w.ProgID)
		}
		if w.Errno != 0 {
			e.Message += fmt.Sprintf(" (failed, errno %d)", w.Errno)
		}
	}
	if l := ev.Loader; l != nil {
		e.Process = ecsProcess(l)
		e.Message += " by " + l.Comm
	}
}

// ecsByAndJudged completes an attach-style message: the process that acted
// (" by COMM") and, when rules matched, the alert with their ids and action.
func ecsByAndJudged(ev *Event, e *ECSEvent) {
	if l := ev.Loader; l != nil {
		e.Process = ecsProcess(l)
		e.Message += " by " + l.Comm
	}
	if v := ev.Verdict; v != nil && len(v.Rules) > 0 {
		e.Event.Kind = "alert"
		e.Event.Category = append(e.Event.Category, "intrusion_detection")
		r := &ECSRule{Ruleset: "ebpf-sentry"}
		for _, m := range v.Rules {
			r.ID = append(r.ID, m.ID)
		}
		e.Rule = r
		e.Message += " (rules: " + strings.Join(r.ID, ", ") + "; " + v.Action + ")"
	}
}
