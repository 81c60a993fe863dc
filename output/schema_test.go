package output

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaBase = "https://github.com/ebpf-sentry/ebpf-sentry/docs/"

var (
	schemaOnce sync.Once
	schemas    map[string]*jsonschema.Schema
	schemaErr  error
)

// compileSchemas compiles docs/event.schema.json and the ECS variant, which
// refers to the first, each registered under its $id.
func compileSchemas() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	c.AssertContent()
	names := []string{"event.schema.json", "event-ecs.schema.json"}
	for _, name := range names {
		f, err := os.Open(testutils.Root() + "/docs/" + name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range names {
		s, err := c.Compile(schemaBase + name)
		if err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

func schemaNamed(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() { schemas, schemaErr = compileSchemas() })
	if schemaErr != nil {
		t.Fatalf("compile docs/*.schema.json: %v", schemaErr)
	}
	return schemas[name]
}

func eventSchema(t testing.TB) *jsonschema.Schema { return schemaNamed(t, "event.schema.json") }

// validateECS checks one ECS-shaped event against docs/event-ecs.schema.json.
func validateECS(t testing.TB, line []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
	if err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, line)
	}
	if err := schemaNamed(t, "event-ecs.schema.json").Validate(inst); err != nil {
		t.Fatalf("ECS event does not match the schema: %v\n%s", err, line)
	}
}

// validate checks one encoded event against docs/event.schema.json.
func validate(t testing.TB, line []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
	if err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, line)
	}
	if err := eventSchema(t).Validate(inst); err != nil {
		t.Fatalf("event does not match the schema: %v\n%s", err, line)
	}
}

// hostile is what a malicious loader can put in names: control characters,
// an escape sequence, invalid UTF-8, a bidi override and no NUL at all.
var hostile = CString([]byte("evil\n\x1b[2J\xff\xfe\u202e\x00ignored"))

// sampleProgram is a program with every metadata field set.
func sampleProgram(slots int) *program.Program {
	raw := make([]byte, 0, slots*8)
	for i := range slots - 1 {
		raw = append(raw, 0xb7, 0x00, 0, 0, byte(i), byte(i>>8), 0, 0) // r0 = i
	}
	raw = append(raw, 0x95, 0, 0, 0, 0, 0, 0, 0) // exit
	return &program.Program{
		Source: program.SourceSensor, Name: hostile, Type: 5, ExpectedAttachType: 23,
		AttachTo: "syscalls/sys_enter_execve", License: "GPL", InsnCnt: uint32(slots), Insns: raw,
		Loader: &program.Loader{PID: 42, TID: 43, PPID: 1, UID: 0, GID: 0,
			Comm: CString([]byte("0123456789abcdef")), Exe: "/tmp/\x07loader", CgroupID: 1234},
		Kernel: &program.Kernel{ID: 77, Tag: "0123456789abcdef"},
	}
}

func sampleReport() *analysis.Report {
	return &analysis.Report{
		InsnCount: 3, SHA256: strings.Repeat("ab", 32), License: "GPL", GPL: true,
		Helpers:  []analysis.HelperUse{{ID: 6, Name: "bpf_trace_printk", Count: 2, At: []int{1, 5}}},
		Kfuncs:   []analysis.KfuncUse{{BTFID: 1000, Name: "bpf_task_acquire", Count: 1, At: []int{3}}},
		Subprogs: []int{10}, TailCalls: []int{12},
		Maps:     []analysis.MapUse{{Name: "events", Type: "ringbuf", FD: 4, At: []int{0, 7}}},
		Strings:  []analysis.String{{Insn: 2, Text: `pass\x0a`, Kind: analysis.StringStack}, {Insn: 4, Text: "raw\x01ctl", Kind: analysis.StringData}},
		Problems: []string{"insn 9 (byte 72): unknown opcode 0xff"},
	}
}

