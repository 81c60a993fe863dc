package output

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is an HTTP endpoint that collects event batches. It answers
// failFirst requests with 503 before accepting, and checks the auth header.
type receiver struct {
	mu        sync.Mutex
	ids       map[string]int // event id -> times received
	batches   int
	failFirst int32
	requests  atomic.Int32
	delay     time.Duration
	hold      chan struct{} // when set, each request waits for it to close (or its client to give up)
	auth      string
	badAuth   atomic.Int32
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.requests.Add(1)
	if rc.auth != "" && r.Header.Get("Authorization") != rc.auth {
		rc.badAuth.Add(1)
		http.Error(w, "no", http.StatusUnauthorized)
		return
	}
	if r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "content type", http.StatusUnsupportedMediaType)
		return
	}
	if rc.delay > 0 {
		time.Sleep(rc.delay)
	}
	if rc.hold != nil {
		select {
		case <-rc.hold:
		case <-r.Context().Done():
			return // the client timed out
		}
	}
	body, _ := io.ReadAll(r.Body)
	if n <= rc.failFirst {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	var batch []map[string]any
	if err := json.Unmarshal(body, &batch); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.ids == nil {
		rc.ids = map[string]int{}
	}
	rc.batches++
	for _, ev := range batch {
		rc.ids[ev["id"].(string)]++
	}
}

func (rc *receiver) distinct() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.ids)
}

func fastRetry(url string) WebhookOptions {
	return WebhookOptions{URL: url, Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Attempts: 10, Timeout: 2 * time.Second}
}

func TestWebhookRetriesAFailingReceiverUntilItRecovers(t *testing.T) {
	rc := &receiver{failFirst: 3}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	sink, err := NewWebhookSink(fastRetry(srv.URL + "/ingest"))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{Size: 1000, BatchMax: 50, Linger: 20 * time.Millisecond})
	const n = 200
	for range n {
		p.Emit(NewProgLoad(ProgLoad{Program: sampleProgram(4)}, InsnOptions{}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l := p.LossTotals(); len(l) != 0 {
		t.Fatalf("losses: %+v", l)
	}
	if got := rc.distinct(); got != n {
		t.Errorf("receiver has %d distinct events, want %d", got, n)
	}
	if rc.requests.Load() <= 3 {
		t.Errorf("only %d requests: the failures were not retried", rc.requests.Load())
	}
	if rc.batches >= n {
		t.Errorf("%d batches for %d events: not batched", rc.batches, n)
	}
}

func TestWebhookOverTLSWithACustomCAAndAnAuthHeader(t *testing.T) {
	rc := &receiver{auth: "Bearer s3cret"}
	srv := httptest.NewUnstartedServer(rc)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		ca        string
		header    string
		delivered bool
		reason    string
	}{
		{"trusting the receiver's CA with the right token delivers", caFile, "Bearer s3cret", true, ""},
		{"without the CA the certificate is refused", "", "Bearer s3cret", false, "tls"},
		{"a wrong token is rejected without retrying", caFile, "Bearer wrong", false, "rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt := fastRetry(srv.URL)
			opt.CAFile = tt.ca
			opt.Headers = http.Header{"Authorization": {tt.header}}
			sink, err := NewWebhookSink(opt)
			if err != nil {
				t.Fatal(err)
			}
			before := rc.badAuth.Load()
			p := NewPipeline(Config{LossInterval: -1})
			p.Add(sink, QueueOptions{})
			p.Emit(RulesReloaded(Rules{Source: "embedded", Count: 3}))
			if err := p.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := p.Delivered()[sink.Name()] == 1; got != tt.delivered {
				t.Fatalf("delivered = %v, want %v; losses %+v", got, tt.delivered, p.LossTotals())
			}
			if !tt.delivered {
				if got := lossOf(p, StageSink, sink.Name(), tt.reason); got < 1 {
					t.Errorf("no loss with reason %s: %+v", tt.reason, p.LossTotals())
				}
			}
			// Each event is tried once: the reloaded event, and the final
			// loss report that counts its rejection.
			if tt.reason == "rejected" && uint64(rc.badAuth.Load()-before) != p.Emitted() {
				t.Errorf("%d requests rejected for %d events: a 401 was retried", rc.badAuth.Load()-before, p.Emitted())
			}
		})
	}
}

