package output

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one encoded event on its way to a sink. Sinks must not modify JSON.
type Record struct {
	Kind     Kind
	Time     time.Time
	Severity Severity // for syslog PRI
	JSON     []byte   // one JSON object, no newline
	ID       string   // the event's id (message id for de-duplicating sinks)
	Host     string   // the event's host, escaped
}

// Sink delivers records somewhere. One goroutine per sink calls Send, so a
// sink needs no locking of its own. Send returns how many records of recs,
// from the start, were delivered; the rest are counted as lost with the
// reason carried by err (see DropError).
type Sink interface {
	Name() string
	Send(ctx context.Context, recs []Record) (int, error)
	Close() error
}

// LateLossReporter is a sink that may lose records after its Send counted
// them delivered (the NATS sink, whose in-flight events reach the spool only
// when the server fails them). Add gives it a function that counts such
// losses with their reason and takes them off the sink's delivered count.
type LateLossReporter interface {
	SetLateLoss(func(reason string, n uint64))
}

// DropError names why records were not delivered; the reason becomes the
// "reason" label of drop counters and loss events.
type DropError struct {
	Reason string
	Err    error
}

func (e *DropError) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *DropError) Unwrap() error { return e.Err }

// Drop reasons used by the pipeline itself; sinks add their own.
const (
	ReasonQueueFull   = "queue_full"   // the sink's queue was full when the event was emitted
	ReasonShutdown    = "shutdown"     // still queued when Close gave up waiting
	ReasonEncodeError = "encode_error" // the event could not be encoded
	ReasonError       = "error"        // a sink failed without saying why
)

func reasonOf(err error) string {
	var de *DropError
	if errors.As(err, &de) && de.Reason != "" {
		return de.Reason
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ReasonShutdown
	}
	return ReasonError
}

// QueueOptions sizes a sink's queue and batches.
type QueueOptions struct {
	Size     int           // records the queue holds before new ones are dropped; default 4096
	BatchMax int           // most records per Send; default 256
	Linger   time.Duration // how long to wait for a batch to fill (webhooks); 0: send what is there
}

func (o QueueOptions) withDefaults() QueueOptions {
	if o.Size <= 0 {
		o.Size = 4096
	}
	if o.BatchMax <= 0 {
		o.BatchMax = 256
	}
	return o
}

// Config configures a Pipeline.
type Config struct {
	Host         string        // default os.Hostname()
	Instance     string        // prefix of event ids; default random
	LossInterval time.Duration // how often a loss event reports new losses; default 10s, <0 disables the timer
	Format       Format        // json (default) or ecs
	Metrics      *Metrics      // may be nil
	Logger       *slog.Logger  // default slog.Default()
	Now          func() time.Time
}

// Pipeline stamps events, encodes them once and fans them out to every sink's
// bounded queue. Emit never blocks: when a queue is full the record is
// counted as lost for that sink (reason queue_full) and reported in the next
// loss event and in the metrics.
type Pipeline struct {
	cfg     Config
	seq     atomic.Uint64
	chainMu sync.Mutex   // seq and the hash chain advance together
	prev    []byte       // sha256 of the last encoded event; nil before the first
	mu      sync.RWMutex // guards closed and workers against Emit racing Close
	closing bool
	closed  bool
	wk      []*worker

	lossMu   sync.Mutex
	loss     map[lossKey]*lossCounter
	lastLoss time.Time

	stop     chan struct{}
	tickDone chan struct{}
}

type lossKey struct {
	stage  Stage
	sink   string
	reason string
}

type lossCounter struct{ total, reported uint64 }

type worker struct {
	p      *Pipeline
	sink   Sink
	opt    QueueOptions
	q      chan Record
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	sent   atomic.Uint64
	// pending counts records queued and not yet sent or counted lost, so
	// Close can wait for the queues to drain before its final loss report.
	pending atomic.Int64
}

