package output

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRecords returns n encoded prog_load records (~1 KiB each, as
// natsEvent) with unique ids, the way the pipeline hands them to a sink.
func benchRecords(b *testing.B, run string, n int) []Record {
	data, err := Marshal(natsEvent())
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = Record{Kind: KindProgLoad, Host: "bench-host", ID: fmt.Sprintf("%s-%d", run, i), JSON: data}
	}
	return recs
}

// benchBatch is how many records one Send gets (the NATS sink's BatchMax).
var benchBatch = 512

func waitNATSReady(b *testing.B, s *NATSSink) {
	deadline := time.Now().Add(time.Minute)
	for !s.ready.Load() || !s.nc.IsConnected() {
		if time.Now().After(deadline) {
			b.Fatal("sink never ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// benchNATSSink is a sink on the shared 3-node cluster, writing a stream of
// 3 replicas; window < 0 is the synchronous path (each Send waits for its
// acks), 0 the default in-flight window; pack is Pack (0 the default, 1 one
// message per event).
func benchNATSSink(b *testing.B, stream string, window, pack int) *NATSSink {
	c := cluster(b)
	s, err := NewNATSSink(NATSOptions{URLs: c.URLs(), Stream: stream, Subject: strings.ToLower(stream), CreateStream: true,
		Replicas: 3, MaxBytes: 256 << 20, SpoolDir: b.TempDir(), AckTimeout: 10 * time.Second, MaxInFlight: window, Pack: pack})
	if err != nil {
		b.Fatal(err)
	}
	// The servers' storage (1 GB each) is shared by every stream the
	// benchmarks make: each goes when its benchmark ends.
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nc, err := nats.Connect(strings.Join(c.URLs(), ","))
		if err != nil {
			b.Logf("delete stream %s: %v", stream, err)
			return
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		if err := js.DeleteStream(ctx, stream); err != nil {
			b.Logf("delete stream %s: %v", stream, err)
		}
	})
	waitNATSReady(b, s)
	return s
}

// waitAcked waits until JetStream acknowledged n events of s.
func waitAcked(b *testing.B, s *NATSSink, n int) {
	deadline := time.Now().Add(5 * time.Minute)
	for s.Acked() < uint64(n) {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d events acked (%d spooled)", s.Acked(), n, s.Spooled())
		}
		time.Sleep(time.Millisecond)
	}
}

// natsVariants are the sinks the delivery benchmarks compare in one run:
// the file sink (the baseline every sink is measured against), the NATS
// sink's synchronous path with one message per event (the sink as it was
// first: each batch waits for its acks), its in-flight window with one
// message per event (the sink before packs), and the default: the window
// with packs of up to 64 events.
var natsVariants = []struct {
	name   string
	window int // MaxInFlight; 0 default
	pack   int // Pack; 0 default
}{{"file", 0, 0}, {"nats-r3-sync", -1, 1}, {"nats-r3-window", 0, 1}, {"nats-r3-pack", 0, 0}}

func benchSink(b *testing.B, name string, window, pack int) Sink {
	if name == "file" {
		s, err := NewFileSink(filepath.Join(b.TempDir(), "e.json"), 1<<40, 1)
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	return benchNATSSink(b, fmt.Sprintf("B%d", time.Now().UnixNano()), window, pack)
}

// serversCPU is the CPU time of the shared cluster's servers so far; zero
// for the file sink.
func serversCPU(b *testing.B, sink Sink) time.Duration {
	if _, ok := sink.(*NATSSink); !ok {
		return 0
	}
	return cluster(b).CPU()
}

// reportDelivery reports events/s, the agent process's cores (user + system
// CPU from getrusage over wall time: the servers are other processes) and
// its CPU per event, the three servers' CPU per event (from /proc, 10 ms
// ticks), and the load average when the run ended.
func reportDelivery(b *testing.B, n int, wall, cpu, srv time.Duration) {
	b.ReportMetric(float64(n)/wall.Seconds(), "events/s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/event")
	if srv > 0 {
		b.ReportMetric(srv.Seconds()/wall.Seconds(), "server-cores")
		b.ReportMetric(float64(srv.Nanoseconds())/float64(n), "server-cpu-ns/event")
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		var one float64
		if _, err := fmt.Sscan(string(la), &one); err == nil {
			b.ReportMetric(one, "loadavg")
		}
	}
}

// BenchmarkSinkDelivery sends b.N encoded events, 512 per Send as the
// pipeline does, to each of natsVariants; for NATS, the clock stops when
// JetStream has acked every event.
func BenchmarkSinkDelivery(b *testing.B) {
	for _, v := range natsVariants {
		b.Run(v.name, func(b *testing.B) {
			sink := benchSink(b, v.name, v.window, v.pack)
			defer sink.Close()
			recs := benchRecords(b, fmt.Sprintf("b%d", time.Now().UnixNano()), b.N)
			ctx := context.Background()
			b.ResetTimer()
			t0, cpu0, srv0 := time.Now(), cpuTime(b), serversCPU(b, sink)
			for i := 0; i < len(recs); i += benchBatch {
				batch := recs[i:min(i+benchBatch, len(recs))]
				if n, err := sink.Send(ctx, batch); n != len(batch) {
					b.Fatalf("delivered %d of %d: %v", n, len(batch), err)
				}
			}
			if s, ok := sink.(*NATSSink); ok {
				waitAcked(b, s, b.N)
			}
			wall, cpu, srv := time.Since(t0), cpuTime(b)-cpu0, serversCPU(b, sink)-srv0
			b.StopTimer()
			if s, ok := sink.(*NATSSink); ok && s.Spooled() > 0 {
				b.Fatalf("%d events went to the spool: not a delivery measurement", s.Spooled())
			}
			reportDelivery(b, b.N, wall, cpu, srv)
		})
	}
}

// benchEvent is a prog_load event as the sensor hands it to Emit: a fresh
// copy of natsEvent (Emit stamps it, so each event is its own).
func benchEvent(tmpl *Event, t time.Time) *Event {
	ev := *tmpl
	ev.Time = t
	return &ev
}

// BenchmarkAgentToJetStream is the agent's whole path: Emit (stamping, the
// hash chain, JSON encoding), the sink's queue and batching (512, as
// config.go sets for nats://), and the sink, for b.N prog_load events as fast
// as the queue takes them without a drop; the clock stops when the last
// event is acked (the file sink: written). Variants as natsVariants.
func BenchmarkAgentToJetStream(b *testing.B) {
	tmpl := natsEvent()
	for _, v := range natsVariants {
		b.Run(v.name, func(b *testing.B) {
			sink := benchSink(b, v.name, v.window, v.pack)
			p := NewPipeline(Config{Host: "bench-host", Instance: fmt.Sprintf("a%d", time.Now().UnixNano()), LossInterval: -1,
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			q := QueueOptions{BatchMax: 512}
			p.Add(sink, q)
			w := p.wk[0]
			size := int64(q.withDefaults().Size)
			b.ResetTimer()
			t0, cpu0, srv0 := time.Now(), cpuTime(b), serversCPU(b, sink)
			for i := 0; i < b.N; i++ {
				for w.pending.Load() >= size-1 {
					time.Sleep(50 * time.Microsecond)
				}
				p.Emit(benchEvent(tmpl, time.Now()))
			}
			for w.pending.Load() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
			if s, ok := sink.(*NATSSink); ok {
				waitAcked(b, s, b.N)
			}
			wall, cpu, srv := time.Since(t0), cpuTime(b)-cpu0, serversCPU(b, sink)-srv0
			b.StopTimer()
			if l := p.LossTotals(); len(l) > 0 {
				b.Fatalf("losses: %+v", l)
			}
			if s, ok := sink.(*NATSSink); ok && s.Spooled() > 0 {
				b.Fatalf("%d events went to the spool: not a delivery measurement", s.Spooled())
			}
			reportDelivery(b, b.N, wall, cpu, srv)
			if err := p.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			sink.Close()
		})
	}
}

// BenchmarkNATSLatency measures, per event, the time from its creation in
// the agent (the event's time, set just before Emit) to its arrival at a
// JetStream consumer of the replicated stream, through the whole agent path
// (Emit, queue, sink with its default window). Events are offered at a
// steady rate (every 5 ms, rate/200 of them), at least 10,000 per rate.
func BenchmarkNATSLatency(b *testing.B) {
	tmpl := natsEvent()
	for _, rate := range []int{10000, 20000} {
		for _, v := range natsVariants[1:] {
			latencyAt(b, tmpl, rate, v.name, v.window, v.pack)
		}
	}
}

func latencyAt(b *testing.B, tmpl *Event, rate int, name string, window, pack int) {
	b.Run(fmt.Sprintf("rate=%d/%s", rate, name), func(b *testing.B) {
		stream := fmt.Sprintf("LAT%d", time.Now().UnixNano())
		s := benchNATSSink(b, stream, window, pack)
		inst := strings.ToLower(stream)
		p := NewPipeline(Config{Host: "bench-host", Instance: inst, LossInterval: -1,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		p.Add(s, QueueOptions{BatchMax: 512})
		n := max(b.N, 10000)
		created := make([]atomic.Int64, n+1) // by seq
		lat := make([]time.Duration, 0, n)
		var mu sync.Mutex
		nc, err := nats.Connect(strings.Join(cluster(b).URLs(), ","))
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			b.Fatal(err)
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			now := time.Now()
			// Every event of the message, read as a consumer must
			// (a pack carries several).
			evs, err := NATSMessageEvents(m.Headers(), m.Data())
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, data := range evs {
				// The top-level id comes before any nested object
				// in the agent's encoding: no JSON decoding (~5 µs per
				// event) in the timed process.
				_, rest, ok := bytes.Cut(data, []byte(`"id":"`+inst+"-"))
				end := bytes.IndexByte(rest, '"')
				if !ok || end < 0 {
					continue
				}
				seq, err := strconv.Atoi(string(rest[:end]))
				if err != nil || seq <= 0 || seq > n {
					continue
				}
				lat = append(lat, now.Sub(time.Unix(0, created[seq].Load())))
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		defer cc.Stop()
		per := rate / 200
		b.ResetTimer()
		tick := time.NewTicker(5 * time.Millisecond)
		t0 := time.Now()
		for i := 0; i < n; {
			<-tick.C
			for j := 0; j < per && i < n; j++ {
				now := time.Now()
				i++
				created[i].Store(now.UnixNano())
				p.Emit(benchEvent(tmpl, now))
			}
		}
		tick.Stop()
		// The rate actually offered: on a loaded host the emitting
		// goroutine itself falls behind the ticker.
		b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "offered/s")
		// What the agent dropped (its queue full: the sink could not keep
		// up) never arrives: count it, and wait for the rest.
		w := p.wk[0]
		for w.pending.Load() > 0 {
			time.Sleep(time.Millisecond)
		}
		var lost uint64
		for _, l := range p.LossTotals() {
			lost += l.Total
		}
		for {
			mu.Lock()
			got := len(lat)
			mu.Unlock()
			if got >= n-int(lost) {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("consumer got %d of %d events (%d lost)", got, n, lost)
			}
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		b.ReportMetric(float64(lost), "lost")
		mu.Lock()
		defer mu.Unlock()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			var one float64
			if _, err := fmt.Sscan(string(la), &one); err == nil {
				b.ReportMetric(one, "loadavg")
			}
		}
		_ = p.Close(context.Background())
		s.Close()
	})
}

// BenchmarkSpoolWrite is the spool's cost per event during an outage,
// appended 512 at a time as Send does, with and without fsync, one record
// per event and (the default) in packs of up to 64, beside the file sink
// writing the same records: CPU (user + system) and bytes on disk per
// event; ns/op is the wall time per event, the flushes included (and, for
// packs, the packing).
func BenchmarkSpoolWrite(b *testing.B) {
	for _, name := range []string{"file-sink", "spool-fsync", "spool-nofsync", "spool-fsync-packs"} {
		b.Run(name, func(b *testing.B) {
			recs := benchRecords(b, "s", b.N)
			dir := b.TempDir()
			var write func([]Record)
			var size func() int64
			switch name {
			case "file-sink":
				s, err := NewFileSink(filepath.Join(dir, "e.json"), 1<<40, 1)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				write = func(r []Record) { s.Send(context.Background(), r) }
				size = func() int64 {
					st, err := os.Stat(filepath.Join(dir, "e.json"))
					if err != nil {
						b.Fatal(err)
					}
					return st.Size()
				}
			default:
				sp, _, err := openSpool(dir, 1<<40, 16<<20, name != "spool-nofsync")
				if err != nil {
					b.Fatal(err)
				}
				defer sp.Close()
				msgs := make([]spoolMsg, 512)
				packer := packTestSink(64, 64<<10)
				packer.opt.Subject = "ebpf-sentry"
				write = func(r []Record) {
					if name == "spool-fsync-packs" {
						m := packer.pack(r)
						if n, err := sp.Append(m); n != len(m) {
							b.Fatal(err)
						}
						return
					}
					for i, x := range r {
						msgs[i] = spoolMsg{Subject: "ebpf-sentry.bench-host.prog_load", ID: x.ID, Data: x.JSON}
					}
					if n, err := sp.Append(msgs[:len(r)]); n != len(r) {
						b.Fatal(err)
					}
				}
				size = sp.Size
			}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < len(recs); i += 512 {
				write(recs[i:min(i+512, len(recs))])
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
			b.StopTimer()
			b.ReportMetric(float64(size())/float64(b.N), "bytes/event")
			b.ReportMetric(float64(len(recs[0].JSON)), "json-bytes")
		})
	}
}
