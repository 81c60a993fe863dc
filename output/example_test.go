package output_test

import (
	"context"
	"os"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// A sensor builds one pipeline, emits events as loads are seen and closes
// it on the way out. Emit never blocks on a sink.
func Example() {
	at := time.Date(2026, 11, 26, 4, 0, 0, 0, time.UTC)
	p := output.NewPipeline(output.Config{
		Host: "web-1", Instance: "demo", LossInterval: -1,
		Now: func() time.Time { return at },
	})
	p.Add(output.NewWriterSink("stdout", os.Stdout), output.QueueOptions{})

	p.Emit(output.SensorStarted(output.Sensor{Hook: "tp_btf", Enforcer: "signal", RulesCount: 3}))
	prog := &program.Program{Name: "evil\n", Type: 5, InsnCnt: 1, Insns: []byte{0x95, 0, 0, 0, 0, 0, 0, 0}}
	p.Emit(output.NewProgLoad(output.ProgLoad{
		Time:    at,
		Program: prog,
		Outcome: output.NewOutcome(output.ResultKilled, 0),
		Verdict: &output.Verdict{Action: "block", EnforcedBy: "signal", Rules: []output.RuleMatch{{ID: "demo", Action: "block", Severity: "high"}}},
		Disasm:  []string{"0: (95) exit"},
	}, output.InsnOptions{Mode: output.InsnModeText}))
	p.CaptureLoss("ringbuf_full", 2)
	_ = p.Close(context.Background())
	// Output:
	// {"schema_version":"1.0","event":"sensor_started","id":"demo-1","seq":1,"time":"2026-11-26T04:00:00Z","host":"web-1","sensor":{"hook":"tp_btf","enforcer":"signal","monitor_only":false,"rules_count":3}}
	// {"schema_version":"1.0","event":"prog_load","id":"demo-2","seq":2,"time":"2026-11-26T04:00:00Z","host":"web-1","prev_hash":"cd16e643eff058d5986a14cd1b9e502dde061189747a60d3c26fe190782122be","prog":{"name":"evil\\x0a","type":{"id":5,"name":"tracepoint"},"expected_attach_type":{"id":0},"gpl_compatible":false,"insn_cnt":1,"captured_slots":1},"outcome":{"result":"killed"},"verdict":{"action":"block","enforced_by":"signal","rules":[{"id":"demo","action":"block","severity":"high"}]},"instructions":{"truncated":false,"text":{"lines":["0: (95) exit"],"shown":1,"total":1}}}
	// {"schema_version":"1.0","event":"loss","id":"demo-3","seq":3,"time":"2026-11-26T04:00:00Z","host":"web-1","prev_hash":"7e13a63e0b3faf65fa18e03412b8e0cb8eb8bff5b8b29d24f7b87fa255f436b1","loss":{"interval_seconds":0,"items":[{"stage":"capture","reason":"ringbuf_full","count":2,"total":2}]}}
}