// NewPipeline makes a pipeline without sinks; add them with Add.
func NewPipeline(cfg Config) *Pipeline {
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	cfg.Host = Escape(cfg.Host)
	if cfg.Instance == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		cfg.Instance = hex.EncodeToString(b[:])
	}
	if cfg.LossInterval == 0 {
		cfg.LossInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Pipeline{cfg: cfg, loss: map[lossKey]*lossCounter{}, stop: make(chan struct{}), tickDone: make(chan struct{})}
	p.lastLoss = cfg.Now()
	if cfg.LossInterval > 0 {
		go p.tick()
	} else {
		close(p.tickDone)
	}
	return p
}

// Add attaches a sink with its own queue and delivery goroutine.
func (p *Pipeline) Add(s Sink, opt QueueOptions) {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	w := &worker{p: p, sink: s, opt: opt, q: make(chan Record, opt.Size), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	p.mu.Lock()
	p.wk = append(p.wk, w)
	p.mu.Unlock()
	p.cfg.Metrics.sinkQueue(s.Name(), func() float64 { return float64(len(w.q)) })
	if l, ok := s.(LateLossReporter); ok {
		l.SetLateLoss(func(reason string, n uint64) {
			w.sent.Add(-n)
			p.countLoss(StageSink, s.Name(), reason, n)
		})
	}
	go w.run()
}

// Emit stamps ev (schema_version, id, seq, host, and time when zero),
// encodes it and queues it on every sink. It never blocks on a sink.
// For prog_load events it also updates the load, verdict, enforcement and
// latency metrics, so the caller must not count those again.
//
// Encoding happens on the caller's goroutine (about 40 µs for a typical
// event, 3 ms for a 10,000-instruction program with full disassembly; see
// docs/PERFORMANCE.md), so call Emit from the goroutine that analyses
// programs rather than from the one draining the ring buffer. The event
// belongs to the pipeline afterwards: do not modify it.
func (p *Pipeline) Emit(ev *Event) {
	if ev == nil {
		return
	}
	now := p.cfg.Now()
	ev.SchemaVersion = SchemaVersion
	p.chainMu.Lock()
	seq := p.seq.Add(1)
	ev.Seq = seq
	if p.prev != nil {
		ev.PrevHash = hex.EncodeToString(p.prev)
	}
	ev.ID = p.cfg.Instance + "-" + fmt.Sprint(seq)
	ev.Host = p.cfg.Host
	if ev.Time.IsZero() {
		ev.Time = now
	}
	p.cfg.Metrics.countEvent(ev.Event)
	if ev.Event == KindProgLoad {
		p.cfg.Metrics.observeProgLoad(ev, now)
	}
	marshal := Marshal
	if p.cfg.Format == FormatECS {
		marshal = MarshalECS
	}
	b, err := marshal(ev)
	if err == nil {
		sum := sha256.Sum256(b)
		p.prev = sum[:]
	}
	p.chainMu.Unlock()
	p.mu.RLock()
	defer p.mu.RUnlock()
	if err != nil {
		p.cfg.Logger.Error("drop event that cannot be encoded", "event", ev.Event, "err", err)
		for _, w := range p.wk {
			p.countLoss(StageSink, w.sink.Name(), ReasonEncodeError, 1)
		}
		return
	}
	if p.closed {
		for _, w := range p.wk {
			p.countLoss(StageSink, w.sink.Name(), ReasonShutdown, 1)
		}
		return
	}
	r := Record{Kind: ev.Event, Time: ev.Time, Severity: severityOf(ev), JSON: b, ID: ev.ID, Host: ev.Host}
	for _, w := range p.wk {
		w.pending.Add(1)
		select {
		case w.q <- r:
		default:
			w.pending.Add(-1)
			p.countLoss(StageSink, w.sink.Name(), ReasonQueueFull, 1)
		}
	}
}

// Emitted is how many events were stamped so far (the last seq).
func (p *Pipeline) Emitted() uint64 { return p.seq.Load() }

// CaptureLoss counts events lost before they reached user space (ring
// buffer full, incomplete capture…); the sensor calls it.
func (p *Pipeline) CaptureLoss(reason string, n uint64) {
	p.countLoss(StageCapture, "", reasonLabel(reason), n)
}

// reasonLabel folds a caller's reason into the schema's reason alphabet
// ([a-z0-9_]+), so an unexpected name cannot make loss events invalid.
func reasonLabel(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "unknown"
	}
	return string(b)
}