func disasmLines(slots int) []string {
	lines := make([]string, slots)
	for i := range slots - 1 {
		lines[i] = "r0 = " + strings.Repeat("1", 1+i%5)
	}
	lines[slots-1] = "exit"
	return lines
}

// everyEvent returns one event of every kind the package can build, in
// minimal and full variants, with hostile strings where strings come from
// outside.
func everyEvent() map[string]*Event {
	full := ProgLoad{
		Time: time.Unix(1700000000, 123456789), Program: sampleProgram(20), Report: sampleReport(),
		Outcome: NewOutcome(ResultKilled, 1),
		Verdict: &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{
			{ID: "exechijack", Action: "block", Severity: "critical", Tags: []string{"rootkit"}, Why: "helpers " + hostile},
			{ID: "printk", Action: "alert", Severity: "low"},
		}},
		Disasm: disasmLines(20),
	}
	return map[string]*Event{
		"a prog_load with everything and both instruction forms": NewProgLoad(full, InsnOptions{Mode: InsnModeBoth}),
		"a prog_load whose instructions are capped":              NewProgLoad(full, InsnOptions{Mode: InsnModeBoth, Max: 5}),
		"a prog_load with text instructions only":                NewProgLoad(full, InsnOptions{Mode: InsnModeText}),
		"a prog_load with raw instructions only":                 NewProgLoad(full, InsnOptions{Mode: InsnModeRaw}),
		"a prog_load with nothing but a bare program":            NewProgLoad(ProgLoad{Program: &program.Program{}}, InsnOptions{}),
		"a blocked prog_load under the default auto mode":        NewProgLoad(full, InsnOptions{Mode: InsnModeAuto, Max: DefaultInsnMax}),
		"an allowed prog_load under the default auto mode": NewProgLoad(ProgLoad{Time: full.Time, Program: sampleProgram(20), Report: sampleReport(),
			Outcome: NewOutcome(ResultLoaded, 0), Verdict: &Verdict{Action: "allow"}, Disasm: disasmLines(20)}, InsnOptions{Mode: InsnModeAuto, Max: DefaultInsnMax}),
		"a prog_load with no program at all": NewProgLoad(ProgLoad{}, InsnOptions{Mode: InsnModeBoth}),
		"a prog_load of an unknown type that failed to load": NewProgLoad(ProgLoad{
			Program: &program.Program{Name: "x", Type: 999, ExpectedAttachType: 999, InsnCnt: 4, Insns: make([]byte, 8), Truncated: true},
			Outcome: NewOutcome(ResultFailed, 22), Verdict: &Verdict{},
		}, InsnOptions{Mode: InsnModeText}),
		"a prog_load from a container of a Kubernetes pod": NewProgLoad(ProgLoad{Program: sampleProgram(4),
			Cgroup: "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod8d6e2f5b_7a1c_4e3d_9b2a_1c0d9e8f7a6b.slice/cri-containerd-" + strings.Repeat("ab", 32) + ".scope"}, InsnOptions{}),
		"a prog_load from a container of a hostile containerd namespace": NewProgLoad(ProgLoad{Program: sampleProgram(4),
			Cgroup: "/ns\x1b\n/" + strings.Repeat("cd", 32)}, InsnOptions{}),
		"a sensor_started": SensorStarted(Sensor{Version: "dev", PID: 1, Hook: "tp_btf", Enforcer: "signal", Guarantee: "loader killed after load\n", RulesCount: 4}),
		"a sensor_stopped": SensorStopped(Sensor{Version: "dev", PID: 1, Reason: "signal: terminated", Uptime: 3.5}),
		"a rules_reloaded": RulesReloaded(Rules{Source: "/etc/ebpf-sentry/rules.yaml", Count: 7, SHA256: strings.Repeat("0f", 32)}),
		"a rules_rejected": RulesRejected(Rules{Source: "/etc/rules.yaml", Count: 7, Error: "rules.yaml:3:5: unknown field \"\x1b\""}),
		"a prog_load whose header was lost": NewProgLoad(ProgLoad{
			Program: &program.Program{Loader: &program.Loader{PID: 42, Unknown: program.HeaderFields}},
			Outcome: NewOutcome(ResultKilled, 0), Verdict: &Verdict{Action: "unknown"},
		}, InsnOptions{}),
		"a tamper with the config": NewTamper(Tamper{What: TamperConfig, Detail: "mode enforce -> monitor\x1b[2J"}),
		"a tamper of enforcement":  NewTamper(Tamper{What: TamperEnforcement, Detail: "blocked by e2e-block, loaded", LoadID: 7}),
		"an access attempt":        NewTamper(Tamper{What: TamperAccess, Detail: "BPF_MAP_UPDATE_ELEM on the sentry's map 12 by pid 7 (uid 0): killed"}),
		"a prog_present with holders, pins, links and a response": NewResident(KindProgPresent, ProgLoad{
			Time: time.Unix(1700000000, 0), Program: sampleProgram(4), Report: sampleReport(), Verdict: full.Verdict, Disasm: disasmLines(4),
		}, Resident{LoadedAt: time.Unix(1690000000, 0), UID: 0,
			Holders: []Holder{{PID: 42, FD: 3, Comm: hostile, Exe: "/tmp/\x07x", ExeDev: 2049, ExeIno: 77}},
			Pinned:  []string{"/sys/fs/bpf/" + hostile}, Links: []ResidentLink{{ID: 5, Type: "tracing", Target: hostile}},
			Response: &ResidentAction{Action: "kill-holders", Done: []string{"killed pid 42"}, Survives: []string{"pinned " + hostile}}}, InsnOptions{Mode: InsnModeBoth}),
		"a prog_hidden from kallsyms only": NewHidden(ProgLoad{}, Hidden{Tag: "0123456789abcdef", Name: hostile, SeenBy: []string{"kallsyms"}, MissingFrom: []string{"get_next_id"}}, InsnOptions{}),
		"a prog_hidden read by id and judged": NewHidden(ProgLoad{Program: sampleProgram(3), Report: sampleReport(), Verdict: full.Verdict, Disasm: disasmLines(3)},
			Hidden{ID: 77, SeenBy: []string{"bpf_iter"}, MissingFrom: []string{"get_next_id"}}, InsnOptions{Mode: InsnModeBoth}),
		"a cbpf_attach of a magic-packet filter, blocked": NewCbpfAttach(time.Unix(1700000000, 0),
			Loader{PID: 42, TID: 42, PPID: 1, UID: new(uint32), GID: new(uint32), Comm: hostile, Exe: "/tmp/door"},
			Cbpf{Option: "SO_ATTACH_FILTER", FD: 3, Socket: "packet", Len: 9, Ports: []uint32{53},
				Magic: []CbpfCompare{{Insn: 6, Load: "[x + 22]", Size: 2, Op: "jeq", Value: 0x7255}}, Disassembly: []string{"(000) ldh      [12]", hostile}},
			&Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "cbpf-magic", Action: "block", Severity: "high"}}}),
		"a cbpf_attach with bad arguments": NewCbpfAttach(time.Unix(1700000000, 0), Loader{PID: 1, Comm: "x", Unknown: []string{"tid", "ppid", "uid", "gid"}},
			Cbpf{Option: "SO_ATTACH_FILTER", FD: 5, Len: 5000, Problem: "filter length 5000 outside 1..4096"}, nil),
		"a prog_attach of a tracepoint program to getdents64, alerted": NewProgAttach(time.Unix(1700000000, 0), false,
			Loader{PID: 42, TID: 42, PPID: 1, UID: new(uint32), GID: new(uint32), Comm: hostile, Exe: "/tmp/hide"},
			Attach{Op: "link_create", ProgID: 7, LinkID: 3, AttachType: "perf_event", Result: "attached", ProgFacts: "load",
				Target: AttachTarget{Kind: "tracepoint", Name: "syscalls/sys_enter_getdents64"}},
			sampleProgram(3), sampleReport(),
			&Verdict{Action: "alert", Rules: []RuleMatch{{ID: "getdents-hook", Action: "alert", Severity: "high"}}}),
		"a prog_attach of a uprobe, blocked: the program stays loaded": NewProgAttach(time.Unix(1700000000, 0), false,
			Loader{PID: 42, Comm: "x", Unknown: []string{"ppid"}},
			Attach{Op: "perf_event_set_bpf", ProgID: 9, Result: "killed", ProgFacts: "kernel", Note: "blocked: the program stays loaded and unused\x00",
				Target: AttachTarget{Kind: "uprobe", Name: "/lib/libpam.so.0:pam_get_authtok", Binary: "/lib/libpam.so.0", Symbol: hostile, Offset: 4096}},
			nil, nil, &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "pam", Action: "block", Severity: "high"}}}),
		"a blocked prog_attach to a cgroup that the agent detached": NewProgAttach(time.Unix(1700000000, 0), false,
			Loader{PID: 42, Comm: "x", Unknown: []string{"ppid"}},
			Attach{Op: "prog_attach", ProgID: 9, AttachType: "cgroup_inet_ingress", Result: "killed", ProgFacts: "load",
				Target: AttachTarget{Kind: "cgroup", Name: "/sys", Cgroup: "/sys", CgroupID: 77},
				Undo:   &AttachUndo{Outcome: "detached_by_sentry", WindowNS: 340000}},
			nil, nil, &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "no-cgroup", Action: "block", Severity: "high"}}}),
		"a blocked prog_attach the agent could not detach": NewProgAttach(time.Unix(1700000000, 0), false,
			Loader{PID: 42, Comm: "x", Unknown: []string{"ppid"}},
			Attach{Op: "prog_attach", ProgID: 9, AttachType: "lirc_mode2", Result: "killed", ProgFacts: "load", Target: AttachTarget{Kind: "other"},
				Undo: &AttachUndo{Outcome: "detach_failed", WindowNS: 1000, Error: hostile}},
			nil, nil, &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "no-lirc", Action: "block", Severity: "high"}}}),
		"a prog_detach that failed": NewProgAttach(time.Unix(1700000000, 0), true, Loader{PID: 1, Comm: "x", UID: new(uint32), GID: new(uint32)},
			Attach{Op: "link_detach", LinkID: 99, Result: "failed", Errno: 9, ProgFacts: "unknown", Target: AttachTarget{Kind: "other"}}, nil, nil, nil),
		"a prog_detach of a link released when its attacher exited": NewProgAttach(time.Unix(1700000000, 0), true,
			Loader{PID: 42, TID: 42, UID: new(uint32), GID: new(uint32), Comm: hostile, Unknown: []string{"ppid"}},
			Attach{Op: "link_released", ProgID: 7, LinkID: 3, AttachType: "perf_event", Result: "attached", ProgFacts: "load",
				Target: AttachTarget{Kind: "tracepoint", Name: "syscalls/sys_enter_getdents64"}, Release: &AttachRelease{Observed: "attacher_exit", DetectedWithinMS: 12}},
			sampleProgram(3), nil, nil),
		"a prog_detach of a perf event released, found by the sweep": NewProgAttach(time.Unix(1700000000, 0), true,
			Loader{PID: 42, Comm: "x", Unknown: []string{"ppid"}},
			Attach{Op: "perf_event_released", ProgID: 9, Result: "attached", ProgFacts: "kernel", Target: AttachTarget{Kind: "tracepoint", Name: hostile},
				Release: &AttachRelease{Observed: "sweep", DetectedWithinMS: 2000, HolderPID: 43, HolderFD: 5}},
			nil, nil, nil),
		"a prog_array_write swapping a tail-call target": NewProgArrayWrite(time.Unix(1700000000, 0),
			Loader{PID: 42, TID: 42, UID: new(uint32), Comm: hostile, Unknown: []string{"ppid", "gid"}},
			ProgArrayWrite{Op: "update", MapID: 7, Key: 0, ValueFD: 5, ProgID: 12, OldProgID: 11, Swap: true, Group: GroupRef{TGID: 42, StartNS: 1}}),
		"a failed prog_array_write": NewProgArrayWrite(time.Unix(1700000000, 0), Loader{PID: 1, Comm: "x", Unknown: []string{"tid", "ppid", "uid", "gid"}},
			ProgArrayWrite{Op: "update", MapID: 7, ValueFD: 9999, Errno: 9, Group: GroupRef{TGID: 1}}),
		"a prog_load from an in-kernel loader, its caller killed": WithViaLoader(NewProgLoad(ProgLoad{Time: time.Unix(1700000000, 0), Program: sampleProgram(4),
			Report: sampleReport(), Verdict: full.Verdict, Outcome: NewOutcome(ResultKilled, 0)}, InsnOptions{}),
			ViaLoader{ID: 12, Tag: "0123456789abcdef", Name: hostile, Response: &ResidentAction{Action: "kill", Done: []string{"killed pid 42 (" + hostile + ")"}, Survives: []string{"prog 13 pinned at /sys/fs/bpf/" + hostile}}}),
		"a prog_load from an in-kernel loader, allowed": WithViaLoader(NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{}),
			ViaLoader{ID: 12, Tag: "0123456789abcdef", Name: "__loader.prog"}),
		"a bare prog_unseen": NewResident(KindProgUnseen, ProgLoad{Program: &program.Program{Name: "x"}}, Resident{}, InsnOptions{}),
		"a loss":             {Event: KindLoss, Loss: &Loss{Interval: 10, Items: []LossCount{{Stage: StageCapture, Reason: "ringbuf_full", Count: 3, Total: 9}, {Stage: StageSink, Sink: "stdout", Reason: ReasonQueueFull, Count: 1, Total: 1}}}},
		"a fleet_first_seen": NewFleetFirstSeen(FleetFirstSeen{SHA256: strings.Repeat("ab", 32), Name: "evil\x00", ProgType: "kprobe",
			Host: "web-1", Time: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), LoaderExe: "/tmp/x", EventID: "3f9a-7"}),
		"a heartbeat":                  NewHeartbeat(Heartbeat{Hooks: 2, HooksAttached: 2, TablesIntact: true, LoadsJudged: 17, Interval: 30}),
		"a heartbeat with a hook gone": NewHeartbeat(Heartbeat{Hooks: 2, HooksAttached: 1, Detached: []string{"link 7: gone\n"}, Interval: 30}),
		"a token_create": NewTokenCreate(time.Unix(1700000000, 0), Loader{PID: 7, TID: 7, Comm: hostile, Exe: "/usr/bin/creator"},
			&program.Token{Inode: 12, Dev: 40, UserNS: 4026532001, AllowedCmds: program.Delegation{Mask: 1 << 5, Names: []string{"prog_load"}},
				Mount: hostile, Creator: &program.TokenCreator{PID: 7, Comm: hostile}}),
		"a map_create through a token": NewMapCreate(time.Unix(1700000000, 0), Loader{PID: 9, TID: 9, Comm: hostile, Exe: "/usr/bin/maker"},
			MapCreate{MapID: 12, Type: "array", KeySize: 4, ValueSize: 8, MaxEntries: 1, Flags: 1 << 16, Name: hostile},
			&program.Provenance{ViaToken: true, TokenFD: 3, Token: &program.Token{UserNS: 4026532871, Creator: &program.TokenCreator{PID: 7, Comm: hostile}}}),
		"a failed map_create": NewMapCreate(time.Unix(1700000000, 0), Loader{PID: 9, Comm: "x"}, MapCreate{Type: "hash", Errno: 1},
			&program.Provenance{ViaToken: true, TokenFD: 99, Token: &program.Token{Error: "token fd 99 of pid 9: no such file or directory"}}),
		"a failed token_create": NewTokenCreate(time.Unix(1700000000, 0), Loader{PID: 8, Comm: "x"}, &program.Token{Error: "EPERM", Creator: &program.TokenCreator{PID: 8}}),
	}
}

