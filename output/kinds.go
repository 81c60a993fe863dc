package output

import "slices"

// Kind names an event type; it is the value of the event's "event" field.
// Every kind is registered in kindTable below: that row is the one place a
// kind is declared (docs/EVENTS.md, top, says what else a new kind needs;
// kinds_test.go names whatever is missing).
type Kind string

// The kinds of event the sentry emits; kindTable says what each one means.
const (
	KindProgLoad       Kind = "prog_load"
	KindSensorStarted  Kind = "sensor_started"
	KindSensorStopped  Kind = "sensor_stopped"
	KindRulesReloaded  Kind = "rules_reloaded"
	KindRulesRejected  Kind = "rules_rejected"
	KindLoss           Kind = "loss"
	KindTamper         Kind = "tamper"
	KindProgPresent    Kind = "prog_present"
	KindProgUnseen     Kind = "prog_unseen"
	KindProgHidden     Kind = "prog_hidden"
	KindFleetFirstSeen Kind = "fleet_first_seen"
	KindHeartbeat      Kind = "heartbeat"
	KindCbpfAttach     Kind = "cbpf_attach"
	KindProgAttach     Kind = "prog_attach"
	KindProgDetach     Kind = "prog_detach"
	KindProgArrayWrite Kind = "prog_array_write"
	KindTokenCreate    Kind = "token_create"
	KindMapCreate      Kind = "map_create"
)

// KindSpec is everything about one kind of event that is not its payload's
// fields: the section that carries them, its Elastic Common Schema class and
// a one-line description (the row of docs/EVENTS.md's kind table).
type KindSpec struct {
	Kind Kind
	// Section is the JSON name of the Event field that carries the kind's
	// payload (a Go type of this package, a $defs entry of
	// docs/event.schema.json); the schema requires it for this kind.
	Section string
	// ECS is the kind's event.kind, event.category and event.type in the
	// ECS shape; ecs, when set, refines them and writes the message.
	ECS ECSClass
	// Doc says in one line what an event of this kind reports.
	Doc string

	ecs func(ev *Event, e *ECSEvent)
}

// ECSClass is the Elastic Common Schema classification of a kind: the
// values its events start from (an ecs mapper may turn an event into an
// alert or add a category, as prog_load does when rules matched).
type ECSClass struct {
	Kind     string // event.kind: event | alert | metric
	Category string // event.category
	Type     string // event.type
}

// kindTable registers every kind, in the order docs/EVENTS.md shows them.
// To add a kind: a const above, a row here, then what docs/EVENTS.md (top)
// lists; go test ./output names each piece still missing.
var kindTable = []KindSpec{
	{Kind: KindProgLoad, Section: "prog", ECS: ECSClass{"event", "process", "info"}, ecs: ecsProgLoad,
		Doc: "a BPF_PROG_LOAD was seen: the program, its loader, the outcome, the analysis and the verdict"},
	{Kind: KindProgPresent, Section: "resident", ECS: ECSClass{"event", "process", "info"}, ecs: ecsResident,
		Doc: "a program already loaded when run started, with who holds it"},
	{Kind: KindProgUnseen, Section: "resident", ECS: ECSClass{"event", "process", "info"}, ecs: ecsResident,
		Doc: "a loaded program the load hook never reported"},
	{Kind: KindProgHidden, Section: "hidden", ECS: ECSClass{"alert", "intrusion_detection", "info"}, ecs: ecsHidden,
		Doc: "a program one view of the kernel shows and another misses"},
	{Kind: KindCbpfAttach, Section: "cbpf", ECS: ECSClass{"event", "process", "info"}, ecs: ecsCbpfAttach,
		Doc: "a classic BPF socket filter attached with setsockopt"},
	{Kind: KindProgAttach, Section: "attach", ECS: ECSClass{"event", "process", "change"}, ecs: ecsProgAttach,
		Doc: "a loaded program attached or replaced: the target named, the program's facts, the result and the verdict"},
	{Kind: KindProgDetach, Section: "attach", ECS: ECSClass{"event", "process", "change"}, ecs: ecsProgAttach,
		Doc: "a program detached (a link or a BPF_PROG_ATTACH attachment)"},
	{Kind: KindProgArrayWrite, Section: "prog_array", ECS: ECSClass{"event", "process", "change"}, ecs: ecsProgArrayWrite,
		Doc: "a program written into (or deleted from) a prog_array, a tail-call table; a swap replaces one"},
	{Kind: KindTokenCreate, Section: "provenance", ECS: ECSClass{"event", "process", "info"}, ecs: ecsTokenCreate,
		Doc: "a BPF token was created: its creator, user namespace, bpffs mount and delegation"},
	{Kind: KindMapCreate, Section: "map", ECS: ECSClass{"event", "process", "creation"}, ecs: ecsMapCreate,
		Doc: "a BPF map was created through a BPF token: the map, its creator and the token's origin"},
	{Kind: KindSensorStarted, Section: "sensor", ECS: ECSClass{"event", "process", "start"}, ecs: ecsSensor,
		Doc: "the sensor judges loads (hook attached, rules in place)"},
	{Kind: KindSensorStopped, Section: "sensor", ECS: ECSClass{"event", "process", "end"}, ecs: ecsSensor,
		Doc: "the sensor detached"},
	{Kind: KindRulesReloaded, Section: "rules", ECS: ECSClass{"event", "configuration", "change"}, ecs: ecsRules,
		Doc: "a new rule set is active"},
	{Kind: KindRulesRejected, Section: "rules", ECS: ECSClass{"event", "configuration", "error"}, ecs: ecsRules,
		Doc: "a rule set failed validation; the previous one stays active"},
	{Kind: KindLoss, Section: "loss", ECS: ECSClass{"metric", "host", "info"}, ecs: ecsLoss,
		Doc: "events were lost (capture or delivery), counted per stage, sink and reason"},
	{Kind: KindTamper, Section: "tamper", ECS: ECSClass{"alert", "intrusion_detection", "change"}, ecs: ecsTamper,
		Doc: "the sensor's kernel state or enforcement was changed by someone else"},
	{Kind: KindFleetFirstSeen, Section: "fleet", ECS: ECSClass{"alert", "intrusion_detection", "info"}, ecs: ecsFleetFirstSeen,
		Doc: "a program fingerprint new to the whole fleet (ebpf-sentry fleet)"},
	{Kind: KindHeartbeat, Section: "heartbeat", ECS: ECSClass{"metric", "host", "info"}, ecs: ecsHeartbeat,
		Doc: "periodic: the sensor's hooks are attached and its tables intact"},
}

// kindSpecs indexes kindTable.
var kindSpecs = func() map[Kind]*KindSpec {
	m := make(map[Kind]*KindSpec, len(kindTable))
	for i := range kindTable {
		m[kindTable[i].Kind] = &kindTable[i]
	}
	return m
}()

// Kinds returns every registered kind's spec, in the order of docs/EVENTS.md.
func Kinds() []KindSpec { return slices.Clone(kindTable) }

// LookupKind returns the spec of a registered kind.
func LookupKind(k Kind) (KindSpec, bool) {
	if s, ok := kindSpecs[k]; ok {
		return *s, true
	}
	return KindSpec{}, false
}
