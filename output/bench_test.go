package output

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// benchProgram is a program of n slots in a mix like compiled tracing code:
// stack stores of immediates (strings), helper calls, map loads, branches.
func benchProgram(n int) *program.Program {
	var raw []byte
	slot := func(code, regs byte, off int16, imm int32) {
		raw = insn.Slot{Code: code, Dst: regs & 0xf, Src: regs >> 4, Off: off, Imm: imm}.Append(raw)
	}
	for len(raw)/8 < n-12 {
		slot(0xb7, 0x01, 0, 0x6c6c6568) // r1 = "hell"
		slot(0x63, 0xa1, -8, 0)         // *(u32 *)(r10 -8) = r1
		slot(0x18, 0x12, 0, 7)          // r2 = map fd 7 (ld_imm64, pseudo map fd)
		slot(0x00, 0x00, 0, 0)          //   second slot
		slot(0xbf, 0xa3, 0, 0)          // r3 = r10
		slot(0x07, 0x03, 0, -8)         // r3 += -8
		slot(0x85, 0x00, 0, 1)          // call bpf_map_lookup_elem
		slot(0x15, 0x00, 2, 0)          // if r0 == 0 goto +2
		slot(0x85, 0x00, 0, 14)         // call bpf_get_current_pid_tgid
		slot(0x7b, 0x0a, -16, 0)        // *(u64 *)(r10 -16) = r0
	}
	for len(raw)/8 < n-1 {
		slot(0xb7, 0x00, 0, 0)
	}
	slot(0x95, 0, 0, 0) // exit
	return &program.Program{
		Source: program.SourceSensor, Name: "bench_prog", Type: 5, License: "GPL", InsnCnt: uint32(n), Insns: raw,
		Loader: &program.Loader{PID: 1, TID: 1, Comm: "bench", Exe: "/usr/bin/bench"},
		Kernel: &program.Kernel{ID: 1, Tag: "0011223344556677"},
	}
}

// BenchmarkProgLoadEvent10k measures what one 10,000-instruction load costs
// user space from captured bytes to the JSON line the sinks get: analysis,
// decoding, kernel-form disassembly of every instruction, event building
// and encoding with both instruction forms and no cap.
func BenchmarkProgLoadEvent10k(b *testing.B) {
	p := benchProgram(10_000)
	opts := &analysis.Options{Kfuncs: nil}
	b.ReportAllocs()
	var size int
	cpu := startCPU(b)
	for b.Loop() {
		rep := analysis.Analyze(p, opts)
		insns, _ := insn.Decode(p.Insns)
		ev := NewProgLoad(ProgLoad{Time: time.Now(), Program: p, Report: rep, Disasm: KernelText(nil, insns)},
			InsnOptions{Mode: InsnModeBoth})
		ev.SchemaVersion, ev.ID, ev.Host = SchemaVersion, "bench-1", "h"
		line, err := Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		size = len(line)
	}
	cpu.report(b)
	b.ReportMetric(float64(size), "bytes/event")
}

