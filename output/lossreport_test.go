package output

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination the pipeline's goroutines may share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The only sink fails: its loss event is lost with the events it reports,
// so the counts must also reach the log (stderr in `run`).
func TestLossesOfTheOnlySinkReachTheLog(t *testing.T) {
	var log lockedBuffer
	bad := &memSink{name: "only", fail: &DropError{Reason: "disk_full", Err: errors.New("no space")}}
	p := NewPipeline(Config{LossInterval: -1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	p.Add(bad, QueueOptions{BatchMax: 1})
	for range 3 {
		p.Emit(SensorStarted(Sensor{}))
	}
	p.drain(context.Background())
	p.ReportLoss()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := log.String()
	for _, want := range []string{"events lost", "sink=only", "reason=disk_full", "count=3"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}

// A webhook batch still retrying when Close gives up is counted (reason
// shutdown) and, since no loss event can be sent any more, logged.
func TestWebhookBatchRetryingAtShutdownIsCountedAndLogged(t *testing.T) {
	first := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		once.Do(func() { close(first) })
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	// The retry waits an hour: whenever Close's deadline comes, the batch
	// is between attempts.
	sink, err := NewWebhookSink(WebhookOptions{URL: srv.URL, Backoff: time.Hour, MaxBackoff: time.Hour, Attempts: 5, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	p := NewPipeline(Config{LossInterval: -1, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	p.Add(sink, QueueOptions{BatchMax: 10})
	for range 4 {
		p.Emit(SensorStarted(Sensor{}))
	}
	<-first // the batch was posted once and now waits to retry
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, sink.Name(), ReasonShutdown); got != 4 {
		t.Errorf("shutdown losses = %d, want 4: %+v", got, p.LossTotals())
	}
	got := log.String()
	for _, want := range []string{"events lost at shutdown", "reason=shutdown", "count=4"} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
}
