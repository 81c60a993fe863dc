package output

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics over HTTP and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the counter/gauge/histogram-count of the series with labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("metric %s not exported", name)
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("no %s series with labels %v", name, labels)
	return 0
}

func TestMetricsAreScrapedOverHTTP(t *testing.T) {
	m := NewMetrics()
	ctx, cancel := context.WithCancel(context.Background())
	addr, errc, err := m.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}()
	now := time.Unix(1700000000, 0)
	p := NewPipeline(Config{Metrics: m, LossInterval: -1, Now: func() time.Time { return now }})
	stalled := &memSink{name: "stalled", block: make(chan struct{}), entered: make(chan struct{}, 1)}
	ok := &memSink{name: "ok"}
	p.Add(stalled, QueueOptions{Size: 1, BatchMax: 1})
	p.Add(ok, QueueOptions{})
	block := &Verdict{Action: "block", EnforcedBy: "signal", Rules: []RuleMatch{{ID: "exechijack", Action: "block", Severity: "high"}, {ID: "printk", Action: "alert"}}}
	for i := range 3 {
		// Seen 2 ms before it is emitted: the latency histogram gets it.
		p.Emit(NewProgLoad(ProgLoad{Time: now.Add(-2 * time.Millisecond), Program: sampleProgram(3), Verdict: block, Outcome: NewOutcome(ResultKilled, 0)}, InsnOptions{}))
		if i == 0 {
			// The stalled sink takes the first one into Send (and holds it).
			select {
			case <-stalled.entered:
			case <-time.After(30 * time.Second):
				t.Fatal("the stalled sink never entered Send")
			}
		}
	}
	p.Emit(NewProgLoad(ProgLoad{Time: now, Program: &program0, Outcome: NewOutcome(ResultLoaded, 0)}, InsnOptions{}))
	p.CaptureLoss("ringbuf_full", 5)
	close(stalled.block)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, "http://"+addr.String()+"/metrics")
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"ebpf_sentry_prog_loads_total", map[string]string{"prog_type": "tracepoint"}, 3},
		{"ebpf_sentry_prog_loads_total", map[string]string{"prog_type": "socket_filter"}, 1},
		{"ebpf_sentry_rule_matches_total", map[string]string{"rule": "exechijack", "action": "block"}, 3},
		{"ebpf_sentry_rule_matches_total", map[string]string{"rule": "printk", "action": "alert"}, 3},
		{"ebpf_sentry_load_outcomes_total", map[string]string{"result": "killed", "action": "block"}, 3},
		{"ebpf_sentry_load_outcomes_total", map[string]string{"result": "loaded", "action": "allow"}, 1},
		{"ebpf_sentry_capture_lost_total", map[string]string{"reason": "ringbuf_full"}, 5},
		// 4 loads: 1 in Send, 1 queued, 2 dropped; Close lets the queue
		// drain before the loss event, so that one is queued, not dropped.
		{"ebpf_sentry_sink_dropped_total", map[string]string{"sink": "stalled", "reason": "queue_full"}, 2},
		{"ebpf_sentry_sink_delivered_total", map[string]string{"sink": "ok"}, 5},
		{"ebpf_sentry_events_total", map[string]string{"event": "prog_load"}, 4},
		{"ebpf_sentry_events_total", map[string]string{"event": "loss"}, 1},
		{"ebpf_sentry_event_processing_seconds", nil, 4},
		{"ebpf_sentry_sink_queue_length", map[string]string{"sink": "ok"}, 0},
	}
	for _, c := range checks {
		if got := value(t, fams, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// The three 2 ms latencies fall in buckets above 1 ms, the zero one below.
	h := fams["ebpf_sentry_event_processing_seconds"].Metric[0].Histogram
	for _, b := range h.Bucket {
		if b.GetUpperBound() < 0.002 && b.GetUpperBound() >= 50e-6 && b.GetCumulativeCount() != 1 {
			t.Errorf("bucket le=%v has %d, want 1", b.GetUpperBound(), b.GetCumulativeCount())
		}
	}
}

var program0 = programWithType(1)

// A nil *Metrics (metrics off) takes every call and exposes nothing, and a
// pipeline without metrics still delivers; the same calls on real Metrics
// are each counted once.
func TestANilMetricsCountsNothingAndDoesNotPanic(t *testing.T) {
	calls := func(m *Metrics) {
		m.LoadSeen("x")
		m.RuleMatched("r", "alert")
		m.Enforcement(ResultLoaded, "allow")
		m.CaptureLoss("x", 1)
		m.SinkDrop("s", "r", 1)
		m.SinkSent("s", 1)
		m.ProcessingLatency(time.Millisecond)
	}
	var off *Metrics
	calls(off)
	if off.Registry() != nil {
		t.Errorf("a nil Metrics has a registry")
	}
	sink := &memSink{name: "m"}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{})
	p.Emit(NewProgLoad(ProgLoad{Program: sampleProgram(2)}, InsnOptions{}))
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(sink.events(t)); n != 1 {
		t.Errorf("the pipeline without metrics delivered %d events, want 1", n)
	}

	on := NewMetrics()
	calls(on)
	fams, err := on.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"ebpf_sentry_prog_loads_total", map[string]string{"prog_type": "x"}},
		{"ebpf_sentry_rule_matches_total", map[string]string{"rule": "r", "action": "alert"}},
		{"ebpf_sentry_load_outcomes_total", map[string]string{"result": "loaded", "action": "allow"}},
		{"ebpf_sentry_capture_lost_total", map[string]string{"reason": "x"}},
		{"ebpf_sentry_sink_dropped_total", map[string]string{"sink": "s", "reason": "r"}},
		{"ebpf_sentry_sink_delivered_total", map[string]string{"sink": "s"}},
		{"ebpf_sentry_event_processing_seconds", nil},
	} {
		if got := value(t, byName, c.name, c.labels); got != 1 {
			t.Errorf("%s%v = %v after one call, want 1", c.name, c.labels, got)
		}
	}
}