func TestEveryEventKindMatchesTheSchema(t *testing.T) {
	p := NewPipeline(Config{Host: "host\x00name", LossInterval: -1})
	defer p.Close(t.Context())
	kinds := map[Kind]bool{}
	for name, ev := range everyEvent() {
		t.Run(name, func(t *testing.T) {
			p.Emit(ev) // stamps the envelope; no sinks attached
			b, err := Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, b)
			e, err := MarshalECS(ev)
			if err != nil {
				t.Fatal(err)
			}
			validateECS(t, e)
			kinds[ev.Event] = true
		})
	}
	for _, r := range []Result{ResultLoaded, ResultDenied, ResultKilled, ResultCorrupted, ResultFailed, ResultUnknown} {
		t.Run("a prog_load whose outcome is "+string(r), func(t *testing.T) {
			ev := NewProgLoad(ProgLoad{Program: sampleProgram(2), Outcome: NewOutcome(r, 0)}, InsnOptions{})
			p.Emit(ev)
			b, err := Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			validate(t, b)
			if b, err = MarshalECS(ev); err != nil {
				t.Fatal(err)
			}
			validateECS(t, b)
		})
	}
	for _, s := range Kinds() {
		if !kinds[s.Kind] {
			t.Errorf("no sample of kind %s was validated (add one to everyEvent)", s.Kind)
		}
	}
}

