package inventory

import (
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// BenchmarkLoadPathWhileReconciling measures BPF_PROG_LOAD (+ close) with
// no reconciliation ("idle") and with a reconciliation pass (ProgramIDs,
// what run does every --reconcile period) running back to back on another
// goroutine ("reconciling"), in the same run. Run's default period is 30 s;
// back to back is thousands of times more often, an upper bound.
func BenchmarkLoadPathWhileReconciling(b *testing.B) {
	testutils.RequireRoot(b, "loading BPF programs")
	spec := &ebpf.ProgramSpec{Name: "bench_load", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}}
	load := func(b *testing.B) {
		for b.Loop() {
			p, err := ebpf.NewProgram(spec)
			if err != nil {
				b.Fatal(err)
			}
			p.Close()
		}
	}
	b.Run("idle", load)
	b.Run("reconciling", func(b *testing.B) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		passes := 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := ProgramIDs(); err != nil {
					b.Error(err)
					return
				}
				passes++
				time.Sleep(time.Millisecond)
			}
		}()
		load(b)
		close(stop)
		wg.Wait()
		b.ReportMetric(float64(passes)/b.Elapsed().Seconds(), "passes/s")
	})
	b.Run("pass", func(b *testing.B) {
		for b.Loop() {
			if _, err := ProgramIDs(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
