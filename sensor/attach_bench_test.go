package sensor

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// attachBenchHooks: off, the tracepoint hook, off again (drift).
var attachBenchHooks = []string{"off", string(HookTracepoint), "off"}

// asStranger makes the sensor judge and report this process like any other
// (its own attaches are otherwise skipped before the report); it returns
// the sum of the entry program's own time over this process's attaches.
func asStranger(b *testing.B, s *Sensor) *attachTimes {
	at := &attachTimes{}
	if s == nil {
		return at
	}
	s.self = Identity{}
	if err := s.writeConfig(); err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev := range s.Attaches() {
			if int(ev.Caller.PID) == os.Getpid() {
				at.mu.Lock()
				at.total += ev.JudgeTime
				at.n++
				at.mu.Unlock()
			}
		}
	}()
	return at
}

type attachTimes struct {
	mu    sync.Mutex
	total time.Duration
	n     int
}

func (a *attachTimes) report(b *testing.B) {
	time.Sleep(200 * time.Millisecond) // the last events
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n > 0 {
		b.ReportMetric(float64(a.total.Nanoseconds())/float64(a.n), "judge-ns/attach")
	}
}

// rawTPOpen is bpf(BPF_RAW_TRACEPOINT_OPEN, name, prog fd): the link's fd.
func rawTPOpen(name []byte, prog int) (int, error) {
	attr := struct {
		name   uint64
		progFD uint32
		_      uint32
		cookie uint64
	}{name: uint64(uintptr(unsafe.Pointer(&name[0]))), progFD: uint32(prog)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_RAW_TRACEPOINT_OPEN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// BenchmarkAttach is an attach's own syscall with the sensor off and on:
// BPF_RAW_TRACEPOINT_OPEN of a raw tracepoint program on a tracepoint that
// rarely fires (the links are closed outside the timer).
func BenchmarkAttach(b *testing.B) {
	testutils.RequireRoot(b, "attaching BPF programs")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	name := []byte("task_rename\x00")
	for i, hook := range attachBenchHooks {
		withSensor(b, hook, func(s *Sensor, ws *walkStats) {
			at := asStranger(b, s)
			b.Run(fmt.Sprintf("sentry=%s#%d/raw_tracepoint_open", hook, i), func(b *testing.B) {
				// Closing a raw tracepoint link waits for RCU grace periods
				// (milliseconds): close outside the timer, in batches.
				var open []int
				measure(b, s, ws, func() {
					fd, err := rawTPOpen(name, prog.FD())
					if err != nil {
						b.Fatal(err)
					}
					if open = append(open, fd); len(open) == 64 {
						b.StopTimer()
						for _, fd := range open {
							unix.Close(fd)
						}
						open = open[:0]
						b.StartTimer()
					}
				})
				for _, fd := range open {
					unix.Close(fd)
				}
				if s != nil {
					at.report(b)
				}
			})
		})
	}
}

// BenchmarkUnrelatedIoctl is the cost of the ioctl hook to a loop of
// ioctls that are not PERF_EVENT_IOC_SET_BPF (FIONREAD, alias TIOCINQ, on
// a pipe), side by side with the same loop without it in one run: the
// sensor starts once, and the loop alternates chunks with the ioctl
// tracepoints attached and detached (ns/op is one pair of chunks with the toggling; the figures are the chunks' own), so
// that the host's drift falls on both sides alike. It reports the wall
// time per ioctl of each side and their ratio (median of the per-chunk
// ratios), and the hook programs' own run time per call from bpf_stats
// (run_time_ns / run_cnt of the enter and exit programs: every ioctl on
// the host counts, which is the same per-call cost), a figure the noise of
// a shared host does not blur.
func BenchmarkUnrelatedIoctl(b *testing.B) {
	testutils.RequireRoot(b, "attaching the sensor")
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	func() {
		// no bpf_stats while the wall clock runs: they add two clock
		// reads to every program run (enabled below, for the programs'
		// own time)
		s, err := New(Config{Hook: HookTracepoint, Mode: ModeMonitor, RingBufferSize: 8 << 20})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		go func() {
			for range s.Events() {
			}
		}()
		hooks := ioctlHooks(b, s)
		off := func() {
			for _, h := range hooks {
				s.attachLinks[h.i].Close()
			}
		}
		on := func() {
			for _, h := range hooks {
				l, err := link.Tracepoint(h.p.group, h.p.event, h.prog, nil)
				if err != nil {
					b.Fatal(err)
				}
				s.attachLinks[h.i] = l
			}
		}
		b.Run("sentry=tracepoint-vs-off", func(b *testing.B) {
			const chunk = 2000
			run := func(n int) time.Duration {
				t0 := time.Now()
				for range n {
					if _, err := unix.IoctlGetInt(p[0], unix.TIOCINQ); err != nil {
						b.Fatal(err)
					}
				}
				return time.Since(t0)
			}
			var offT, onT time.Duration
			var ratios []float64
			n := 0
			for b.Loop() {
				// one iteration: a chunk on, then a chunk off (the
				// order alternates so neither side always runs first)
				var tOn, tOff time.Duration
				if n%2 == 0 {
					tOn = run(chunk)
					off()
					tOff = run(chunk)
					on()
				} else {
					off()
					tOff = run(chunk)
					on()
					tOn = run(chunk)
				}
				onT += tOn
				offT += tOff
				ratios = append(ratios, float64(tOn)/float64(tOff))
				n++
			}
			stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatalf("enable BPF run-time stats: %v", err)
			}
			// the floor: a two-instruction program on the same tracepoint,
			// whose run time is bpf_stats' own clock reads and little else
			floor, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint, License: "GPL",
				Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
			if err != nil {
				b.Fatal(err)
			}
			defer floor.Close()
			fl, err := link.Tracepoint("syscalls", "sys_enter_ioctl", floor, nil)
			if err != nil {
				b.Fatal(err)
			}
			hooks := append(hooks, ioctlHook{prog: floor})
			st0 := hookStats(b, hooks)
			run(100 * chunk)
			st1 := hookStats(b, hooks)
			fl.Close()
			stats.Close()
			slices.Sort(ratios)
			ops := float64(n * chunk)
			b.ReportMetric(float64(offT.Nanoseconds())/ops, "off-ns/ioctl")
			b.ReportMetric(float64(onT.Nanoseconds())/ops, "on-ns/ioctl")
			b.ReportMetric((ratios[len(ratios)/2]-1)*100, "median-added-%")
			perRun := func(i int) float64 {
				if c := st1[i].RunCount - st0[i].RunCount; c > 0 {
					return float64((st1[i].Runtime - st0[i].Runtime).Nanoseconds()) / float64(c)
				}
				return 0
			}
			floorNS := perRun(len(hooks) - 1)
			b.ReportMetric(floorNS, "floor-ns/run")
			var perCall float64
			for i := range len(hooks) - 1 {
				perCall += perRun(i)
			}
			b.ReportMetric(perCall, "sensor-ns/ioctl")
			b.ReportMetric(perCall/(float64(offT.Nanoseconds())/ops)*100, "sensor-%")
			// above the floor: what the programs do beyond being run
			b.ReportMetric((perCall-2*floorNS)/(float64(offT.Nanoseconds())/ops)*100, "above-floor-%")
		})
	}()
}

type ioctlHook struct {
	i    int // index into s.attachLinks
	p    attachProgram
	prog *ebpf.Program
}

// ioctlHooks finds the sensor's sys_enter_ioctl and sys_exit_ioctl
// programs and their links.
func ioctlHooks(b *testing.B, s *Sensor) []ioctlHook {
	var out []ioctlHook
	for i, p := range s.attachProgs {
		if p.event == "sys_enter_ioctl" || p.event == "sys_exit_ioctl" {
			out = append(out, ioctlHook{i: i, p: p, prog: s.attachColls[i].Programs[p.name]})
		}
	}
	if len(out) != 2 {
		b.Fatalf("ioctl hooks: %d programs attached, want enter and exit (%s)", len(out), s.AttachCoverage())
	}
	return out
}

func hookStats(b *testing.B, hooks []ioctlHook) []ebpf.ProgramStats {
	out := make([]ebpf.ProgramStats, len(hooks))
	for i, h := range hooks {
		st, err := h.prog.Stats()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = *st
	}
	return out
}
