//go:build linux && amd64

package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The wall-clock benchmark of docs/PERFORMANCE.md's first table: the time
// a loading process waits for bpf(BPF_PROG_LOAD) with the agent off and
// with `ebpf-sentry run` (defaults, JSON events to a file) running, in
// alternating rounds of one run, so that a shared host's drift touches
// both sides alike. The agent's own CPU competes with the loader on the
// same cores: that is the point.

var (
	agentSizes = flag.String("agent.sizes", "10,1000,10000,100000", "instruction counts BenchmarkAgent loads")
	agentLoads = flag.Int("agent.loads", 0, "loads per size per phase (0: 200 at 10 instructions, scaled down with size)")
	agentArgs  = flag.String("agent.args", "", "extra `run` flags for BenchmarkAgent, space separated")
	agentBin   = flag.String("agent.bin", "", "ebpf-sentry binary for BenchmarkAgent (default: built from this tree), e.g. an older build to compare")
	agentStop  = flag.Bool("agent.stopped", false, "BenchmarkAgent: SIGSTOP the agent once it is warm, so the on phases measure its kernel hooks alone (attached and enforcing; the ring fills unread) without its CPU competing with the loader; SIGCONT before it is stopped")
	agentCold  = flag.Bool("agent.cold", false, "BenchmarkAgent: measure the first size without the warm-up load, so its phase includes the agent hashing the benchmark's executable (the benchmark before 2026-12-02 16:30 UTC)")
)

// socketFilter is n instructions of a socket filter: n-1 movs and an exit.
func socketFilter(n int) []byte {
	b := make([]byte, 8*n)
	for i := range n - 1 {
		b[8*i] = 0xb7 // mov64 r0, imm
		binary.LittleEndian.PutUint32(b[8*i+4:], uint32(i))
	}
	b[8*(n-1)] = 0x95 // exit
	return b
}

// loadOnce times one BPF_PROG_LOAD of insns (and closes the program).
func loadOnce(insns []byte) (time.Duration, error) {
	lic := []byte("GPL\x00")
	attr := rawbpf.ProgLoadAttr{ProgType: uint32(unix.BPF_PROG_TYPE_SOCKET_FILTER), InsnCnt: uint32(len(insns) / 8),
		Insns: uint64(uintptr(unsafe.Pointer(&insns[0]))), License: uint64(uintptr(unsafe.Pointer(&lic[0])))}
	attr.SetName("perfbench")
	start := time.Now()
	fd, err := rawbpf.Load(&attr)
	d := time.Since(start)
	runtime.KeepAlive(insns)
	runtime.KeepAlive(lic)
	if err != nil {
		return 0, err
	}
	unix.Close(fd)
	return d, nil
}

// loadsFor is how many loads a phase makes of a program of n instructions.
func loadsFor(n int) int {
	if *agentLoads > 0 {
		return *agentLoads
	}
	switch {
	case n <= 100:
		return 200
	case n <= 1000:
		return 100
	case n <= 10_000:
		return 30
	case n <= 100_000:
		return 6
	}
	return 2
}

// phase loads every size and returns the median load time per size.
func phase(b *testing.B, progs map[int][]byte, sizes []int) map[int]time.Duration {
	med := make(map[int]time.Duration, len(sizes))
	for _, n := range sizes {
		ts := make([]time.Duration, loadsFor(n))
		for i := range ts {
			d, err := loadOnce(progs[n])
			if err != nil {
				b.Fatalf("load %d instructions: %v", n, err)
			}
			ts[i] = d
		}
		med[n] = median(ts)
	}
	return med
}

func median[T int64 | float64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// procStat is a process's CPU time (user + system) and resident set.
type procStat struct {
	cpu      time.Duration
	rss, hwm int64 // bytes
	// run is the time its threads ran, from /proc/PID/task/*/schedstat:
	// nanoseconds, where cpu counts 10 ms ticks (50 µs steps per load at
	// 200 loads); a thread that exited is no longer counted.
	run time.Duration
}

func readProc(pid int) (procStat, error) {
	var st procStat
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return st, err
	}
	// Fields after the ")" that closes comm: utime and stime are fields
	// 14 and 15 of the whole line, 12 and 13 after it.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return st, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	stt, _ := strconv.ParseInt(f[12], 10, 64)
	st.cpu = time.Duration(ut+stt) * time.Second / 100 // USER_HZ
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		if b, err := os.ReadFile(t); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				ns, _ := strconv.ParseInt(f[0], 10, 64)
				st.run += time.Duration(ns)
			}
		}
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return st, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != "VmRSS" && k != "VmHWM" {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if k == "VmRSS" {
			st.rss = kb << 10
		} else {
			st.hwm = kb << 10
		}
	}
	return st, nil
}

