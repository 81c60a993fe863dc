package loaderrun

import (
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// BenchmarkBracketedSyscallRun: what the bracket adds to a
// BPF_PROG_TEST_RUN of a syscall program (the light skeleton's loader
// call), its reader draining the records as run's does. Off and on are
// measured in the same run, alternating in nine rounds of b.N runs each
// (the bracket attached for the "on" half of a round only); reported: ns
// per run for each and the median of the rounds' on/off ratios. Stop is off: in enforce mode the caller is also
// stopped until user space has judged what the run loaded, a cost of that
// judgement (TestRunStopsTheLightSkeletonsPayload logs it), not of the
// hook.
func BenchmarkBracketedSyscallRun(b *testing.B) {
	testutils.RequireRoot(b, "attaching the bpf() tracepoints")
	sys, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bench_sys", Type: ebpf.Syscall, License: "GPL",
		Flags: unix.BPF_F_SLEEPABLE, Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer sys.Close()
	ctx := make([]byte, 8)
	runs := func(n int) time.Duration {
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := sys.Run(&ebpf.RunOptions{Context: ctx}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	const rounds = 9
	var off, on time.Duration
	var ratios []float64
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		o := runs(b.N)
		off += o
		b.StopTimer()
		br, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				if _, err := br.Read(); errors.Is(err, os.ErrClosed) {
					return
				}
			}
		}()
		b.StartTimer()
		w := runs(b.N)
		on += w
		ratios = append(ratios, float64(w)/float64(o))
		b.StopTimer()
		br.Close()
		<-done
		b.StartTimer()
	}
	n := float64(rounds * b.N)
	b.ReportMetric(float64(off.Nanoseconds())/n, "off-ns/run")
	b.ReportMetric(float64(on.Nanoseconds())/n, "on-ns/run")
	// The median of the rounds' ratios: on a shared host one slow
	// stretch lands in one round, not in the figure.
	slices.Sort(ratios)
	b.ReportMetric(ratios[rounds/2], "on/off")
}
