package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/output"
)

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
	f.StringVar(&o.opts.Insns, "event-insns", d.Insns, "instructions in prog_load events: auto (text and raw for loads a rule matched, not allowed, acted on or not captured whole; raw for the rest) | none | text | raw | both")
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