// kernelCost is what the kernel accounted to the agent's BPF programs
// (BPF_STATS_RUN_TIME, summed over the programs its fds hold) and the ring
// wakeups its exit hook forced (map ring_wake, slot 1; absent in builds
// before it existed: then wakeups is -1).
type kernelCost struct {
	runNS, runs int64
	wakeups     int64
}

func readKernelCost(pid int) kernelCost {
	c := kernelCost{wakeups: -1}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	seenProg, seenMap := map[string]bool{}, map[string]bool{}
	for _, fd := range fds {
		b, err := os.ReadFile(fd)
		if err != nil {
			continue
		}
		kv := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				kv[k] = strings.TrimSpace(v)
			}
		}
		if id := kv["prog_id"]; id != "" && kv["run_time_ns"] != "" && !seenProg[id] {
			seenProg[id] = true
			ns, _ := strconv.ParseInt(kv["run_time_ns"], 10, 64)
			n, _ := strconv.ParseInt(kv["run_cnt"], 10, 64)
			c.runNS += ns
			c.runs += n
		}
		if id := kv["map_id"]; id != "" && kv["max_entries"] == "2" && !seenMap[id] {
			seenMap[id] = true
			n, _ := strconv.ParseUint(id, 10, 32)
			m, err := ebpf.NewMapFromID(ebpf.MapID(n))
			if err != nil {
				continue
			}
			if info, err := m.Info(); err == nil && info.Name == "ring_wake" {
				var w uint64
				if m.Lookup(uint32(1), &w) == nil {
					c.wakeups = int64(w)
				}
			}
			m.Close()
		}
	}
	return c
}

// sizeCost is one size's loads with the agent on: the agent's CPU, its
// programs' kernel run time and their runs, and its forced ring wakeups,
// each per load. On a shared host the agent also judges other processes'
// loads and bpf() calls: every figure is an upper bound.
type sizeCost struct {
	cpuUS, runUS, kernNS, runs, wakeups float64
}

// phaseOn is phase with the agent running: after each size it waits for the
// agent to go quiet, so that each size's cost is its own.
func phaseOn(b *testing.B, a *agent, progs map[int][]byte, sizes []int) (map[int]time.Duration, map[int]sizeCost) {
	med := make(map[int]time.Duration, len(sizes))
	costs := make(map[int]sizeCost, len(sizes))
	pid := a.cmd.Process.Pid
	for _, n := range sizes {
		st0, k0 := a.quiesce(b), readKernelCost(pid)
		m := phase(b, progs, []int{n})
		st1, k1 := a.quiesce(b), readKernelCost(pid)
		loads := float64(loadsFor(n))
		med[n] = m[n]
		c := sizeCost{cpuUS: float64((st1.cpu - st0.cpu).Microseconds()) / loads, runUS: float64((st1.run - st0.run).Nanoseconds()) / 1e3 / loads,
			kernNS: float64(k1.runNS-k0.runNS) / loads, runs: float64(k1.runs-k0.runs) / loads, wakeups: -1}
		if k0.wakeups >= 0 {
			c.wakeups = float64(k1.wakeups-k0.wakeups) / loads
		}
		costs[n] = c
	}
	return med, costs
}

// agent is one `ebpf-sentry run` under the benchmark.
type agent struct {
	cmd     *exec.Cmd
	stderr  syncBuffer
	startup time.Duration // exec to "sensor running"
	// judging: exec to "judging loads" (the enforcing hook attached with
	// the rules in place; an agent that does not log it: startup), and
	// the agent's CPU (user + system) by then.
	judging    time.Duration
	judgingCPU time.Duration
	events     string
}