// BenchmarkProgLoadEncodeOnly10k isolates building and encoding the event
// (disassembly already rendered), the part the output package owns.
func BenchmarkProgLoadEncodeOnly10k(b *testing.B) {
	p := benchProgram(10_000)
	insns, _ := insn.Decode(p.Insns)
	text := KernelText(nil, insns)
	rep := analysis.Analyze(p, nil)
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		ev := NewProgLoad(ProgLoad{Program: p, Report: rep, Disasm: text}, InsnOptions{Mode: InsnModeBoth})
		if _, err := Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkSink pushes b.N typical prog_load events (a 200-instruction
// program with its disassembly, ~10 KiB of JSON) through the pipeline into
// one sink with a local receiver that discards, and reports delivered
// events per second. The queue holds them all, so the figure is the sink's
// own throughput.
func BenchmarkSink(b *testing.B) {
	p := benchProgram(200)
	insns, _ := insn.Decode(p.Insns)
	ev := NewProgLoad(ProgLoad{Program: p, Report: analysis.Analyze(p, nil), Disasm: KernelText(nil, insns)}, InsnOptions{Mode: InsnModeText})
	sinks := []struct {
		name string
		make func(b *testing.B) (Sink, QueueOptions)
	}{
		{"stdout", func(b *testing.B) (Sink, QueueOptions) { return NewWriterSink("stdout", io.Discard), QueueOptions{} }},
		{"file", func(b *testing.B) (Sink, QueueOptions) {
			s, err := NewFileSink(filepath.Join(b.TempDir(), "e.json"), 64<<20, 2)
			if err != nil {
				b.Fatal(err)
			}
			return s, QueueOptions{}
		}},
		{"syslog-udp", func(b *testing.B) (Sink, QueueOptions) {
			c, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			_ = c.(*net.UDPConn).SetReadBuffer(8 << 20)
			go discardPackets(c)
			b.Cleanup(func() { c.Close() })
			s, _ := NewSyslogSink(SyslogOptions{Network: "udp", Addr: c.LocalAddr().String()})
			return s, QueueOptions{}
		}},
		{"syslog-tcp", func(b *testing.B) (Sink, QueueOptions) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
				}
			}()
			b.Cleanup(func() { l.Close() })
			s, _ := NewSyslogSink(SyslogOptions{Network: "tcp", Addr: l.Addr().String()})
			return s, QueueOptions{}
		}},
		{"syslog-unix", func(b *testing.B) (Sink, QueueOptions) {
			path := filepath.Join(b.TempDir(), "s")
			c, err := net.ListenPacket("unixgram", path)
			if err != nil {
				b.Fatal(err)
			}
			go discardPackets(c)
			b.Cleanup(func() { c.Close() })
			s, _ := NewSyslogSink(SyslogOptions{Network: "unixgram", Addr: path})
			return s, QueueOptions{}
		}},
		{"webhook", func(b *testing.B) (Sink, QueueOptions) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
			b.Cleanup(srv.Close)
			s, _ := NewWebhookSink(WebhookOptions{URL: srv.URL})
			return s, QueueOptions{BatchMax: 100, Linger: 10 * time.Millisecond}
		}},
	}
	sinks = append(sinks, struct {
		name string
		make func(b *testing.B) (Sink, QueueOptions)
	}{"all-six-at-once", nil})
	for _, sk := range sinks {
		b.Run(sk.name, func(b *testing.B) {
			pl := NewPipeline(Config{Host: "h", LossInterval: -1})
			var s Sink
			if sk.make != nil {
				var q QueueOptions
				s, q = sk.make(b)
				q.Size = b.N + 16
				pl.Add(s, q)
			} else {
				// Fan-out: every event to every sink; the figure is events
				// per second that all six delivered.
				for _, o := range sinks[:len(sinks)-1] {
					os, q := o.make(b)
					q.Size = b.N + 16
					pl.Add(os, q)
				}
			}
			start := time.Now()
			b.ResetTimer()
			cpu := startCPU(b)
			for range b.N {
				cp := *ev
				pl.Emit(&cp)
			}
			if err := pl.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu.report(b)
			if l := pl.LossTotals(); len(l) != 0 {
				b.Fatalf("losses: %+v", l)
			}
			delivered := uint64(b.N)
			for _, n := range pl.Delivered() {
				delivered = min(delivered, n)
			}
			b.ReportMetric(float64(delivered)/time.Since(start).Seconds(), "events/s")
		})
	}
}

func discardPackets(c net.PacketConn) {
	buf := make([]byte, 1<<17)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
	}
}

// cpuClock measures the process's CPU time (user+system, all threads), so
// figures stay meaningful on a machine shared with other busy processes,
// where wall-clock ns/op mostly measures waiting for a core.
type cpuClock struct{ start time.Duration }

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) cpuClock { return cpuClock{processCPU(b)} }

func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(processCPU(b)-c.start)/float64(b.N), "cpu-ns/op")
}
