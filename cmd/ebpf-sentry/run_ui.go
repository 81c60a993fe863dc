//go:build linux && amd64

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/console"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// uiFlags are run's --ui flags: the local read-only console.
type uiFlags struct {
	addr   string
	remote bool
}

func addUIFlags(f *pflag.FlagSet) *uiFlags {
	u := &uiFlags{}
	f.StringVar(&u.addr, "ui", "", "serve the read-only web console (live feed, program reports, counters) on this loopback address, e.g. 127.0.0.1:8080; a token printed at start is required; empty: off")
	f.BoolVar(&u.remote, "ui-remote", false, "allow --ui on a non-loopback address")
	return u
}

// start serves the console and feeds it from the pipeline. The URL with
// the token goes to stderr (the log), not to the event output.
func (u *uiFlags) start(ctx context.Context, tel *telemetry, rulesNow func() *rules.Set) error {
	if u == nil || u.addr == "" {
		return nil
	}
	token, err := console.NewToken()
	if err != nil {
		return fmt.Errorf("--ui: %w", err)
	}
	c := console.New(token, tel.Metrics)
	c.SetInventory(func(w io.Writer) error { return writeInventory(w, rulesNow()) })
	addr, err := c.Serve(ctx, u.addr, u.remote)
	if err != nil {
		return fmt.Errorf("--ui: %w", err)
	}
	tel.Pipeline.Add(c.Sink(), output.QueueOptions{})
	slog.Info("console", "url", fmt.Sprintf("http://%s/?token=%s", addr, token))
	return nil
}