func startAgent(b *testing.B, bin, dir string, round int) *agent {
	a := &agent{events: filepath.Join(dir, fmt.Sprintf("events-%d.json", round))}
	args := []string{"run", "--lock-file", filepath.Join(dir, "lock"), "--format", "json", "--output", "file:" + a.events}
	if *agentArgs != "" {
		args = append(args, strings.Fields(*agentArgs)...)
	}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stderr = &a.stderr
	start := time.Now()
	if err := a.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	for !strings.Contains(a.stderr.String(), "sensor running") {
		if time.Since(start) > 30*time.Second {
			a.stop()
			b.Fatalf("agent did not start in 30 s:\n%s", a.stderr.String())
		}
		if a.judging == 0 && strings.Contains(a.stderr.String(), "judging loads") {
			a.judging = time.Since(start)
			if st, err := readProc(a.cmd.Process.Pid); err == nil {
				a.judgingCPU = st.cpu
			}
		}
		time.Sleep(500 * time.Microsecond)
	}
	a.startup = time.Since(start)
	if a.judging == 0 {
		a.judging = a.startup
		if st, err := readProc(a.cmd.Process.Pid); err == nil {
			a.judgingCPU = st.cpu
		}
	}
	return a
}

// quiesce waits until the agent's CPU time has not grown for two 200 ms
// windows (start-up jobs done, its queue of events written), at most 20 s;
// it returns the last reading.
func (a *agent) quiesce(b *testing.B) procStat {
	last, err := readProc(a.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	quiet := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		st, err := readProc(a.cmd.Process.Pid)
		if err != nil {
			b.Fatal(err)
		}
		if st.cpu == last.cpu {
			if quiet++; quiet == 2 {
				return st
			}
		} else {
			quiet = 0
		}
		last = st
	}
	return last
}

