package sensor

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// BenchmarkLockLookup is the cost of lock mode's allowlist lookup on the
// load path, against lock off in the same run with the same sensor:
// walk-ns/load is the kernel's own timing of each judgement (the lookup
// included), sensor-ns/op what bpf_stats accounted to the sensor's
// programs. The benchmark's loads are locked: the process joins a test
// cgroup that the lock is scoped to, and the agent's identity is cleared
// from the kernel config so that its loads are looked up instead of spared.
// Lists of 1 and 65,536 fingerprints hold the loaded program's.
func BenchmarkLockLookup(b *testing.B) {
	testutils.RequireRoot(b, "attaching the sensor")
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	cg := testutils.NewCgroup(b, "lockbench")
	cg.Enter(b)
	s, err := New(Config{Hook: HookTracepoint, Mode: ModeEnforce, RingBufferSize: *benchRing})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ws := &walkStats{}
	var mu sync.Mutex
	listed := 0
	go func() {
		for ev := range s.Events() {
			ws.add(ev)
			if ev.Lock == LockListed && ev.Program.Loader != nil && ev.Program.Loader.PID == uint32(os.Getpid()) {
				mu.Lock()
				listed++
				mu.Unlock()
			}
		}
	}()
	s.self = Identity{}
	big := make([]uint64, MaxAllowlist)
	for i := range big {
		big[i] = uint64(i)*0x9e3779b97f4a7c15 + 1
	}
	for _, n := range []int{10, 1000} {
		insns := genInsns(n)
		fp := kernel.Hash(insns)
		for _, lock := range []struct {
			name string
			list []uint64
		}{{"off", nil}, {"on-1", []uint64{fp}}, {"on-65536", append(append([]uint64(nil), big[:MaxAllowlist-1]...), fp)}, {"off-again", nil}} {
			if err := s.SetAllowlist(lock.list); err != nil {
				b.Fatal(err)
			}
			if err := s.SetLock(lock.list != nil, cg.ID); err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("insns=%d/lock=%s", n, lock.name), func(b *testing.B) {
				mu.Lock()
				before := listed
				mu.Unlock()
				measure(b, s, ws, func() {
					if err := rawLoad(insns, "benchlock"); err != nil {
						b.Fatalf("load %d insns with lock %s: %v", n, lock.name, err)
					}
				})
				mu.Lock()
				looked := listed - before
				mu.Unlock()
				// measure waited for this run's events: each load of a
				// lock-on run must have been looked up and found.
				if lock.list != nil && looked < b.N {
					b.Fatalf("%d of %d loads were looked up on the allowlist", looked, b.N)
				}
			})
		}
	}
}
