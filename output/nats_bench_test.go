package output

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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

// BenchmarkSinkDelivery sends b.N encoded events, 512 per Send as the
// pipeline does, to a JetStream stream replicated on a local 3-node cluster,
// and to the file sink as the baseline of the same run. cores is the agent
// process's CPU time (user + system, from getrusage; the servers are other
// processes) over wall time.
func BenchmarkSinkDelivery(b *testing.B) {
	for _, name := range []string{"file", "nats-r3"} {
		b.Run(name, func(b *testing.B) {
			var sink Sink
			run := fmt.Sprintf("b%d", time.Now().UnixNano())
			switch name {
			case "file":
				s, err := NewFileSink(filepath.Join(b.TempDir(), "e.json"), 1<<30, 1)
				if err != nil {
					b.Fatal(err)
				}
				sink = s
			default:
				c := cluster(b)
				s, err := NewNATSSink(NATSOptions{URLs: c.URLs(), Stream: "BENCH", Subject: "bench", CreateStream: true,
					Replicas: 3, MaxBytes: 1 << 30, SpoolDir: b.TempDir(), AckTimeout: 10 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				waitNATSReady(b, s)
				sink = s
			}
			defer sink.Close()
			recs := benchRecords(b, run, b.N)
			ctx := context.Background()
			b.ResetTimer()
			t0, cpu0 := time.Now(), cpuTime(b)
			for i := 0; i < len(recs); i += benchBatch {
				batch := recs[i:min(i+benchBatch, len(recs))]
				if n, err := sink.Send(ctx, batch); n != len(batch) {
					b.Fatalf("delivered %d of %d: %v", n, len(batch), err)
				}
			}
			wall, cpu := time.Since(t0), cpuTime(b)-cpu0
			b.StopTimer()
			if s, ok := sink.(*NATSSink); ok && s.Spooled() > 0 {
				b.Fatalf("%d events went to the spool: not a delivery measurement", s.Spooled())
			}
			b.ReportMetric(float64(b.N)/wall.Seconds(), "events/s")
			b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/event")
		})
	}
}

// BenchmarkNATSLatency publishes events at 10,000/s (batches of 100 every
// 10 ms) and measures, per event, the time from Send to its arrival at a
// JetStream consumer of the replicated stream.
func BenchmarkNATSLatency(b *testing.B) {
	c := cluster(b)
	stream := fmt.Sprintf("LAT%d", time.Now().UnixNano())
	s, err := NewNATSSink(NATSOptions{URLs: c.URLs(), Stream: stream, Subject: strings.ToLower(stream), CreateStream: true,
		Replicas: 3, SpoolDir: b.TempDir(), AckTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	waitNATSReady(b, s)
	n := max(b.N, 5000)
	recs := benchRecords(b, stream, n)
	sentAt := make([]time.Time, n)
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	done := make(chan struct{})
	nc, err := nats.Connect(strings.Join(c.URLs(), ","))
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
	index := map[string]int{}
	for i, r := range recs {
		index[r.ID] = i
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		i, ok := index[m.Headers().Get("Nats-Msg-Id")]
		if !ok || sentAt[i].IsZero() {
			return
		}
		lat = append(lat, now.Sub(sentAt[i]))
		if len(lat) == n {
			close(done)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Stop()
	b.ResetTimer()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < n; i += 100 {
		<-tick.C
		batch := recs[i:min(i+100, n)]
		now := time.Now()
		mu.Lock()
		for j := range batch {
			sentAt[i+j] = now
		}
		mu.Unlock()
		if got, err := s.Send(ctx, batch); got != len(batch) {
			b.Fatalf("delivered %d of %d: %v", got, len(batch), err)
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("consumer got %d of %d events", len(lat), n)
	}
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkSpoolWrite is the spool's cost per event during an outage,
// appended 512 at a time as Send does, with and without fsync, beside the
// file sink writing the same records.
func BenchmarkSpoolWrite(b *testing.B) {
	for _, name := range []string{"file-sink", "spool-fsync", "spool-nofsync"} {
		b.Run(name, func(b *testing.B) {
			recs := benchRecords(b, "s", b.N)
			var write func([]Record)
			switch name {
			case "file-sink":
				s, err := NewFileSink(filepath.Join(b.TempDir(), "e.json"), 1<<40, 1)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				write = func(r []Record) { s.Send(context.Background(), r) }
			default:
				sp, _, err := openSpool(b.TempDir(), 1<<40, 16<<20, name == "spool-fsync")
				if err != nil {
					b.Fatal(err)
				}
				defer sp.Close()
				msgs := make([]spoolMsg, 512)
				write = func(r []Record) {
					for i, x := range r {
						msgs[i] = spoolMsg{Subject: "ebpf-sentry.bench-host.prog_load", ID: x.ID, Data: x.JSON}
					}
					if n, err := sp.Append(msgs[:len(r)]); n != len(r) {
						b.Fatal(err)
					}
				}
			}
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for i := 0; i < len(recs); i += 512 {
				write(recs[i:min(i+512, len(recs))])
			}
			b.ReportMetric(float64((cpuTime(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
		})
	}
}
