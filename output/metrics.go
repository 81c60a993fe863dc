package output

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the sentry's Prometheus metrics. A nil *Metrics is valid and
// counts nothing, so callers need no nil checks.
type Metrics struct {
	reg         *prometheus.Registry
	loads       *prometheus.CounterVec
	verdicts    *prometheus.CounterVec
	outcomes    *prometheus.CounterVec
	captureLoss *prometheus.CounterVec
	sinkDrops   *prometheus.CounterVec
	sinkSent    *prometheus.CounterVec
	latency     prometheus.Histogram
	events      *prometheus.CounterVec
}

// NewMetrics registers the sentry's metrics (and the Go and process
// collectors) in a registry of their own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_prog_loads_total",
			Help: "BPF_PROG_LOAD calls seen, by program type.",
		}, []string{"prog_type"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_rule_matches_total",
			Help: "Rule matches, by rule id and the rule's action (alert, block).",
		}, []string{"rule", "action"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_load_outcomes_total",
			Help: "Results of observed loads (loaded, denied, killed, failed, unknown) and the verdict action that applied.",
		}, []string{"result", "action"}),
		captureLoss: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_capture_lost_total",
			Help: "Events lost before user space saw them (ring buffer full, incomplete capture…), by reason.",
		}, []string{"reason"}),
		sinkDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_sink_dropped_total",
			Help: "Events a sink could not deliver, by sink and reason.",
		}, []string{"sink", "reason"}),
		sinkSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_sink_delivered_total",
			Help: "Events a sink delivered, by sink.",
		}, []string{"sink"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ebpf_sentry_event_processing_seconds",
			Help:    "Time from a load being seen to its event being queued for the sinks (capture, analysis, rules, encoding).",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2.5, 12), // 50µs … ~1.2s
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_sentry_events_total",
			Help: "Events emitted, by kind.",
		}, []string{"event"}),
	}
	m.reg.MustRegister(m.loads, m.verdicts, m.outcomes, m.captureLoss, m.sinkDrops, m.sinkSent, m.latency, m.events,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the metrics live; other packages may register more.
func (m *Metrics) Registry() *prometheus.Registry {
	if m == nil {
		return nil
	}
	return m.reg
}

// LoadSeen counts one BPF_PROG_LOAD of the given program type name.
func (m *Metrics) LoadSeen(progType string) {
	if m != nil {
		m.loads.WithLabelValues(progType).Inc()
	}
}

// RuleMatched counts one match of rule with its action.
func (m *Metrics) RuleMatched(rule, action string) {
	if m != nil {
		m.verdicts.WithLabelValues(rule, action).Inc()
	}
}

// Enforcement counts the outcome of one load under the verdict action (allow, alert, block).
func (m *Metrics) Enforcement(result Result, action string) {
	if m != nil {
		m.outcomes.WithLabelValues(string(result), action).Inc()
	}
}

// CaptureLoss counts n events lost before user space (the sensor's ring-buffer losses).
func (m *Metrics) CaptureLoss(reason string, n uint64) {
	if m != nil {
		m.captureLoss.WithLabelValues(reason).Add(float64(n))
	}
}

// SinkDrop counts n events sink could not deliver.
func (m *Metrics) SinkDrop(sink, reason string, n uint64) {
	if m != nil {
		m.sinkDrops.WithLabelValues(sink, reason).Add(float64(n))
	}
}

// SinkSent counts n events sink delivered.
func (m *Metrics) SinkSent(sink string, n uint64) {
	if m != nil && n > 0 {
		m.sinkSent.WithLabelValues(sink).Add(float64(n))
	}
}

// ProcessingLatency records how long one event took from capture to the sinks' queues.
func (m *Metrics) ProcessingLatency(d time.Duration) {
	if m != nil {
		m.latency.Observe(d.Seconds())
	}
}

func (m *Metrics) sinkQueue(sink string, length func() float64) {
	if m == nil {
		return
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "ebpf_sentry_sink_queue_length",
		Help:        "Events waiting in a sink's queue.",
		ConstLabels: prometheus.Labels{"sink": sink},
	}, length)
	// A second sink with the same name would collide; its queue is then
	// simply not exported rather than failing the sensor.
	_ = m.reg.Register(g)
}

// observeProgLoad is what Pipeline.Emit counts for a prog_load event.
func (m *Metrics) observeProgLoad(ev *Event, now time.Time) {
	if m == nil {
		return
	}
	if ev.Prog != nil {
		name := ev.Prog.Type.Name
		if name == "" {
			name = fmt.Sprint(ev.Prog.Type.ID)
		}
		m.LoadSeen(name)
	}
	action := "allow"
	if ev.Verdict != nil {
		action = ev.Verdict.Action
		for _, r := range ev.Verdict.Rules {
			m.RuleMatched(r.ID, r.Action)
		}
	}
	if ev.Outcome != nil {
		m.Enforcement(ev.Outcome.Result, action)
	}
	if !ev.Time.IsZero() && !now.Before(ev.Time) {
		m.ProcessingLatency(now.Sub(ev.Time))
	}
}

func (m *Metrics) countEvent(k Kind) {
	if m != nil {
		m.events.WithLabelValues(string(k)).Inc()
	}
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Serve listens on addr and serves /metrics until ctx ends. It returns once
// the listener is open (so a bad address is reported at start-up), with the
// address actually bound (useful with port 0) and a channel that yields the
// server's final error.
func (m *Metrics) Serve(ctx context.Context, addr string) (net.Addr, <-chan error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return ln.Addr(), errc, nil
}