func (a *agent) stop() {
	if *agentStop {
		// Never leave it stopped, whatever failed.
		a.cmd.Process.Signal(syscall.SIGCONT)
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { a.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		a.cmd.Process.Kill()
		<-done
	}
}

// BenchmarkAgent is the user's view of the sentry: each b.N iteration is
// one round of every size loaded with the agent off and with it on (the
// order alternating by round). Per size it reports the median over rounds
// of the round's on/off ratio of median load times (x-on/off), with the
// rounds' min and max, and the medians of the two sides; for the agent,
// its start-up (exec to "judging loads", judging-ms, with the agent's CPU
// by then, judging-cpu-ms; exec to "sensor running", start-ms), idle RSS after start
// (idle-rss-MB), peak RSS (peak-rss-MB) and CPU per load (cpu-us/load).
// Before the first size, one load shows the agent this executable, which it
// hashes once; the agent's CPU for that load is first-load-cpu-ms, outside
// the per-load figures (-agent.cold measures without it).
// Per size, medians over rounds of figures the shared host's noise touches
// less than wall time: the agent's CPU per load (cpu-us/load@N, 10 ms ticks; run-us/load@N, the
// same from its threads' schedstat run time, to the nanosecond), its
// programs' kernel run time per load (kern-ns/load@N, BPF_STATS_RUN_TIME,
// enabled for the benchmark's duration) and its forced ring wakeups per
// load (wakeups/load@N; -1 for a build that does not count them), with its
// programs' runs per load (runs/load@N: 5 with the tracepoint hook for the
// benchmark's own load alone, enter, exit and three bracketing programs;
// more when other processes' bpf() calls fell in the phase).
// The logged tables are cut after ten lines unless -test.v.
//
//	go test -run '^$' -bench BenchmarkAgent -benchtime 8x ./cmd/ebpf-sentry
func BenchmarkAgent(b *testing.B) {
	testutils.RequireRoot(b, "running the sensor")
	var sizes []int
	for _, s := range strings.Split(*agentSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			b.Fatalf("-agent.sizes %q: want instruction counts", *agentSizes)
		}
		sizes = append(sizes, n)
	}
	progs := map[int][]byte{}
	for _, n := range sizes {
		progs[n] = socketFilter(n)
	}
	bin := *agentBin
	if bin == "" {
		bin = goBuild(b, ".", "ebpf-sentry")
	}
	dir := b.TempDir()
	ratios := map[int][]float64{}
	offs, ons := map[int][]time.Duration{}, map[int][]time.Duration{}
	var startups, judgings, judgingCPUs []time.Duration
	var idleRSS, peakRSS []int64
	var cpuPerLoad []float64
	var firstLoadCPU []time.Duration
	costs := map[int][]sizeCost{}
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	phase(b, progs, sizes) // warm up: page in, grow the heap
	b.ResetTimer()
	for round := 0; round < b.N; round++ {
		var off, on map[int]time.Duration
		runOn := func() {
			a := startAgent(b, bin, dir, round)
			defer a.stop()
			idle := a.quiesce(b)
			if !*agentCold {
				// The first load from an executable the agent has not seen
				// makes it hash that file (sha256, once per file version
				// for the agent's lifetime): 37 MB for this test binary,
				// ~85 ms of CPU, longer than the whole 10-instruction
				// phase. A long-running agent paid it long ago; it is
				// reported apart (first-load-cpu-ms), not as per-load cost.
				if _, err := loadOnce(progs[sizes[0]]); err != nil {
					b.Fatal(err)
				}
				warm := a.quiesce(b)
				firstLoadCPU = append(firstLoadCPU, warm.cpu-idle.cpu)
				idle.cpu = warm.cpu
			}
			if *agentStop {
				if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					b.Fatal(err)
				}
			}
			var cost map[int]sizeCost
			on, cost = phaseOn(b, a, progs, sizes)
			if *agentStop {
				if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
					b.Fatal(err)
				}
			}
			for _, n := range sizes {
				costs[n] = append(costs[n], cost[n])
			}
			end := a.quiesce(b)
			startups = append(startups, a.startup)
			judgings, judgingCPUs = append(judgings, a.judging), append(judgingCPUs, a.judgingCPU)
			idleRSS = append(idleRSS, idle.rss)
			peakRSS = append(peakRSS, end.hwm)
			loads := 0
			for _, n := range sizes {
				loads += loadsFor(n)
			}
			cpuPerLoad = append(cpuPerLoad, float64((end.cpu-idle.cpu).Microseconds())/float64(loads))
		}
		if round%2 == 0 {
			off = phase(b, progs, sizes)
			runOn()
		} else {
			runOn()
			off = phase(b, progs, sizes)
		}
		for _, n := range sizes {
			ratios[n] = append(ratios[n], float64(on[n])/float64(off[n]))
			offs[n] = append(offs[n], off[n])
			ons[n] = append(ons[n], on[n])
		}
	}
	b.StopTimer()
	var tbl strings.Builder
	fmt.Fprintf(&tbl, "\n| insns | off | on | on/off, median of %d rounds (min–max) |\n|---:|---:|---:|---|\n", b.N)
	for _, n := range sizes {
		r := ratios[n]
		b.ReportMetric(median(r), fmt.Sprintf("x-on/off@%d", n))
		b.ReportMetric(slices.Min(r), fmt.Sprintf("x-min@%d", n))
		b.ReportMetric(slices.Max(r), fmt.Sprintf("x-max@%d", n))
		fmt.Fprintf(&tbl, "| %d | %v | %v | %.2f× (%.2f–%.2f) |\n", n, median(offs[n]).Round(time.Microsecond),
			median(ons[n]).Round(time.Microsecond), median(r), slices.Min(r), slices.Max(r))
	}
	fmt.Fprintf(&tbl, "\n| insns | agent CPU per load | sensor kernel time per load | sensor program runs per load | ring wakeups per load |\n|---:|---:|---:|---:|---:|\n")
	for _, n := range sizes {
		var cpu, run, kern, runs, wake []float64
		for _, c := range costs[n] {
			cpu, kern, runs, wake = append(cpu, c.cpuUS), append(kern, c.kernNS), append(runs, c.runs), append(wake, c.wakeups)
			run = append(run, c.runUS)
		}
		b.ReportMetric(median(cpu), fmt.Sprintf("cpu-us/load@%d", n))
		b.ReportMetric(median(run), fmt.Sprintf("run-us/load@%d", n))
		b.ReportMetric(median(kern), fmt.Sprintf("kern-ns/load@%d", n))
		b.ReportMetric(median(wake), fmt.Sprintf("wakeups/load@%d", n))
		b.ReportMetric(median(runs), fmt.Sprintf("runs/load@%d", n))
		fmt.Fprintf(&tbl, "| %d | %.0f µs | %.1f µs | %.2f | %.2f |\n", n, median(cpu), median(kern)/1e3, median(runs), median(wake))
	}
	b.ReportMetric(float64(median(startups).Milliseconds()), "start-ms")
	b.ReportMetric(float64(median(judgings).Milliseconds()), "judging-ms")
	b.ReportMetric(float64(median(judgingCPUs).Milliseconds()), "judging-cpu-ms")
	b.ReportMetric(float64(median(idleRSS))/1e6, "idle-rss-MB")
	b.ReportMetric(float64(slices.Max(peakRSS))/1e6, "peak-rss-MB")
	b.ReportMetric(median(cpuPerLoad), "cpu-us/load")
	if len(firstLoadCPU) > 0 {
		b.ReportMetric(float64(median(firstLoadCPU).Microseconds())/1e3, "first-load-cpu-ms")
		fmt.Fprintf(&tbl, "first load from this executable (hashed by the agent): %v of agent CPU (median of rounds); ", median(firstLoadCPU))
	}
	fmt.Fprintf(&tbl, "judging loads %v (%v–%v) after exec, %v of agent CPU; ", median(judgings).Round(time.Millisecond),
		slices.Min(judgings).Round(time.Millisecond), slices.Max(judgings).Round(time.Millisecond), median(judgingCPUs).Round(time.Millisecond))
	fmt.Fprintf(&tbl, "start-up %v (%v–%v); idle RSS %.1f MB; peak RSS %.1f MB; agent CPU %.0f µs/load (median of rounds)\n",
		median(startups).Round(time.Millisecond), slices.Min(startups).Round(time.Millisecond), slices.Max(startups).Round(time.Millisecond),
		float64(median(idleRSS))/1e6, float64(slices.Max(peakRSS))/1e6, median(cpuPerLoad))
	b.Log(tbl.String())
}

