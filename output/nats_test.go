package output

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ebpf-sentry/ebpf-sentry/internal/natstest"
)

func TestMain(m *testing.M) { natstest.Main(m) }

// cluster is the 3-node JetStream cluster the tests share.
func cluster(t testing.TB) *natstest.Cluster {
	t.Helper()
	return natstest.Shared(t)
}

// natsEvent is a prog_load event with a fixed time, so that consecutive
// events differ only in id and seq (their sizes never decrease).
func natsEvent() *Event {
	ev := NewProgLoad(ProgLoad{Program: sampleProgram(3), Report: sampleReport()}, InsnOptions{Mode: InsnModeNone})
	ev.Time = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	return ev
}

func newTestNATSSink(t *testing.T, urls []string, stream string, mod func(*NATSOptions)) *NATSSink {
	t.Helper()
	o := NATSOptions{
		URLs: urls, Stream: stream, Subject: "t-" + stream, CreateStream: true, Replicas: 3,
		SpoolDir: t.TempDir(), AckTimeout: 3 * time.Second, SpoolFsync: true,
	}
	if os.Getenv("NATSTEST_DEBUG") != "" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if mod != nil {
		mod(&o)
	}
	s, err := NewNATSSink(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// streamEvents reads every message of stream with an ordered consumer and
// returns the events' ids and seqs in stream order, the events of a pack
// in their order in it. It checks the wire format (docs/FLEET.md): a single
// event's Nats-Msg-Id is its id, a pack's is NATSPackID of its events' ids;
// want counts events.
func streamEvents(t *testing.T, urls []string, stream string, want int, opts ...nats.Option) (ids []string, seqs []uint64) {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Wait for the stream to hold what the sink says it delivered.
	for {
		// Each request gets its own short deadline: a request that one
		// server leaves unanswered must not use up the whole wait.
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := js.Stream(rctx, stream)
		if err == nil {
			var info *jetstream.StreamInfo
			info, err = st.Info(rctx)
			if err == nil && info.State.Msgs > 0 && streamEventCount(rctx, js, stream) >= want {
				rcancel()
				break
			}
		}
		rcancel()
		if ctx.Err() != nil {
			t.Fatalf("stream %s never reached %d messages: %v", stream, want, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	total, msgs := int(info.NumPending), 0
	for msgs < total {
		batch, err := c.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			msgs++
			evs, err := NATSMessageEvents(m.Headers(), m.Data())
			if err != nil {
				t.Fatalf("message %s: %v", m.Subject(), err)
			}
			var packIDs []string
			for _, data := range evs {
				var ev struct {
					ID  string `json:"id"`
					Seq uint64 `json:"seq"`
				}
				if err := json.Unmarshal(data, &ev); err != nil {
					t.Fatalf("message %s: %v", m.Subject(), err)
				}
				ids, seqs = append(ids, ev.ID), append(seqs, ev.Seq)
				packIDs = append(packIDs, ev.ID)
			}
			want := packIDs[0]
			if m.Headers().Get(NATSPackHeader) != "" {
				if len(evs) < 2 {
					t.Fatalf("message %s: a pack of %d events", m.Subject(), len(evs))
				}
				want = NATSPackID(packIDs)
			}
			if got := m.Headers().Get("Nats-Msg-Id"); got != want {
				t.Fatalf("Nats-Msg-Id %q on events %q, want %q", got, packIDs, want)
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d messages", msgs, total)
		}
	}
	return ids, seqs
}

// streamEventCount is how many events stream holds (a pack counts its
// events); -1 when it cannot be read now.
func streamEventCount(ctx context.Context, js jetstream.JetStream, stream string) int {
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return -1
	}
	info, err := c.Info(ctx)
	if err != nil {
		return -1
	}
	n := 0
	for left := int(info.NumPending); left > 0; {
		batch, err := c.Fetch(min(left, 500), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return -1
		}
		got := 0
		for m := range batch.Messages() {
			got++
			evs, err := NATSMessageEvents(m.Headers(), m.Data())
			if err != nil {
				return -1
			}
			n += len(evs)
		}
		if got == 0 {
			return -1
		}
		left -= got
	}
	return n
}

func waitSpoolEmpty(t *testing.T, s *NATSSink, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for s.Spooled() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool still holds %d events after %v", s.Spooled(), timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func streamLeader(t *testing.T, urls []string, stream string) string {
	t.Helper()
	nc, err := nats.Connect(urls[0] + "," + urls[1] + "," + urls[2])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		if st, err := js.Stream(rctx, stream); err == nil {
			if info, err := st.Info(rctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
				rcancel()
				return info.Cluster.Leader
			}
		}
		rcancel()
		if ctx.Err() != nil {
			t.Fatalf("stream %s has no leader", stream)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNATSSinkKillingTheStreamLeaderLosesAndDuplicatesNothing(t *testing.T) {
	c := cluster(t)
	const stream, total = "KILL", 3000
	sink := newTestNATSSink(t, c.URLs(), stream, nil)
	p := NewPipeline(Config{Host: "host-a", Instance: "kill", LossInterval: -1})
	p.Add(sink, QueueOptions{Size: total + 10, BatchMax: 256})
	for i := 0; i < total/3; i++ {
		p.Emit(natsEvent())
	}
	streamEvents(t, c.URLs(), stream, total/3) // barrier: the first third is stored
	leader := streamLeader(t, c.URLs(), stream)
	var killed *natstest.Server
	for _, s := range c.Servers {
		if s.Name == leader {
			killed = s
		}
	}
	killed.Kill()
	for i := total / 3; i < total; i++ {
		p.Emit(natsEvent())
		if i == 2*total/3 {
			if err := killed.Start(); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.drain(ctx)
	waitSpoolEmpty(t, sink, 2*time.Minute)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l := p.LossTotals(); len(l) != 0 {
		t.Fatalf("losses: %+v", l)
	}
	if err := c.WaitHealthy(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	ids, _ := streamEvents(t, c.URLs(), stream, total)
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	for i := 1; i <= total; i++ {
		id := fmt.Sprintf("kill-%d", i)
		if seen[id] != 1 {
			t.Errorf("event %s stored %d times, want once", id, seen[id])
		}
	}
	if len(ids) != total {
		t.Errorf("stream holds %d messages, want %d", len(ids), total)
	}
}

func TestNATSSinkSpoolsAThirtySecondOutageAndReplaysInOrder(t *testing.T) {
	c := cluster(t)
	const stream = "OUTAGE"
	sink := newTestNATSSink(t, c.URLs(), stream, nil)
	p := NewPipeline(Config{Host: "host-b", Instance: "out", LossInterval: -1})
	p.Add(sink, QueueOptions{Size: 10000, BatchMax: 256})
	const before, during, after = 200, 600, 200
	for i := 0; i < before; i++ {
		p.Emit(natsEvent())
	}
	streamEvents(t, c.URLs(), stream, before)
	for _, s := range c.Servers {
		s.Stop()
	}
	stopped := time.Now()
	// Events keep coming for the whole outage: 20 every second.
	for i := 0; i < during; i++ {
		p.Emit(natsEvent())
		if i%20 == 19 {
			time.Sleep(time.Until(stopped.Add(time.Duration(i/20+1) * time.Second)))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.drain(ctx)
	if got := sink.Spooled(); got != during {
		t.Errorf("after %v of outage the spool holds %d events, want %d", time.Since(stopped).Round(time.Second), got, during)
	}
	for _, s := range c.Servers {
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < after; i++ {
		p.Emit(natsEvent())
	}
	p.drain(ctx)
	waitSpoolEmpty(t, sink, 2*time.Minute)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l := p.LossTotals(); len(l) != 0 {
		t.Fatalf("losses: %+v", l)
	}
	total := before + during + after
	_, seqs := streamEvents(t, c.URLs(), stream, total)
	if len(seqs) != total {
		t.Fatalf("stream holds %d events, want %d", len(seqs), total)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("stream position %d holds seq %d, want %d (replay out of order)", i, s, i+1)
		}
	}
}

func TestNATSSinkCountsExactlyWhatATinySpoolCannotHold(t *testing.T) {
	// Nothing listens on this port: every event goes to the spool.
	url := fmt.Sprintf("nats://127.0.0.1:%d", natstest.FreePort(t))
	const spoolMax, total = 64 << 10, 100
	// One event per message (Pack 1), so that the spool's bound is met
	// exactly event by event.
	sink := newTestNATSSink(t, []string{url}, "TINY", func(o *NATSOptions) { o.SpoolMax = spoolMax; o.Pack = 1 })
	mem := &memSink{name: "mem"}
	p := NewPipeline(Config{Host: "host-c", Instance: "tiny", LossInterval: -1})
	p.Add(sink, QueueOptions{Size: total, BatchMax: 7})
	p.Add(mem, QueueOptions{Size: total})
	for i := 0; i < total; i++ {
		p.Emit(natsEvent())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The events' sizes never decrease, so once one did not fit no later
	// one of them does; the final loss event, smaller, may still fit.
	fit, used := 0, int64(0)
	for _, r := range mem.recs {
		size := spoolRecordSize(spoolMsg{Subject: sink.Subject(r.Host, r.Kind), ID: r.ID, Data: r.JSON})
		if used+size <= spoolMax {
			fit, used = fit+1, used+size
		}
	}
	if len(mem.recs) != total+1 || fit < 2 || fit >= total {
		t.Fatalf("test setup: %d records, %d fit", len(mem.recs), fit)
	}
	if got := sink.spool.Len(); got != fit {
		t.Errorf("spool holds %d events, want %d", got, fit)
	}
	if got, want := lossOf(p, StageSink, sink.Name(), ReasonSpoolFull), uint64(len(mem.recs)-fit); got != want {
		t.Errorf("spool_full losses %d, want exactly %d", got, want)
	}
	if l := p.LossTotals(); len(l) != 1 {
		t.Errorf("losses %+v, want only spool_full", l)
	}
}

// TestNATSSinkSpoolsAFailedWindowInEmissionOrder: the server refuses every
// publish of the in-flight window (another stream holds the subjects, and the
// sink sends Nats-Expected-Stream), so each batch Send already counted goes
// to the spool behind the ones before it; once the right stream exists, the
// replay delivers all of them, in order, none lost.
func TestNATSSinkSpoolsAFailedWindowInEmissionOrder(t *testing.T) {
	c := cluster(t)
	const stream, other, total = "WINDOW", "WINDOWTHIEF", 3000
	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other, Subjects: []string{"t-" + stream + ".>"}}); err != nil {
		t.Fatal(err)
	}
	sink := newTestNATSSink(t, c.URLs(), stream, func(o *NATSOptions) {
		o.CreateStream = false // ready at once: Send publishes directly
		o.MaxInFlight = 1000
		o.SpoolFsync = false
	})
	p := NewPipeline(Config{Host: "host-w", Instance: "win", LossInterval: -1})
	p.Add(sink, QueueOptions{Size: total + 10, BatchMax: 100})
	for i := 0; i < total; i++ {
		p.Emit(natsEvent())
	}
	p.drain(ctx)
	for sink.Spooled() < total {
		if ctx.Err() != nil {
			t.Fatalf("spool holds %d of %d refused events", sink.Spooled(), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := sink.Acked(); got != 0 {
		t.Fatalf("%d events acked by a server that refuses them all", got)
	}
	ents, err := sink.spool.Peek(total + 1)
	if err != nil {
		t.Fatal(err)
	}
	spooled := spoolEventIDs(t, ents)
	if len(spooled) != total {
		t.Fatalf("spool holds %d events, want %d", len(spooled), total)
	}
	if len(ents) >= total {
		t.Errorf("spool holds %d records for %d events: the window's packs were not kept whole", len(ents), total)
	}
	for i, id := range spooled {
		if want := fmt.Sprintf("win-%d", i+1); id != want {
			t.Fatalf("spooled event %d is %s, want %s (window spooled out of order)", i, id, want)
		}
	}
	if err := js.DeleteStream(ctx, other); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, NATSStreamConfig(NATSOptions{Stream: stream, Subject: "t-" + stream, Replicas: 3, MaxAge: time.Hour})); err != nil {
		t.Fatal(err)
	}
	waitSpoolEmpty(t, sink, 2*time.Minute)
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l := p.LossTotals(); len(l) != 0 {
		t.Fatalf("losses: %+v", l)
	}
	_, seqs := streamEvents(t, c.URLs(), stream, total)
	if len(seqs) != total {
		t.Fatalf("stream holds %d events, want %d", len(seqs), total)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("stream position %d holds seq %d, want %d", i, s, i+1)
		}
	}
}

// TestNATSSinkCountsInFlightEventsItCannotSpool: events already counted
// delivered by Send are refused by the server and the spool cannot be
// written (its directory is gone), so each is counted lost with spool_error
// and taken off the sink's delivered count.
func TestNATSSinkCountsInFlightEventsItCannotSpool(t *testing.T) {
	c := cluster(t)
	const stream, other, total = "LATELOSS", "LATELOSSTHIEF", 500
	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: other, Subjects: []string{"t-" + stream + ".>"}}); err != nil {
		t.Fatal(err)
	}
	defer js.DeleteStream(context.Background(), other)
	spoolDir := t.TempDir()
	sink := newTestNATSSink(t, c.URLs(), stream, func(o *NATSOptions) {
		o.CreateStream = false
		o.SpoolDir = spoolDir
	})
	if err := os.RemoveAll(spoolDir); err != nil {
		t.Fatal(err)
	}
	p := NewPipeline(Config{Host: "host-l", Instance: "late", LossInterval: -1})
	p.Add(sink, QueueOptions{Size: total + 10, BatchMax: 50})
	for i := 0; i < total; i++ {
		p.Emit(natsEvent())
	}
	p.drain(ctx)
	for lossOf(p, StageSink, sink.Name(), ReasonSpoolError) < total {
		if ctx.Err() != nil {
			t.Fatalf("spool_error losses %d, want %d", lossOf(p, StageSink, sink.Name(), ReasonSpoolError), total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := lossOf(p, StageSink, sink.Name(), ReasonSpoolError); got != total {
		t.Errorf("spool_error losses %d, want exactly %d", got, total)
	}
	if got := p.Delivered()[sink.Name()]; got != 0 {
		t.Errorf("delivered %d, want 0 (every event was refused and none spooled)", got)
	}
	// Close's final loss event is refused the same way.
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := lossOf(p, StageSink, sink.Name(), ReasonSpoolError); got != total+1 {
		t.Errorf("after Close, spool_error losses %d, want %d (the final loss event too)", got, total+1)
	}
	if got := p.Delivered()[sink.Name()]; got != 0 {
		t.Errorf("after Close, delivered %d, want 0", got)
	}
}

// spoolEventIDs are the ids of the events the spool entries carry, in order;
// a pack's Nats-Msg-Id must be NATSPackID of them.
func spoolEventIDs(t *testing.T, ents []spoolEntry) []string {
	t.Helper()
	var ids []string
	for _, e := range ents {
		h := nats.Header{}
		if e.N > 1 {
			h.Set(NATSPackHeader, NATSPackVersion)
		}
		evs, err := NATSMessageEvents(h, e.Data)
		if err != nil || len(evs) != e.events() {
			t.Fatalf("spool entry %s: %d events, want %d: %v", e.ID, len(evs), e.events(), err)
		}
		var own []string
		for _, data := range evs {
			var ev struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatal(err)
			}
			own = append(own, ev.ID)
		}
		if want := own[0]; e.N > 1 && e.ID != NATSPackID(own) || e.N <= 1 && e.ID != want {
			t.Fatalf("spool entry id %s for events %q", e.ID, own)
		}
		ids = append(ids, own...)
	}
	return ids
}
