package sensor

import (
	"os"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The whole ring is written through before New returns, and the discarded
// pre-fault records never reach the record parser or the loss counters.
func TestNewPrefaultsTheWholeRing(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		t.Skip("the sensor does not start without bpf_loop")
	}
	for _, size := range []int{1 << 20, DefaultRingBufferSize} {
		s, err := New(Config{Hook: HookTracepoint, Mode: ModeMonitor, RingBufferSize: size})
		if err != nil {
			t.Fatal(err)
		}
		got := s.PrefaultedPages()
		s.Close()
		if want := size / prefaultPage; got != want {
			t.Errorf("ring of %d bytes: pre-faulted %d pages, want %d", size, got, want)
		}
		if s.badRecs != 0 {
			t.Errorf("ring of %d bytes: %d records failed to parse after the pre-fault", size, s.badRecs)
		}
		l, err := s.Losses()
		if err != nil {
			t.Fatal(err)
		}
		if l.Total() != 0 {
			t.Errorf("ring of %d bytes: losses after the pre-fault: %v", size, l)
		}
	}
}
