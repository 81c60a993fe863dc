//go:build linux && amd64

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

func TestOutputFlagsBuildAWorkingPipeline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.json")
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := addOutputFlags(fs)
	if err := fs.Parse([]string{"--output", "file:" + path, "--event-insns", "none", "--metrics-addr", "127.0.0.1:0", "--loss-interval", "1h"}); err != nil {
		t.Fatal(err)
	}
	tel, err := o.start(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if tel.Metrics == nil || tel.Insns.Mode != output.InsnModeNone {
		t.Fatalf("telemetry = %+v", tel)
	}
	tel.Pipeline.Emit(output.SensorStarted(output.Sensor{Hook: "tp_btf", RulesCount: 2}))
	if err := tel.close(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		t.Fatal("no event written")
	}
	var ev map[string]any
	if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev["event"] != "sensor_started" {
		t.Fatalf("event %s: %v", sc.Bytes(), err)
	}
}

func TestOutputFlagsRefuseABadSinkBeforeAnythingStarts(t *testing.T) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	o := addOutputFlags(fs)
	if err := fs.Parse([]string{"--output", "syslog+udp://x:1", "--syslog-facility", "nope"}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.start(slog.Default()); err == nil {
		t.Fatal("accepted an unknown facility")
	}
}

func TestProgLoadMapsTheSensorsAndTheRulesVerdicts(t *testing.T) {
	prog := &program.Program{Name: "x", Type: 5, InsnCnt: 1, Insns: make([]byte, 8)}
	tests := []struct {
		name        string
		ev          sensor.Event
		v           rules.Verdict
		wantAction  string
		wantBy      string
		wantResult  output.Result
		wantRuleIDs []string
		wantDiffers bool
		wantRetry   uint32
		wantWhy     string
	}{
		{
			name:       "a clean load is allowed and loaded",
			ev:         sensor.Event{Verdict: sensor.VerdictAllow, Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			wantAction: "allow", wantResult: output.ResultLoaded,
		},
		{
			name: "a kernel block enforced by SIGKILL lists the kernel rule and the user-space alert",
			ev:   sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionKilled, RuleID: "k1", Outcome: sensor.Outcome{Result: sensor.ResultKilled}},
			v: rules.Verdict{Action: rules.ActionAlert, Hits: []rules.Hit{{ID: "u1", Action: rules.ActionAlert, Severity: rules.SeverityLow,
				Why: []rules.Reason{{Predicate: "helpers", Detail: "bpf_trace_printk×2"}}}}},
			wantAction: "block", wantBy: "signal", wantResult: output.ResultKilled, wantRuleIDs: []string{"u1", "k1"},
		},
		{
			name:       "a corrupted program that loaded is reported as corrupted",
			ev:         sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionCorrupted, RuleID: "k2", Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			v:          rules.Verdict{Action: rules.ActionBlock, Hits: []rules.Hit{{ID: "k2", Action: rules.ActionBlock, Severity: rules.SeverityCritical}}},
			wantAction: "block", wantBy: "corrupt", wantResult: output.ResultCorrupted, wantRuleIDs: []string{"k2"},
		},
		{
			name:       "an LSM denial is reported as denied by the lsm enforcer",
			ev:         sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionDenied, RuleID: "k4", Outcome: sensor.Outcome{Result: sensor.ResultFailed, Errno: 1}},
			wantAction: "block", wantBy: "lsm", wantResult: output.ResultDenied, wantRuleIDs: []string{"k4"},
		},
		{
			name:       "a load whose judged copy differs from what the kernel loaded says so",
			ev:         sensor.Event{Verdict: sensor.VerdictAllow, JudgedCopyDiffers: true, Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			wantAction: "allow", wantResult: output.ResultLoaded, wantDiffers: true,
		},
		{
			name:       "a retry after EAGAIN says how many attempts failed and which load it repeats",
			ev:         sensor.Event{Verdict: sensor.VerdictAllow, Retry: 2, RetryOf: 41, Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			wantAction: "allow", wantResult: output.ResultLoaded, wantRetry: 2,
		},
		{
			name:       "a load blocked for unreadable instructions names that reason",
			ev:         sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionKilled, RuleIndex: -1, RuleID: sensor.RuleUnreadable, ReadErrors: 1, Outcome: sensor.Outcome{Result: sensor.ResultKilled}},
			wantAction: "block", wantBy: "signal", wantResult: output.ResultKilled, wantRuleIDs: []string{sensor.RuleUnreadable},
		},
		{
			name:       "a load blocked for map references past the group cap names that reason, not unreadable instructions",
			ev:         sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionKilled, RuleIndex: -1, RuleID: sensor.RuleGroupRefsOver, ReadErrors: 6, GroupRefsOver: 6, Outcome: sensor.Outcome{Result: sensor.ResultKilled}},
			wantAction: "block", wantBy: "signal", wantResult: output.ResultKilled, wantRuleIDs: []string{sensor.RuleGroupRefsOver},
			wantWhy: "group map references past the cap (64) (--block-unreadable)",
		},
		{
			name:       "a load whose kernel verdict record was lost is not reported as allowed",
			ev:         sensor.Event{Missing: []string{"header", "verdict"}, Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			wantAction: "unknown", wantResult: output.ResultLoaded,
		},
		{
			name:       "monitor mode reports the block verdict but nothing enforced it",
			ev:         sensor.Event{Verdict: sensor.VerdictBlock, Action: sensor.ActionMonitor, RuleID: "k3", Outcome: sensor.Outcome{Result: sensor.ResultLoaded}},
			wantAction: "block", wantResult: output.ResultLoaded, wantRuleIDs: []string{"k3"},
		},
	}
	p := output.NewPipeline(output.Config{LossInterval: -1})
	defer p.Close(t.Context())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			ev.Program = prog
			e := output.NewProgLoad(progLoad(&ev, nil, tt.v, nil), output.InsnOptions{})
			var ids []string
			for _, r := range e.Verdict.Rules {
				ids = append(ids, r.ID)
			}
			if e.Verdict.Action != tt.wantAction || e.Verdict.EnforcedBy != tt.wantBy || e.Outcome.Result != tt.wantResult || strings.Join(ids, ",") != strings.Join(tt.wantRuleIDs, ",") {
				t.Errorf("got action %s by %q, result %s, rules %v; want %s by %q, %s, %v",
					e.Verdict.Action, e.Verdict.EnforcedBy, e.Outcome.Result, ids, tt.wantAction, tt.wantBy, tt.wantResult, tt.wantRuleIDs)
			}
			if tt.wantWhy != "" && (len(e.Verdict.Rules) == 0 || e.Verdict.Rules[0].Why != tt.wantWhy) {
				t.Errorf("rules %+v, want the reason %q", e.Verdict.Rules, tt.wantWhy)
			}
			if e.Outcome.JudgedCopyDiffers != tt.wantDiffers {
				t.Errorf("judged_copy_differs = %v, want %v", e.Outcome.JudgedCopyDiffers, tt.wantDiffers)
			}
			if e.Outcome.Retry != tt.wantRetry || (tt.wantRetry != 0) != (e.Outcome.RetryOf == ev.RetryOf && ev.RetryOf != 0) {
				t.Errorf("retry %d of %d, want %d of %d", e.Outcome.Retry, e.Outcome.RetryOf, tt.wantRetry, ev.RetryOf)
			}
			p.Emit(e)
			b, err := output.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			validateEvent(t, b)
		})
	}
}

