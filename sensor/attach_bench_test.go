package sensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
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
// a pipe), side by side with the same loop without it in one run. One
// sensor starts (monitor mode, tracepoint hook, with the old exit program
// loaded too) and the loop runs rounds of chunks, one chunk per setup, in
// an order shuffled every round so that the host's drift falls on all
// alike:
//
//   - off: no program on ioctl;
//   - on-demand-no-perf-fds: what the on-demand hook (the default) attaches
//     on ioctl in monitor mode while no process holds a perf event fd
//     without a program, from the sensor's plan and arming rule (nothing:
//     it measures as off, which the same-run ratio shows within noise);
//   - on-demand-perf-fd-held: the same while one does (the exit program);
//   - exit: the shipped monitor-mode hook, sys_exit_ioctl alone;
//   - enforce: the shipped enforce-mode hooks, sys_enter_ioctl + sys_exit_ioctl;
//   - pair: the old hook in every mode, sys_enter_ioctl + the exit that
//     returns on one array word.
//
// Each chunk is timed by the wall clock and by the thread's own CPU clock
// (CLOCK_THREAD_CPUTIME_ID, the thread locked to it: time the host gives
// other processes does not count, which the wall clock cannot say). It
// reports per setup the ns per ioctl of both clocks, the median of the
// per-round ratios to off, and the CPU time of the least disturbed chunk
// against off's (cpu-min: interference only adds time), and, with bpf_stats switched on only afterwards,
// the programs' own run time per call (run_time_ns / run_cnt; every ioctl
// on the host counts, which is the same per-call cost) next to the run time
// of a two-instruction program on each of the two tracepoints
// (enter-/exit-floor-ns/run: what bpf_stats' own clock reads and the
// tracepoint's way of running a program cost per run; above-floor-ns is
// the programs' time less their sides' floors). The extra setups split
// the old pair (enter-alone, old-exit-alone) and run the floor programs
// alone (trivial-enter, trivial-exit: the least a program on either
// tracepoint can add).
func BenchmarkUnrelatedIoctl(b *testing.B) {
	testutils.RequireRoot(b, "attaching the sensor")
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	// no bpf_stats while the clocks run: they add two clock reads to every
	// program run (enabled below, for the programs' own time)
	s, err := New(Config{Hook: HookTracepoint, Mode: ModeMonitor, RingBufferSize: 8 << 20, ioctlPairToo: true, IoctlHook: IoctlHookAlways})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range s.Events() {
		}
	}()
	h := newIoctlHooks(b, s)
	defer h.set(b, []*ioctlProg{h.exit}) // as the sensor runs, for its Close
	// the floors: a two-instruction program for each of the two
	// tracepoints, the least any program there costs (a setup of their
	// own: the tracepoint's way of running a program; with bpf_stats:
	// their clock reads)
	floors := map[string]*ioctlProg{}
	for _, event := range []string{"sys_enter_ioctl", "sys_exit_ioctl"} {
		floor, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.TracePoint, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
		if err != nil {
			b.Fatal(err)
		}
		defer floor.Close()
		fp := &ioctlProg{name: "floor " + event, prog: floor, p: attachProgram{group: "syscalls", event: event}, index: -1}
		floors[event] = fp
		h.all = append(h.all, fp)
	}
	floorEnter, floorExit := floors["sys_enter_ioctl"], floors["sys_exit_ioctl"]
	// what the on-demand hook attaches on ioctl in monitor mode, from the
	// sensor's own plan and arming rule: with the gate closed (no process
	// holds a perf fd) and open
	onDemand := func(open bool) []*ioctlProg {
		var out []*ioctlProg
		cfg := s.cfg
		cfg.IoctlHook = IoctlHookOnDemand
		for _, p := range attachPlan(s.hook, cfg) {
			if !p.onDemand || !armWanted(p, ModeMonitor, open) {
				continue
			}
			switch p.name {
			case h.exit.name:
				out = append(out, h.exit)
			case h.enter.name:
				out = append(out, h.enter)
			default:
				b.Fatalf("on-demand plan: %s has no setup here", p.name)
			}
		}
		return out
	}
	setups := []struct {
		name  string
		progs []*ioctlProg
	}{
		{"off", nil},
		{"on-demand-no-perf-fds", onDemand(false)},
		{"on-demand-perf-fd-held", onDemand(true)},
		{"exit", []*ioctlProg{h.exit}},
		{"enforce", []*ioctlProg{h.enter, h.exit}},
		{"pair", []*ioctlProg{h.enter, h.paired}},
		{"enter-alone", []*ioctlProg{h.enter}},
		{"old-exit-alone", []*ioctlProg{h.paired}},
		{"trivial-enter", []*ioctlProg{floorEnter}},
		{"trivial-exit", []*ioctlProg{floorExit}},
	}
	b.Run("setups=off,on-demand-no-perf-fds,on-demand-perf-fd-held,exit,enforce,pair,enter-alone,old-exit-alone,trivial-enter,trivial-exit", func(b *testing.B) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		const chunk = 1000
		run := func(n int) (wall, cpu time.Duration) {
			c0, t0 := threadCPU(b), time.Now()
			for range n {
				if _, err := unix.IoctlGetInt(p[0], unix.TIOCINQ); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(t0), threadCPU(b) - c0
		}
		wall := make([]time.Duration, len(setups))
		cpu := make([]time.Duration, len(setups))
		wallRatio := make([][]float64, len(setups))
		cpuRatio := make([][]float64, len(setups))
		cpuMin := make([]time.Duration, len(setups)) // the least disturbed chunk of each
		rounds := 0
		rng := rand.New(rand.NewPCG(1, 2))
		for b.Loop() {
			// one iteration: a chunk of each setup, in an order shuffled
			// every round, each after 100 untimed ioctls (the first runs
			// after an attach meet cold code and data)
			w := make([]time.Duration, len(setups))
			c := make([]time.Duration, len(setups))
			for _, i := range rng.Perm(len(setups)) {
				h.set(b, setups[i].progs)
				run(100)
				w[i], c[i] = run(chunk)
			}
			h.set(b, nil)
			for i := range setups {
				wall[i] += w[i]
				cpu[i] += c[i]
				if cpuMin[i] == 0 || c[i] < cpuMin[i] {
					cpuMin[i] = c[i]
				}
				wallRatio[i] = append(wallRatio[i], float64(w[i])/float64(w[0]))
				cpuRatio[i] = append(cpuRatio[i], float64(c[i])/float64(c[0]))
			}
			rounds++
		}
		b.StopTimer()
		ops := float64(rounds * chunk)
		median := func(v []float64) float64 {
			v = slices.Clone(v)
			slices.Sort(v)
			return v[len(v)/2]
		}
		for i, st := range setups {
			b.ReportMetric(float64(wall[i].Nanoseconds())/ops, st.name+"-wall-ns/ioctl")
			b.ReportMetric(float64(cpu[i].Nanoseconds())/ops, st.name+"-cpu-ns/ioctl")
			b.ReportMetric(float64(cpuMin[i].Nanoseconds())/chunk, st.name+"-cpu-min-ns/ioctl")
			if i > 0 {
				b.ReportMetric((float64(cpuMin[i])/float64(cpuMin[0])-1)*100, st.name+"-cpu-min-added-%")
				b.ReportMetric((median(wallRatio[i])-1)*100, st.name+"-wall-added-%")
				b.ReportMetric((median(cpuRatio[i])-1)*100, st.name+"-cpu-added-%")
			}
		}

		// the programs' own time, by bpf_stats
		stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
		if err != nil {
			b.Fatalf("enable BPF run-time stats: %v", err)
		}
		defer stats.Close()
		offCPU := float64(cpu[0].Nanoseconds()) / ops
		floorNS := map[string]float64{}
		for _, st := range setups[1:] {
			if slices.Contains(st.progs, floorEnter) || slices.Contains(st.progs, floorExit) {
				continue
			}
			progs := append(slices.Clone(st.progs), floorEnter, floorExit)
			h.set(b, progs)
			st0 := progStats(b, progs)
			run(100 * chunk)
			st1 := progStats(b, progs)
			ns := make([]float64, len(progs))
			for i := range progs {
				if n := st1[i].RunCount - st0[i].RunCount; n > 0 {
					ns[i] = float64((st1[i].Runtime - st0[i].Runtime).Nanoseconds()) / float64(n)
				}
			}
			floorNS["sys_enter_ioctl"], floorNS["sys_exit_ioctl"] = ns[len(progs)-2], ns[len(progs)-1]
			var perCall, above float64
			for i, pr := range st.progs {
				perCall += ns[i]
				above += ns[i] - floorNS[pr.p.event]
			}
			b.ReportMetric(perCall, st.name+"-sensor-ns/ioctl")
			// above the floors: what the programs do beyond being run,
			// as a share of the off ioctl's own CPU time
			b.ReportMetric(above, st.name+"-above-floor-ns")
			b.ReportMetric(above/offCPU*100, st.name+"-above-floor-%")
		}
		h.set(b, nil)
		b.ReportMetric(floorNS["sys_enter_ioctl"], "enter-floor-ns/run")
		b.ReportMetric(floorNS["sys_exit_ioctl"], "exit-floor-ns/run")
	})
}

