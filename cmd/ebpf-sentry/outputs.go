package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// loaderCgroups resolves loaders' cgroup ids to paths, for the container
// and pod metadata of prog_load events.
var loaderCgroups = output.NewCgroupPaths("/sys/fs/cgroup", 1<<16)

// outputFlags are the telemetry flags of `run`: sinks, event contents and
// the Prometheus endpoint.
type outputFlags struct {
	opts        output.Options
	metricsAddr string
}

// addOutputFlags registers the output flags on f. The run command calls it
// and, once its flags are parsed, outputFlags.start.
func addOutputFlags(f *pflag.FlagSet) *outputFlags {
	o := &outputFlags{opts: output.DefaultOptions()}
	d := o.opts
	f.StringArrayVar(&o.opts.Outputs, "output", d.Outputs,
		"event sink, repeatable: stdout | file:PATH | syslog+udp://HOST:PORT | syslog+tcp://HOST:PORT | syslog+unix:///PATH | http(s)://URL (webhook) | nats://HOST:PORT[,HOST:PORT…] (JetStream)")
	f.IntVar(&o.opts.QueueSize, "output-queue", d.QueueSize, "events each sink may hold before new ones are dropped (and counted)")
	f.Int64Var(&o.opts.FileMaxSize, "file-max-size", d.FileMaxSize, "file sink: rotate when the file would exceed this many bytes (0: never)")
	f.IntVar(&o.opts.FileKeep, "file-keep", d.FileKeep, "file sink: rotated files to keep")
	f.StringVar(&o.opts.SyslogFacility, "syslog-facility", d.SyslogFacility, "syslog facility name or number")
	f.IntVar(&o.opts.SyslogMaxSize, "syslog-max-size", 0, "largest syslog message in bytes; larger events are dropped and counted (0: 65000 for UDP, 1 MiB otherwise)")
	f.StringArrayVar(&o.opts.WebhookHeaders, "webhook-header", nil, `webhook: header sent with every request, repeatable ("X-Source: sentry"); no credentials here (they show in ps): use --webhook-header-file or $`+webhookAuthEnv)
	f.StringVar(&o.opts.WebhookHeaderFile, "webhook-header-file", "", `webhook: file of "Name: value" lines (credentials allowed), mode 0600, owned by root`)
	f.BoolVar(&o.opts.WebhookPlainHTTPCredentials, "webhook-allow-plain-http-credentials", false, "webhook: send credentials to a plain http:// URL (refused otherwise)")
	f.StringVar(&o.opts.WebhookCA, "webhook-ca", "", "webhook: PEM file of CA certificates to trust besides the system's")
	f.IntVar(&o.opts.WebhookBatch, "webhook-batch", d.WebhookBatch, "webhook: most events per POST")
	f.DurationVar(&o.opts.WebhookLinger, "webhook-linger", d.WebhookLinger, "webhook: how long to wait for a batch to fill")
	f.DurationVar(&o.opts.WebhookTimeout, "webhook-timeout", d.WebhookTimeout, "webhook: timeout of one request (then retried with backoff)")
	f.IntVar(&o.opts.WebhookMaxBody, "webhook-max-body", 4<<20, "webhook: split batches so no POST exceeds this many bytes")
	f.DurationVar(&o.opts.LossInterval, "loss-interval", d.LossInterval, "how often a loss event reports newly lost events")
	f.StringVar(&o.opts.Format, "event-format", d.Format, "event shape: json (docs/event.schema.json) | ecs (Elastic Common Schema, docs/event-ecs.schema.json)")
	f.StringVar(&o.opts.Insns, "event-insns", d.Insns, "instructions in prog_load events: none|text|raw|both")
	f.IntVar(&o.opts.InsnMax, "event-insn-max", d.InsnMax, "most instructions per form in an event (the event says when it was capped; 0: no cap)")
	f.StringVar(&o.metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9464); empty: off")
	addNATSFlags(f, &o.opts)
	return o
}

// telemetry is what start returns: where to send events and what to put in them.
type telemetry struct {
	Pipeline *output.Pipeline
	Metrics  *output.Metrics // nil without --metrics-addr
	Insns    output.InsnOptions
	stop     context.CancelFunc
}

// start builds the pipeline and, with --metrics-addr, starts the metrics
// endpoint. A bad flag or an address that cannot be bound is an error here,
// before the sensor attaches.
// webhookAuthEnv holds the webhook's Authorization value, so that it is
// on neither the command line nor disk.
const webhookAuthEnv = "EBPF_SENTRY_WEBHOOK_AUTHORIZATION"

func (o *outputFlags) start(log *slog.Logger) (*telemetry, error) {
	if v := os.Getenv(webhookAuthEnv); v != "" {
		o.opts.WebhookSecretHeaders = []string{"Authorization: " + v}
	}
	var m *output.Metrics
	ctx, cancel := context.WithCancel(context.Background())
	if o.metricsAddr != "" {
		m = output.NewMetrics()
		addr, errc, err := m.Serve(ctx, o.metricsAddr)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
		go func() {
			if err := <-errc; err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		}()
		log.Info("serving metrics", "addr", addr.String())
	}
	p, insns, err := output.Build(o.opts, m, log)
	if err != nil {
		cancel()
		return nil, err
	}
	// A reader of stdout that goes away (`run | head`) would otherwise kill
	// the sentry with SIGPIPE; instead the stdout sink counts the loss
	// (reason closed) and enforcement goes on.
	signal.Ignore(syscall.SIGPIPE)
	return &telemetry{Pipeline: p, Metrics: m, Insns: insns, stop: cancel}, nil
}

