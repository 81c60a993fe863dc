//go:build linux && amd64

package main

import (
	"fmt"
	"math"

	"github.com/ebpf-sentry/ebpf-sentry/output"
)

// validateRunFlags refuses values of run's flags that have no meaning
// (negative sizes and intervals, unknown policies), naming the flag,
// instead of quietly using a default.
func validateRunFlags(o *runOptions) error {
	switch o.onError {
	case "block", "allow":
	default:
		return fmt.Errorf("--on-error %q: want block or allow", o.onError)
	}
	if o.rulesPoll < 0 {
		return fmt.Errorf("--rules-poll %s: want 0 (reload on SIGHUP only) or a positive interval", o.rulesPoll)
	}
	if o.integrity <= 0 {
		return fmt.Errorf("--integrity-interval %s: want a positive interval", o.integrity)
	}
	if o.heartbeat <= 0 {
		return fmt.Errorf("--heartbeat-interval %s: want a positive interval", o.heartbeat)
	}
	if o.memMiB <= 0 {
		return fmt.Errorf("--memory-budget %d: want a positive number of MiB", o.memMiB)
	}
	if o.loaderRate == 0 || o.loaderRate < -1 || o.loaderRate > math.MaxUint32 {
		return fmt.Errorf("--loader-rate %d: want a positive number of instructions per second, or -1 for no limit", o.loaderRate)
	}
	if o.procs < 0 {
		return fmt.Errorf("--procs %d: want a number of CPUs, or 0 for half of them", o.procs)
	}
	if o.rules == "" {
		return fmt.Errorf("--rules '': want a rule file or directory (the embedded defaults are @defaults)")
	}
	if o.out != nil {
		return validateOutputOptions(o.out.opts)
	}
	return nil
}

// validateOutputOptions checks the output flags' values.
func validateOutputOptions(opts output.Options) error {
	for _, c := range []struct {
		flag string
		v    int
		min  int
	}{
		{"--output-queue", opts.QueueSize, 1},
		{"--file-keep", opts.FileKeep, 0},
		{"--syslog-max-size", opts.SyslogMaxSize, 0},
		{"--webhook-batch", opts.WebhookBatch, 1},
		{"--webhook-max-body", opts.WebhookMaxBody, 0},
		{"--event-insn-max", opts.InsnMax, 0},
	} {
		if c.v < c.min {
			return fmt.Errorf("%s %d: want at least %d", c.flag, c.v, c.min)
		}
	}
	if opts.FileMaxSize < 0 {
		return fmt.Errorf("--file-max-size %d: want 0 or more bytes", opts.FileMaxSize)
	}
	for _, c := range []struct {
		flag string
		v    int64
	}{
		{"--webhook-linger", int64(opts.WebhookLinger)},
		{"--webhook-timeout", int64(opts.WebhookTimeout)},
		{"--loss-interval", int64(opts.LossInterval)},
	} {
		if c.v < 0 {
			return fmt.Errorf("%s: want a non-negative duration", c.flag)
		}
	}
	return nil
}