func (p *Pipeline) countLoss(stage Stage, sink, reason string, n uint64) {
	if n == 0 {
		return
	}
	p.lossMu.Lock()
	k := lossKey{stage, sink, reason}
	c := p.loss[k]
	if c == nil {
		c = &lossCounter{}
		p.loss[k] = c
	}
	c.total += n
	p.lossMu.Unlock()
	if stage == StageSink {
		p.cfg.Metrics.SinkDrop(sink, reason, n)
	} else {
		p.cfg.Metrics.CaptureLoss(reason, n)
	}
}

// LossTotals returns every loss counter since the start, sorted.
func (p *Pipeline) LossTotals() []LossCount {
	p.lossMu.Lock()
	defer p.lossMu.Unlock()
	var out []LossCount
	for k, c := range p.loss {
		out = append(out, LossCount{Stage: k.stage, Sink: k.sink, Reason: k.reason, Count: c.total, Total: c.total})
	}
	sortLoss(out)
	return out
}

// Delivered returns how many records each sink delivered, by sink name.
func (p *Pipeline) Delivered() map[string]uint64 {
	p.mu.RLock()
	defer p.mu.RUnlock()
	m := map[string]uint64{}
	for _, w := range p.wk {
		m[w.sink.Name()] += w.sent.Load()
	}
	return m
}

// ReportLoss emits a loss event with what was lost since the previous one,
// if anything was. The pipeline calls it every LossInterval and on Close.
func (p *Pipeline) ReportLoss() {
	now := p.cfg.Now()
	items, interval := p.takeUnreported(now)
	if len(items) == 0 {
		return
	}
	// The log too: when the only sink is the one losing events, its loss
	// event is lost with them, and the log (stderr) is the trace left.
	p.logLoss(slog.LevelWarn, "events lost", items)
	p.Emit(&Event{Event: KindLoss, Time: now, Loss: &Loss{Interval: max(interval, 0), Items: items}})
}

// takeUnreported returns the losses counted since the last report, sorted,
// and the seconds since that report, and marks them reported.
func (p *Pipeline) takeUnreported(now time.Time) ([]LossCount, float64) {
	p.lossMu.Lock()
	defer p.lossMu.Unlock()
	var items []LossCount
	for k, c := range p.loss {
		if d := c.total - c.reported; d > 0 {
			items = append(items, LossCount{Stage: k.stage, Sink: k.sink, Reason: k.reason, Count: d, Total: c.total})
			c.reported = c.total
		}
	}
	interval := now.Sub(p.lastLoss).Seconds()
	p.lastLoss = now
	sortLoss(items)
	return items, interval
}

func (p *Pipeline) logLoss(level slog.Level, msg string, items []LossCount) {
	for _, it := range items {
		p.cfg.Logger.Log(context.Background(), level, msg, "stage", it.Stage, "sink", it.Sink, "reason", it.Reason, "count", it.Count, "total", it.Total)
	}
}

func sortLoss(items []LossCount) {
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.Stage != b.Stage {
			return a.Stage < b.Stage
		}
		if a.Sink != b.Sink {
			return a.Sink < b.Sink
		}
		return a.Reason < b.Reason
	})
}

func (p *Pipeline) tick() {
	defer close(p.tickDone)
	t := time.NewTicker(p.cfg.LossInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.ReportLoss()
		}
	}
}

