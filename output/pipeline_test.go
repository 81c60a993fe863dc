package output

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"
)

// memSink records what it is sent; block, when set, stalls Send until closed.
type memSink struct {
	name  string
	mu    sync.Mutex
	recs  []Record
	block chan struct{}
	// entered, when set (buffered), is signalled each time Send starts.
	entered chan struct{}
	fail    error
}

func (s *memSink) Name() string { return s.name }
func (s *memSink) Send(ctx context.Context, recs []Record) (int, error) {
	if s.entered != nil {
		select {
		case s.entered <- struct{}{}:
		default:
		}
	}
	if s.block != nil {
		select {
		case <-s.block:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	if s.fail != nil {
		return 0, s.fail
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		s.recs = append(s.recs, Record{Kind: r.Kind, Time: r.Time, Severity: r.Severity, JSON: append([]byte(nil), r.JSON...), ID: r.ID, Host: r.Host})
	}
	return len(recs), nil
}
func (s *memSink) Close() error { return nil }
func (s *memSink) events(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, r := range s.recs {
		var m map[string]any
		if err := json.Unmarshal(r.JSON, &m); err != nil {
			t.Fatalf("%s got invalid JSON: %v", s.name, err)
		}
		out = append(out, m)
	}
	return out
}

func lossOf(p *Pipeline, stage Stage, sink, reason string) uint64 {
	for _, l := range p.LossTotals() {
		if l.Stage == stage && l.Sink == sink && l.Reason == reason {
			return l.Total
		}
	}
	return 0
}

func TestAStalledSinkNeverBlocksEmitAndItsLossesAreCounted(t *testing.T) {
	stalled := &memSink{name: "stalled", block: make(chan struct{}), entered: make(chan struct{}, 1)}
	healthy := &memSink{name: "healthy"}
	p := NewPipeline(Config{Host: "h", LossInterval: -1})
	p.Add(stalled, QueueOptions{Size: 8, BatchMax: 1})
	p.Add(healthy, QueueOptions{Size: 1000})
	const n = 500
	// The stalled sink stays blocked in Send until the test ends, so a
	// blocking Emit would never return: no clock decides this.
	// The first event goes into the stalled Send before the others come:
	// then exactly 8 fit in its queue and the rest are dropped.
	p.Emit(SensorStarted(Sensor{}))
	select {
	case <-stalled.entered:
	case <-time.After(2 * time.Minute):
		t.Fatal("the stalled sink never received its first batch")
	}
	emitted := make(chan struct{})
	go func() {
		for range n - 1 {
			p.Emit(SensorStarted(Sensor{}))
		}
		close(emitted)
	}()
	select {
	case <-emitted:
	case <-time.After(2 * time.Minute):
		t.Fatalf("Emit blocked on a stalled sink")
	}
	// The stalled sink holds one batch in Send and 8 in its queue.
	lost := lossOf(p, StageSink, "stalled", ReasonQueueFull)
	if lost != n-9 {
		t.Errorf("stalled sink lost %d of %d, want %d", lost, n, n-9)
	}
	if l := lossOf(p, StageSink, "healthy", ReasonQueueFull); l != 0 {
		t.Errorf("healthy sink lost %d", l)
	}
	p.ReportLoss()
	close(stalled.block)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := healthy.events(t)
	// The first loss report is itself dropped by the stalled sink's full
	// queue, so Close reports that one loss in a second event.
	if len(evs) != n+2 {
		t.Fatalf("healthy sink got %d events, want %d + 2 loss events", len(evs), n)
	}
	if item := evs[n+1]["loss"].(map[string]any)["items"].([]any)[0].(map[string]any); item["count"] != 1.0 || item["total"] != float64(lost+1) {
		t.Errorf("second loss item = %v, want count 1, total %d", item, lost+1)
	}
	loss := evs[n]
	if loss["event"] != string(KindLoss) {
		t.Fatalf("last event is %v, want a loss report", loss["event"])
	}
	item := loss["loss"].(map[string]any)["items"].([]any)[0].(map[string]any)
	if item["sink"] != "stalled" || item["reason"] != ReasonQueueFull || item["count"].(float64) != float64(lost) {
		t.Errorf("loss item = %v, want %d queue_full for stalled", item, lost)
	}
	b, _ := json.Marshal(loss)
	validate(t, b)
	// Sequence numbers let a consumer see which events it is missing.
	for i, ev := range evs {
		if ev["seq"].(float64) != float64(i+1) {
			t.Fatalf("event %d has seq %v", i, ev["seq"])
		}
	}
}

func TestASinkErrorIsCountedWithItsReason(t *testing.T) {
	bad := &memSink{name: "bad", fail: &DropError{Reason: "disk_full", Err: errors.New("no space")}}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(bad, QueueOptions{})
	for range 5 {
		p.Emit(RulesReloaded(Rules{Source: "x"}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// 5 events plus the loss event Close emits after they failed (which
	// itself may or may not have been attempted before shutdown).
	if got := lossOf(p, StageSink, "bad", "disk_full"); got < 5 {
		t.Errorf("disk_full losses = %d, want at least 5", got)
	}
}

func TestCaptureLossIsReportedPeriodically(t *testing.T) {
	sink := &memSink{name: "m"}
	p := NewPipeline(Config{LossInterval: 20 * time.Millisecond})
	p.Add(sink, QueueOptions{})
	p.CaptureLoss("ringbuf_full", 7)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(sink.events(t)) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	p.CaptureLoss("ringbuf_full", 2)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	evs := sink.events(t)
	if len(evs) != 2 {
		t.Fatalf("got %d loss events, want 2 (one from the timer, one on close)", len(evs))
	}
	for i, want := range []struct{ count, total float64 }{{7, 7}, {2, 9}} {
		item := evs[i]["loss"].(map[string]any)["items"].([]any)[0].(map[string]any)
		if item["stage"] != "capture" || item["count"] != want.count || item["total"] != want.total {
			t.Errorf("loss event %d item = %v, want count %v total %v", i, item, want.count, want.total)
		}
	}
}

func TestCloseGivesUpOnAStuckSinkAndCountsWhatWasLeft(t *testing.T) {
	stuck := &memSink{name: "stuck", block: make(chan struct{})}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(stuck, QueueOptions{Size: 100, BatchMax: 1})
	for range 10 {
		p.Emit(SensorStopped(Sensor{Reason: "test"}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, "stuck", ReasonShutdown); got != 10 {
		t.Errorf("shutdown losses = %d, want 10", got)
	}
	p.Emit(SensorStopped(Sensor{Reason: "late"}))
	if got := lossOf(p, StageSink, "stuck", ReasonShutdown); got != 11 {
		t.Errorf("an event emitted after Close counted %d, want 11", got)
	}
}

func TestCaptureLossReasonsAreFoldedIntoTheSchemaAlphabet(t *testing.T) {
	sink := &memSink{name: "m"}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{})
	p.CaptureLoss("Recursion-Miss sentry.exit", 1)
	p.CaptureLoss("", 1)
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if lossOf(p, StageCapture, "", "recursion_miss_sentry_exit") != 1 || lossOf(p, StageCapture, "", "unknown") != 1 {
		t.Errorf("losses: %+v", p.LossTotals())
	}
	b := sink.recs[0].JSON
	validate(t, b)
}
