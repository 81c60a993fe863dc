package capture

import (
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// BenchmarkSetsockopt is a setsockopt-heavy loop (SO_RCVBUF on a UDP
// socket) with the hook off and on, in the same run: the cost the hook adds
// to setsockopt calls that do not attach filters.
func BenchmarkSetsockopt(b *testing.B) {
	testutils.RequireRoot(b, "attaching the setsockopt tracepoint")
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	loop := func(b *testing.B) {
		for b.Loop() {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 65536); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("hook=off", loop)
	c, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	// The hook's own time per call, from the kernel's BPF run-time
	// statistics: a figure the shared host's noise does not blur.
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatal(err)
	}
	defer stats.Close()
	b.Run("hook=on", func(b *testing.B) {
		before, err := c.objs.CbpfSetsockopt.Stats()
		if err != nil {
			b.Fatal(err)
		}
		loop(b)
		after, err := c.objs.CbpfSetsockopt.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if n := after.RunCount - before.RunCount; n > 0 {
			b.ReportMetric(float64(after.Runtime-before.Runtime)/float64(n), "hook-ns/call")
		}
	})
}