// Close reports the last losses, lets every sink drain its queue until ctx
// ends, then closes the sinks. Records still queued when ctx ends are
// counted as lost (reason shutdown). Emit after Close only counts losses.
func (p *Pipeline) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closing {
		p.mu.Unlock()
		return nil
	}
	p.closing = true // a second Close returns at once
	p.mu.Unlock()
	close(p.stop)
	<-p.tickDone
	// Let the sinks finish what is queued first, so that the final loss
	// report also covers what they fail to deliver while draining.
	p.drain(ctx)
	p.ReportLoss()
	p.mu.Lock()
	p.closed = true
	for _, w := range p.wk {
		close(w.q)
	}
	wk := p.wk
	p.mu.Unlock()
	var errs []error
	for _, w := range wk {
		select {
		case <-w.done:
		case <-ctx.Done():
			w.cancel()
			<-w.done
		}
		if n := len(w.q); n > 0 {
			p.countLoss(StageSink, w.sink.Name(), ReasonShutdown, uint64(n))
		}
		if err := w.sink.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close sink %s: %w", w.sink.Name(), err))
		}
	}
	// What was lost after the last loss event (e.g. a webhook batch still
	// retrying when ctx ended) can no longer reach a sink: it goes to the
	// log, so no loss is silent.
	if items, _ := p.takeUnreported(p.cfg.Now()); len(items) > 0 {
		p.logLoss(slog.LevelError, "events lost at shutdown, after the last loss event", items)
	}
	return errors.Join(errs...)
}

// drain waits until every queued record was sent or counted lost, or ctx ends.
func (p *Pipeline) drain(ctx context.Context) {
	p.mu.RLock()
	wk := p.wk
	p.mu.RUnlock()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for _, w := range wk {
		for w.pending.Load() > 0 {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

func (w *worker) run() {
	defer close(w.done)
	batch := make([]Record, 0, w.opt.BatchMax)
	var linger *time.Timer
	for {
		r, ok := <-w.q
		if !ok {
			return
		}
		if w.ctx.Err() != nil {
			// Close gave up: count what is left instead of sending it.
			w.p.countLoss(StageSink, w.sink.Name(), ReasonShutdown, 1+uint64(len(w.q)))
			w.pending.Add(-1)
			for range w.q {
				w.pending.Add(-1)
			}
			return
		}
		batch = append(batch[:0], r)
		open := w.fill(&batch, &linger)
		n, err := w.sink.Send(w.ctx, batch)
		n = min(max(n, 0), len(batch))
		w.sent.Add(uint64(n))
		w.p.cfg.Metrics.SinkSent(w.sink.Name(), uint64(n))
		if n < len(batch) {
			reason := reasonOf(err)
			w.p.countLoss(StageSink, w.sink.Name(), reason, uint64(len(batch)-n))
			w.p.cfg.Logger.Debug("sink could not deliver", "sink", w.sink.Name(), "lost", len(batch)-n, "reason", reason, "err", err)
		}
		w.pending.Add(-int64(len(batch)))
		if !open {
			return
		}
	}
}

// fill adds queued records to batch up to BatchMax, waiting up to Linger for
// more. It reports false when the queue was closed meanwhile.
func (w *worker) fill(batch *[]Record, linger **time.Timer) bool {
	for len(*batch) < w.opt.BatchMax {
		select {
		case r, ok := <-w.q:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
			continue
		default:
		}
		if w.opt.Linger <= 0 {
			return true
		}
		if *linger == nil {
			*linger = time.NewTimer(w.opt.Linger)
		} else {
			(*linger).Reset(w.opt.Linger)
		}
		for len(*batch) < w.opt.BatchMax {
			select {
			case r, ok := <-w.q:
				if !ok {
					(*linger).Stop()
					return false
				}
				*batch = append(*batch, r)
			case <-(*linger).C:
				return true
			case <-w.ctx.Done():
				return true
			}
		}
		(*linger).Stop()
		return true
	}
	return true
}
