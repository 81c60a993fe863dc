package sensor

import (
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// BenchmarkGroupLoad is the cost of the group judge per load: the sensor on
// the tracepoint hook with the default rules (one of scope group, so every
// load gets a group view), loading a 10-instruction program that
// references maps=N distinct hash maps (ld_imm64 map fds), each once. It
// reports the sensor programs' kernel time per load (sensor-ns/op) and the
// walk's (walk-ns/load), like BenchmarkProgLoad.
func BenchmarkGroupLoad(b *testing.B) {
	testutils.RequireRoot(b, "loading BPF programs")
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	s, err := New(Config{Hook: HookTracepoint, Mode: ModeMonitor, Rules: rules.Compile(rules.MustDefaults()).Kernel(), RingBufferSize: *benchRing})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ws := &walkStats{}
	go func() {
		for ev := range s.Events() {
			ws.add(ev)
		}
	}()
	go func() {
		for range s.ProgArrayWrites() {
		}
	}()
	for _, n := range []int{0, 1, 3, 16} {
		var insns asm.Instructions
		for i := 0; i < n; i++ {
			m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			insns = append(insns, asm.LoadMapPtr(asm.R1, m.FD()))
		}
		for len(insns) < 8+n {
			insns = append(insns, asm.Mov.Imm(asm.R0, 0))
		}
		insns = append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())
		raw := marshalInsns(b, insns)
		b.Run(fmt.Sprintf("maps=%d", n), func(b *testing.B) {
			measure(b, s, ws, func() {
				if err := rawLoad(raw, "grpbench"); err != nil {
					b.Fatalf("load: %v", err)
				}
			})
		})
	}
}