// close drains the sinks for up to timeout, then stops the metrics endpoint.
func (t *telemetry) close(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := t.Pipeline.Close(ctx)
	t.stop()
	return err
}

// progLoad maps what the sensor captured, what analysis found and what the
// rules decided into the event builder's input. The verdict combines the
// kernel's rule table (which enforced) with the full rules (which may only
// alert); the stronger action wins and both sets of rules are listed.
func progLoad(ev *sensor.Event, rep *analysis.Report, v rules.Verdict, disasm []string) output.ProgLoad {
	rank := map[string]int{"allow": 0, "alert": 1, "block": 2}
	verdict := &output.Verdict{Action: "allow"}
	if k := ev.Verdict.String(); rank[k] > rank[verdict.Action] {
		verdict.Action = k
	}
	if a := v.Action.String(); rank[a] > rank[verdict.Action] {
		verdict.Action = a
	}
	seen := map[string]bool{}
	for _, h := range v.Hits {
		why := make([]string, len(h.Why))
		for i, r := range h.Why {
			why[i] = r.String()
		}
		verdict.Rules = append(verdict.Rules, output.RuleMatch{
			ID: h.ID, Action: h.Action.String(), Severity: h.Severity.String(), Tags: h.Tags, Why: strings.Join(why, "; "),
		})
		seen[h.ID] = true
	}
	if ev.RuleID != "" && !seen[ev.RuleID] && ev.Verdict != sensor.VerdictAllow {
		why := "kernel rule table"
		if ev.RuleID == sensor.RuleUnreadable {
			why = "instructions unreadable in the loader's memory (--block-unreadable)"
		}
		if ev.RuleID == sensor.RuleLock {
			why = ev.Lock.Why(ev.InsnHash)
		}
		verdict.Rules = append(verdict.Rules, output.RuleMatch{ID: ev.RuleID, Action: ev.Verdict.String(), Why: why})
		seen[ev.RuleID] = true
	}
	if ev.Lock.Blocks() && !seen[sensor.RuleLock] {
		// A rule blocked it too: the lock's reason is listed beside it.
		verdict.Rules = append(verdict.Rules, output.RuleMatch{ID: sensor.RuleLock, Action: "block", Why: ev.Lock.Why(ev.InsnHash)})
	}
	if verdict.Action == "allow" && slices.Contains(ev.Missing, "verdict") {
		// The kernel's verdict record was lost: nothing says it allowed.
		verdict.Action = "unknown"
	}
	result := output.Result(ev.Outcome.Result)
	switch ev.Action {
	case sensor.ActionKilled:
		verdict.EnforcedBy = "signal"
	case sensor.ActionCorrupted:
		verdict.EnforcedBy = "corrupt"
		if result == output.ResultLoaded {
			result = output.ResultCorrupted
		}
	case sensor.ActionDenied:
		verdict.EnforcedBy = "lsm"
		result = output.ResultDenied
	}
	outcome := output.NewOutcome(result, int32(ev.Outcome.Errno))
	outcome.JudgedCopyDiffers = ev.JudgedCopyDiffers
	outcome.Retry, outcome.RetryOf = ev.Retry, ev.RetryOf
	var cgroup string
	if ev.Program != nil && ev.Program.Loader != nil {
		cgroup = loaderCgroups.Path(ev.Program.Loader.CgroupID)
	}
	return output.ProgLoad{
		Cgroup:  cgroup,
		Time:    ev.Time,
		Program: ev.Program,
		Report:  rep,
		Outcome: outcome,
		Verdict: verdict,
		Disasm:  disasm,
		// Only a whole walk gives the fingerprint a load is locked by.
		InsnHash: insnHash(ev),
	}
}

// eventText is progLoad with the disassembly the event will carry and no
// more: none unless --event-insns asks for text, and only the first
// --event-insn-max lines (rendering text is the largest per-load cost of a
// big program: docs/PERFORMANCE.md).
func eventText(ev *sensor.Event, rep *analysis.Report, v rules.Verdict, ins []insn.Instruction, opt output.InsnOptions) output.ProgLoad {
	var lines []string
	if opt.Mode == output.InsnModeText || opt.Mode == output.InsnModeBoth {
		n := len(ins)
		if opt.Max > 0 {
			n = min(n, opt.Max)
		}
		lines = output.KernelText(nil, ins[:n])
	}
	pl := progLoad(ev, rep, v, lines)
	pl.DisasmTotal = len(ins)
	return pl
}

// insnHash is the event's fingerprint when the kernel walked every
// instruction (its verdict arrived, nothing unread), else 0.
func insnHash(ev *sensor.Event) uint64 {
	if slices.Contains(ev.Missing, "verdict") || ev.ReadErrors > 0 || ev.Unprivileged || ev.Unjudged != "" {
		return 0
	}
	return ev.InsnHash
}
