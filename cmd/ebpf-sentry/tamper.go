//go:build linux && amd64

package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// reportTampering compares the kernel's config and rule table with what
// the agent wrote and emits a tamper event for each difference.
func reportTampering(s *sensor.Sensor, tel *telemetry) {
	found, err := s.CheckIntegrity()
	if err != nil {
		slog.Error("check the sensor's kernel tables", "err", err)
		return
	}
	for _, t := range found {
		slog.Error("sensor tampered with", "what", t.What, "detail", t.Detail)
		tel.Pipeline.Emit(output.NewTamper(output.Tamper{What: t.What, Detail: t.Detail}))
	}
}

// accessAttempt is the tamper event for another process's bpf() call on
// the sensor's own maps or links (killed or refused in enforce mode).
func accessAttempt(a sensor.AccessAttempt) *output.Event {
	slog.Error("sensor tampered with", "what", output.TamperAccess, "detail", a.String(), "comm", output.Escape(a.Comm))
	return output.NewTamper(output.Tamper{What: output.TamperAccess,
		Detail: fmt.Sprintf("%s (comm %s)", a, a.Comm)})
}

// enforcementBypassed is the tamper event for a load the kernel judged
// "block" that loaded anyway while the agent runs in enforce mode: the
// kernel config said monitor, or the enforcer failed. The agent's own
// loads are spared on purpose.
func enforcementBypassed(mode string, ev *sensor.Event) *output.Event {
	if mode == "monitor" || ev.Verdict != sensor.VerdictBlock || ev.Outcome.Result != sensor.ResultLoaded || ev.Action == sensor.ActionSelf {
		return nil
	}
	return output.NewTamper(output.Tamper{What: output.TamperEnforcement, LoadID: ev.LoadID,
		Detail: fmt.Sprintf("blocked by %s in enforce mode, yet loaded (kernel action %s)", ev.RuleID, ev.Action)})
}

// reportHeartbeat emits the sensor's health (hooks attached, tables
// intact, loads judged); a hook gone or a table changed is also logged.
func reportHeartbeat(s *sensor.Sensor, tel *telemetry, interval time.Duration) {
	h, err := s.Health()
	if err != nil {
		slog.Error("sensor health", "err", err)
		return
	}
	if h.HooksAttached < h.Hooks || !h.TablesIntact {
		slog.Error("sensor blind or tampered with", "hooks", h.Hooks, "attached", h.HooksAttached, "detached", h.Detached, "tables_intact", h.TablesIntact)
	}
	tel.Pipeline.Emit(output.NewHeartbeat(output.Heartbeat{Hooks: h.Hooks, HooksAttached: h.HooksAttached, Detached: h.Detached,
		TablesIntact: h.TablesIntact, LoadsJudged: h.LoadsJudged, Interval: interval.Seconds()}))
}