func threadCPU(b *testing.B) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// ioctlProg is one of the sensor's ioctl programs and its link, when
// attached (the benchmark owns them).
type ioctlProg struct {
	name  string
	p     attachProgram
	prog  *ebpf.Program
	l     link.Link
	index int // into s.attachLinks, -1 for an armable program
}

type ioctlHooks struct {
	s                   *Sensor
	exit, enter, paired *ioctlProg
	all                 []*ioctlProg
}

// newIoctlHooks takes the sensor's ioctl programs: the attached exit
// program (detached here) and the entry and old exit programs it keeps
// unattached in monitor mode.
func newIoctlHooks(b *testing.B, s *Sensor) *ioctlHooks {
	h := &ioctlHooks{s: s}
	for i, p := range s.attachProgs {
		if p.name == sentryProgSentryIoctlExit {
			h.exit = &ioctlProg{name: p.name, p: p, prog: s.attachColls[i].Programs[p.name], l: s.attachLinks[i], index: i}
		}
	}
	s.armMu.Lock()
	for name, a := range s.armable {
		ip := &ioctlProg{name: name, p: a.p, prog: a.prog, index: -1}
		if a.l != nil {
			a.l.Close() // the benchmark attaches it from now on
			a.l = nil
		}
		switch name {
		case sentryProgSentryIoctlEnter:
			h.enter = ip
		case sentryProgSentryIoctlExitPaired:
			h.paired = ip
		}
	}
	s.armMu.Unlock()
	if h.exit == nil || h.enter == nil || h.paired == nil {
		b.Fatalf("ioctl programs: exit %v, entry %v, old exit %v (%s)", h.exit != nil, h.enter != nil, h.paired != nil, s.AttachCoverage())
	}
	h.all = []*ioctlProg{h.exit, h.enter, h.paired}
	return h
}

// set attaches exactly the given programs.
func (h *ioctlHooks) set(b *testing.B, want []*ioctlProg) {
	for _, ip := range h.all {
		on := slices.Contains(want, ip)
		switch {
		case on && ip.l == nil:
			l, err := attachOne(ip.prog, ip.p)
			if err != nil {
				b.Fatal(err)
			}
			ip.l = l
		case !on && ip.l != nil:
			ip.l.Close()
			ip.l = nil
		}
		if ip.index >= 0 {
			h.s.attachLinks[ip.index] = ip.l
		}
	}
}

func progStats(b *testing.B, progs []*ioctlProg) []ebpf.ProgramStats {
	out := make([]ebpf.ProgramStats, len(progs))
	for i, ip := range progs {
		st, err := ip.prog.Stats()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = *st
	}
	return out
}