// BenchmarkAgentBurst is the burst: 8 loaders at once, each
// loading a 1,000,000-instruction program 3 times, against `run` at its
// defaults. Per iteration (one agent) it reports the agent's peak RSS and,
// as the same-run baseline, its idle RSS before the burst (peak/idle), and
// how many of the 24 loads got an event with every instruction captured
// (whole-loads); the rest, if any, are counted losses in the agent's log.
//
//	go test -run '^$' -bench BenchmarkAgentBurst -benchtime 1x ./cmd/ebpf-sentry
func BenchmarkAgentBurst(b *testing.B) {
	testutils.RequireRoot(b, "running the sensor")
	bin := *agentBin
	if bin == "" {
		bin = goBuild(b, ".", "ebpf-sentry")
	}
	loader := goBuild(b, "../../internal/cmd/bpfload", "bpfload")
	dir := b.TempDir()
	const loaders, each = 8, 3
	var idle, peak []int64
	var whole []float64
	for i := 0; i < b.N; i++ {
		a := startAgent(b, bin, dir, i)
		st := a.quiesce(b)
		var cmds []*exec.Cmd
		for range loaders {
			c := exec.Command(loader, "-gen", "1000000", "-count", strconv.Itoa(each), "-name", "perfburst")
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
			cmds = append(cmds, c)
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatalf("loader: %v", err)
			}
		}
		end := a.quiesce(b)
		a.stop()
		idle, peak = append(idle, st.rss), append(peak, end.hwm)
		events, err := os.ReadFile(a.events)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, line := range strings.Split(string(events), "\n") {
			if strings.Contains(line, `"name":"perfburst"`) && strings.Contains(line, `"captured_slots":1000000`) &&
				!strings.Contains(line, `"capture_truncated":true`) {
				n++
			}
		}
		whole = append(whole, float64(n))
		var losses []string
		for _, line := range strings.Split(a.stderr.String(), "\n") {
			if strings.Contains(line, "losses") {
				losses = append(losses, line)
			}
		}
		b.Logf("burst %d: idle RSS %.1f MB, peak %.1f MB, %d of %d loads captured whole; agent: %s", i, float64(st.rss)/1e6, float64(end.hwm)/1e6, n, loaders*each, strings.Join(losses, "; "))
	}
	b.ReportMetric(float64(median(idle))/1e6, "idle-rss-MB")
	b.ReportMetric(float64(slices.Max(peak))/1e6, "peak-rss-MB")
	b.ReportMetric(float64(slices.Max(peak))/float64(median(idle)), "x-peak/idle")
	b.ReportMetric(slices.Min(whole), "whole-loads")
}
