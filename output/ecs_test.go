package output

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

func TestECSMapsALoadThatMatchedRulesToAnAlert(t *testing.T) {
	ev := everyEvent()["a prog_load with everything and both instruction forms"]
	p := NewPipeline(Config{Host: "web-1", LossInterval: -1, Format: FormatECS})
	sink := &memSink{name: "m"}
	p.Add(sink, QueueOptions{})
	p.Emit(ev)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 1 {
		t.Fatalf("got %d records", len(sink.recs))
	}
	line := sink.recs[0].JSON
	validateECS(t, line)
	var e struct {
		Timestamp string `json:"@timestamp"`
		Event     ECSEventInfo
		Host      struct{ Name string }
		Process   ECSProcess
		User      ECSID
		Rule      ECSRule
		Sentry    map[string]any `json:"ebpf_sentry"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatal(err)
	}
	// sampleProgram's loader is pid 42, tid 43, ppid 1, uid 0; the verdict
	// matched exechijack (critical) and printk (low) and blocked; the
	// outcome was killed.
	checks := []struct {
		what      string
		got, want any
	}{
		{"event.kind", e.Event.Kind, "alert"},
		{"event.action", e.Event.Action, "prog-load"},
		{"event.outcome", e.Event.Outcome, "failure"},
		{"event.type", e.Event.Type[0], "denied"},
		{"event.severity", e.Event.Severity, int(SevCritical)},
		{"event.sequence", e.Event.Sequence, uint64(1)},
		{"host.name", e.Host.Name, "web-1"},
		{"process.pid", e.Process.PID, uint32(42)},
		{"process.thread.id", e.Process.Thread.ID, uint32(43)},
		{"process.parent.pid", e.Process.Parent.PID, uint32(1)},
		{"process.name", e.Process.Name, "0123456789abcdef"},
		{"user.id", e.User.ID, "0"},
		{"rule.id", len(e.Rule.ID), 2},
		{"ebpf_sentry.event", e.Sentry["event"], "prog_load"},
		{"@timestamp", e.Timestamp, "2023-11-14T22:13:20.123456789Z"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestECSSchemaChecksTheNativeEventInside(t *testing.T) {
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(2)}, InsnOptions{})
	p := NewPipeline(Config{LossInterval: -1})
	p.Emit(ev)
	p.Close(context.Background())
	good, err := MarshalECS(ev)
	if err != nil {
		t.Fatal(err)
	}
	validateECS(t, good)
	var m map[string]any
	_ = json.Unmarshal(good, &m)
	m["ebpf_sentry"].(map[string]any)["loader"].(map[string]any)["comm"] = "a\x1bb"
	bad, _ := json.Marshal(m)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	if schemaNamed(t, "event-ecs.schema.json").Validate(inst) == nil {
		t.Error("the ECS schema accepted a control character inside ebpf_sentry")
	}
}

// A prog_load's loader identity reaches the ECS shape: the executable's
// sha256 as process.hash.sha256, its inode and device (no ECS field) in
// ebpf_sentry.loader.
func TestECSCarriesTheLoadersExecutableIdentity(t *testing.T) {
	ev := everyEvent()["a prog_load with everything and both instruction forms"]
	l := *ev.Loader
	l.Exe, l.ExeInode, l.ExeDev = "/usr/bin/loader", 123456, 8<<20|1
	l.ExeSHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	ev.Loader = &l
	p := NewPipeline(Config{Host: "web-1", LossInterval: -1, Format: FormatECS})
	sink := &memSink{name: "m"}
	p.Add(sink, QueueOptions{})
	p.Emit(ev)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sink.recs) != 1 {
		t.Fatalf("got %d records", len(sink.recs))
	}
	line := sink.recs[0].JSON
	validateECS(t, line)
	var e struct {
		Process ECSProcess
		Sentry  struct {
			Loader struct {
				ExeInode uint64 `json:"exe_inode"`
				ExeDev   uint32 `json:"exe_dev"`
			} `json:"loader"`
		} `json:"ebpf_sentry"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatal(err)
	}
	if e.Process.Hash == nil || e.Process.Hash.SHA256 != l.ExeSHA256 || e.Process.Executable != l.Exe {
		t.Errorf("process %+v (hash %+v), want executable %s with sha256 %s", e.Process, e.Process.Hash, l.Exe, l.ExeSHA256)
	}
	if e.Sentry.Loader.ExeInode != l.ExeInode || e.Sentry.Loader.ExeDev != l.ExeDev {
		t.Errorf("ebpf_sentry.loader inode %d dev %d, want %d %d", e.Sentry.Loader.ExeInode, e.Sentry.Loader.ExeDev, l.ExeInode, l.ExeDev)
	}
	// without a hash, no process.hash
	l.ExeSHA256 = ""
	if p := ToECS(ev).Process; p.Hash != nil {
		t.Errorf("process.hash %+v for a loader without a hash", p.Hash)
	}
}