func TestASlowWebhookTimesOutIsRetriedAndNeverBlocksEmit(t *testing.T) {
	// A receiver that answers nothing until the test lets it: with a
	// request timeout longer than the test, the sink stays in its first
	// Send, so a blocking Emit would never return (no clock involved).
	stuck := &receiver{hold: make(chan struct{})}
	srvStuck := httptest.NewServer(stuck)
	defer srvStuck.Close()
	release := sync.OnceFunc(func() { close(stuck.hold) })
	defer release() // before srvStuck.Close, which waits for the handlers
	opt := fastRetry(srvStuck.URL)
	opt.Timeout = time.Hour
	sink, err := NewWebhookSink(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{Size: 10, BatchMax: 5})
	const n = 100
	emitted := make(chan struct{})
	go func() {
		for range n {
			p.Emit(SensorStarted(Sensor{}))
		}
		close(emitted)
	}()
	select {
	case <-emitted:
	case <-time.After(2 * time.Minute):
		t.Fatal("Emit blocked on a webhook that does not answer")
	}
	// At most one batch (up to 5 events) is in the stuck request, 10 wait
	// in the queue, the rest were dropped and counted.
	if got := lossOf(p, StageSink, sink.Name(), ReasonQueueFull); got < n-15 || got > n-10 {
		t.Errorf("%d queue_full losses with a 10-slot queue and a stuck receiver, want %d to %d: %+v", got, n-15, n-10, p.LossTotals())
	}
	release()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A receiver slower than the timeout: every attempt times out, is
	// retried once (Attempts 2), and the batch is then counted lost.
	slow := &receiver{hold: make(chan struct{})}
	srvSlow := httptest.NewServer(slow)
	defer srvSlow.Close()
	defer close(slow.hold)
	opt = fastRetry(srvSlow.URL)
	opt.Timeout = 100 * time.Millisecond
	opt.Attempts = 2
	if sink, err = NewWebhookSink(opt); err != nil {
		t.Fatal(err)
	}
	p = NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{Size: 10, BatchMax: 5})
	for range 3 {
		p.Emit(SensorStarted(Sensor{}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The 3 events, and the loss report that Close emits for them.
	if got := lossOf(p, StageSink, sink.Name(), "timeout"); got != 3 && got != 4 {
		t.Errorf("%d timeout losses for 3 events, want 3 (4 with the loss report): %+v", got, p.LossTotals())
	}
	if got := slow.requests.Load(); got < 2 || got%2 != 0 {
		t.Errorf("%d requests, want two attempts per batch", got)
	}
	if got := slow.distinct(); got != 0 {
		t.Errorf("the receiver that always timed out recorded %d events", got)
	}
}

func TestWebhookToARefusingAddressCountsLosses(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	opt := fastRetry(url)
	opt.Attempts = 2
	sink, err := NewWebhookSink(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{BatchMax: 10})
	for range 10 {
		p.Emit(SensorStarted(Sensor{}))
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, sink.Name(), "refused"); got < 10 {
		t.Errorf("refused losses = %d, want 10: %+v", got, p.LossTotals())
	}
}

func TestWebhookOptionsAreChecked(t *testing.T) {
	tests := []struct{ name, url, ca string }{
		{"a URL without scheme", "example.com/x", ""},
		{"a non-HTTP scheme", "ftp://example.com/", ""},
		{"a missing CA file", "https://example.com/", "/nonexistent/ca.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			if _, err := NewWebhookSink(WebhookOptions{URL: tt.url, CAFile: tt.ca}); err == nil {
				t.Error("accepted")
			}
		})
	}
	s, err := NewWebhookSink(WebhookOptions{URL: "https://user:pw@example.com/in?token=x"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name() != "webhook:https://example.com/in" {
		t.Errorf("sink name %q may leak credentials into metrics", s.Name())
	}
}

func TestWebhookHonoursRetryAfter(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	opt := fastRetry(srv.URL)
	opt.MaxBackoff = 5 * time.Second
	sink, err := NewWebhookSink(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{})
	p.Emit(SensorStarted(Sensor{}))
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p.Delivered()[sink.Name()] != 1 || len(times) != 2 {
		t.Fatalf("delivered %d in %d requests, want 1 in 2", p.Delivered()[sink.Name()], len(times))
	}
	if gap := times[1].Sub(times[0]); gap < 900*time.Millisecond {
		t.Errorf("retried after %v, before the 1 s the receiver asked for", gap)
	}
}

func TestAWebhookBatchOverMaxBodyIsSplit(t *testing.T) {
	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	opt := fastRetry(srv.URL)
	opt.MaxBody = 3000 // a few ~500-byte events per POST
	sink, err := NewWebhookSink(opt)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{LossInterval: -1})
	p.Add(sink, QueueOptions{BatchMax: 100, Linger: 50 * time.Millisecond})
	const n = 40
	for range n {
		p.Emit(SensorStarted(Sensor{Guarantee: strings.Repeat("g", 300)}))
	}
	p.Emit(SensorStarted(Sensor{Guarantee: strings.Repeat("big", 2000)})) // alone over MaxBody: still sent
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rc.distinct(); got != n+1 {
		t.Fatalf("receiver has %d events, want %d; losses %+v", got, n+1, p.LossTotals())
	}
	if rc.batches < n/6 {
		t.Errorf("%d POSTs for %d events of ~500 bytes under a 3000-byte limit", rc.batches, n)
	}
}
