package analysis

import (
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// millionInsns is a 1,000,000-slot program made of a block that exercises
// every analysis: a stack string, a printk of it, a map load, a helper call,
// a four-byte compare chain and a tail call.
func millionInsns() *program.Program {
	a := &asmb{}
	for a.n() < insn.MaxInstructions-32 {
		a.ld64(r1, 0, le("/etc/pas")).stx(8, r10, r1, -16).mov(r1, le32("swd")).stx(4, r10, r1, -8)
		a.movx(r1, r10).add(r1, -16).mov(r2, 12).call(6)
		a.ld64(r1, 1, 4).movx(r2, r10).add(r2, -24).call(1)
		for i, c := range []byte("root") {
			a.ldx(1, r2, r0, int16(i)).jneImm(r2, int32(c), 1)
		}
		a.movx(r1, r6).ld64(r2, 1, 5).mov(r3, 0).call(12)
	}
	for a.n() < insn.MaxInstructions-1 {
		a.mov(r0, 0)
	}
	return a.exit().prog()
}

func BenchmarkAnalyze1M(b *testing.B) {
	p := millionInsns()
	if n := len(p.Insns) / 8; n != insn.MaxInstructions {
		b.Fatalf("%d slots", n)
	}
	DefaultHelperName(1) // load the helper table outside the timing
	b.SetBytes(int64(len(p.Insns)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		r := Analyze(p, nil)
		if r.InsnCount != insn.MaxInstructions || len(r.Strings) == 0 {
			b.Fatalf("%d insns, %d strings", r.InsnCount, len(r.Strings))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/insn.MaxInstructions, "ns/insn")
	// The CI host is shared: CPU time per run is steadier than wall time.
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
