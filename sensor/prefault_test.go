package sensor

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The whole ring is written through before New returns, and the discarded
// pre-fault records never reach the record parser or the loss counters.
func TestNewPrefaultsTheWholeRing(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	walks := []Walk{WalkLoop, WalkBounded}
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		walks = []Walk{WalkBounded}
	}
	// The pre-fault is a BPF_PROG_TYPE_SYSCALL program (5.14+): before
	// that nothing is pre-faulted and the sensor starts all the same.
	canRun := features.HaveProgramType(ebpf.Syscall) == nil
	for _, walk := range walks {
		for _, size := range []int{1 << 20, DefaultRingBufferSize} {
			s, err := New(Config{Hook: HookTracepoint, Walk: walk, Mode: ModeMonitor, RingBufferSize: size})
			if err != nil {
				t.Fatal(err)
			}
			got := s.PrefaultedPages()
			s.Close()
			want := size / prefaultPage
			if !canRun {
				want = 0
			}
			if got != want {
				t.Errorf("walk %s, ring of %d bytes: pre-faulted %d pages, want %d", walk, size, got, want)
			}
			if s.badRecs != 0 {
				t.Errorf("walk %s, ring of %d bytes: %d records failed to parse after the pre-fault", walk, size, s.badRecs)
			}
			l, err := s.Losses()
			if err != nil {
				t.Fatal(err)
			}
			if l.Total() != 0 {
				t.Errorf("walk %s, ring of %d bytes: losses after the pre-fault: %v", walk, size, l)
			}
		}
	}
}