func TestSchemaRejectsMalformedEvents(t *testing.T) {
	p := NewPipeline(Config{Host: "h", LossInterval: -1})
	defer p.Close(t.Context())
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(3), Report: sampleReport()}, InsnOptions{Mode: InsnModeBoth})
	p.Emit(ev)
	good, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	validate(t, good)
	tests := []struct {
		name   string
		mutate func(m map[string]any)
	}{
		{"an unknown top-level field", func(m map[string]any) { m["extra"] = 1 }},
		{"a control character in comm", func(m map[string]any) { m["loader"].(map[string]any)["comm"] = "a\nb" }},
		{"a prog_load without prog", func(m map[string]any) { delete(m, "prog") }},
		{"a via_loader without its id", func(m map[string]any) { m["via_loader"] = map[string]any{"tag": "00", "name": "x"} }},
		{"a prog_load carrying a sensor section", func(m map[string]any) { m["sensor"] = map[string]any{"monitor_only": false, "rules_count": 0} }},
		{"an unknown outcome", func(m map[string]any) { m["outcome"].(map[string]any)["result"] = "maybe" }},
		{"a raw form that is not base64", func(m map[string]any) {
			m["instructions"].(map[string]any)["raw"].(map[string]any)["base64"] = "!!"
		}},
		{"an unknown kind", func(m map[string]any) { m["event"] = "prog_unload" }},
		{"a prog_load carrying a resident section", func(m map[string]any) { m["resident"] = map[string]any{"uid": 0} }},
		{"a prog_load carrying a hidden section", func(m map[string]any) {
			m["hidden"] = map[string]any{"seen_by": []any{"kallsyms"}, "missing_from": []any{"get_next_id"}}
		}},
		{"a prog_hidden without its hidden section", func(m map[string]any) { m["event"] = "prog_hidden"; delete(m, "outcome"); delete(m, "loader") }},
		{"a prog_present without its resident section", func(m map[string]any) { m["event"] = "prog_present"; delete(m, "outcome"); delete(m, "loader") }},
		{"a time that is not RFC 3339", func(m map[string]any) { m["time"] = "yesterday" }},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected", func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			tt.mutate(m)
			b, _ := json.Marshal(m)
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if eventSchema(t).Validate(inst) == nil {
				t.Errorf("schema accepted %s", b)
			}
		})
	}
}