// validateEvent checks an event against docs/event.schema.json.
func validateEvent(t *testing.T, b []byte) {
	t.Helper()
	f, err := os.Open(filepath.Join(testutils.Root(), "docs", "event.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(inst); err != nil {
		t.Errorf("event does not match the schema: %v\n%s", err, b)
	}
}

// TestEveryNATSCommandTakesTheSameConnectionFlags: run's sink, rules
// publish and allowlist publish/approve reach NATS the same way, so a
// fleet's TLS and credentials settings carry from one to the other.
func TestEveryNATSCommandTakesTheSameConnectionFlags(t *testing.T) {
	root := newRootCmd()
	var want map[string]string
	for _, path := range [][]string{{"run"}, {"rules", "publish"}, {"allowlist", "publish"}, {"allowlist", "approve"}} {
		c, _, err := root.Find(path)
		if err != nil || c.Name() != path[len(path)-1] {
			t.Fatalf("%v: not a command (%v)", path, err)
		}
		got := map[string]string{}
		for _, name := range []string{"nats-ca", "nats-cert", "nats-key", "nats-creds", "nats-nkey"} {
			f := c.Flags().Lookup(name)
			if f == nil {
				t.Errorf("%v has no --%s", path, name)
				continue
			}
			got[name] = f.Usage
		}
		if want == nil {
			want = got
			continue
		}
		for name, usage := range want {
			if got[name] != usage {
				t.Errorf("%v --%s: %q, run says %q", path, name, got[name], usage)
			}
		}
	}
}
