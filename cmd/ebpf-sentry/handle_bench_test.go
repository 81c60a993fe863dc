//go:build linux && amd64

package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

// benchEvent is what the sensor hands `run` for one of BenchmarkAgent's
// loads: a socket filter of n instructions, loaded, judged allow by the
// kernel table, with the loader's identity filled in.
func benchEvent(n int, seq uint64) *sensor.Event {
	insns := socketFilter(n)
	return &sensor.Event{
		LoadID: seq, Time: time.Now(), RuleIndex: -1, Verdict: sensor.VerdictAllow,
		InsnHash: 0x1234_5678_9abc_def0 + seq, ChunksExpected: uint32((n + 511) / 512), ChunksReceived: uint32((n + 511) / 512),
		Outcome: sensor.Outcome{Result: sensor.ResultLoaded, FD: 5},
		Program: &program.Program{Source: program.SourceSensor, Name: "perfbench", Type: 1, License: "GPL",
			Insns: insns, InsnCnt: uint32(n),
			Loader: &program.Loader{PID: 4242, TID: 4242, PPID: 1, Comm: "ebpf-sentry.tes", Exe: "/tmp/go-build/ebpf-sentry.test",
				CgroupID: 1, ExeInode: 77, ExeDev: 8 << 20, ExeSHA256: strings.Repeat("ab", 32)},
			Kernel: &program.Kernel{ID: uint32(1000 + seq), Tag: "0123456789abcdef"}},
	}
}

// cpuTime is this process's user + system time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHandleEvent is the agent's user-space work for one load after
// the sensor delivered it, as `run` does it at its defaults with JSON
// events to a file (BenchmarkAgent's configuration): decode, analysis,
// the default rules, the event, its encoding, the hash chain and the file
// sink's write, which runs on its own goroutine and is waited for before
// the clock stops. Each size runs twice: "auto" is the default
// --event-insns (these loads are allowed, so raw instructions only), "text"
// is --event-insns text (the default before auto: disassembly up to
// --event-insn-max), so the two compare in the same run. Besides ns/op
// and allocs/op it reports cpu-us/event: the process's user + system CPU
// per event, every goroutine included (the figure that competes with a
// loader on a small host), and file-bytes/event: what the file sink wrote
// per event (the file is not rotated at these sizes).
//
//	go test -run '^$' -bench HandleEvent -benchmem ./cmd/ebpf-sentry
func BenchmarkHandleEvent(b *testing.B) {
	set, err := rules.Defaults()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{10, 1000, 10_000, 100_000} {
		for _, mode := range []output.InsnMode{output.InsnModeAuto, output.InsnModeText} {
			b.Run(strconv.Itoa(n)+"/"+string(mode), func(b *testing.B) { benchHandleEvent(b, set, n, mode) })
		}
	}
}

// benchHandleEvent is one of BenchmarkHandleEvent's cases: n instructions, --event-insns mode.
func benchHandleEvent(b *testing.B, set *rules.Set, n int, mode output.InsnMode) {
	events := make([]*sensor.Event, 64)
	for i := range events {
		events[i] = benchEvent(n, uint64(i))
	}
	of := &outputFlags{opts: output.DefaultOptions()}
	of.opts.Insns = string(mode)
	path := filepath.Join(b.TempDir(), "events.json")
	of.opts.Outputs = []string{"file:" + path}
	of.opts.LossInterval = -1
	tel, err := of.start(slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	o := &runOptions{format: "json", mode: "enforce"}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for i := 0; i < b.N; i++ {
		ev := events[i%len(events)]
		if err := handleEvent(nil, o, tel, set, ev, nil); err != nil {
			b.Fatal(err)
		}
	}
	if err := tel.close(time.Minute); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/event")
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(b.N), "file-bytes/event")
}

// Once started the agent runs on half the CPUs (at least one) unless told
// otherwise; an explicit GOMAXPROCS in its environment is left as it is.
func TestAgentProcsIsHalfTheCPUsUnlessSet(t *testing.T) {
	for _, tc := range []struct {
		name       string
		flag, cpus int
		env        string
		want       int
	}{
		{"two CPUs give one", 0, 2, "", 1},
		{"one CPU gives one", 0, 1, "", 1},
		{"sixteen CPUs give eight", 0, 16, "", 8},
		{"--procs wins over the default", 3, 2, "", 3},
		{"GOMAXPROCS in the environment wins over everything", 3, 2, "2", 0},
	} {
		if got, why := agentProcs(tc.flag, tc.cpus, tc.env); got != tc.want || why == "" {
			t.Errorf("%s: agentProcs(%d, %d, %q) = %d (%q), want %d", tc.name, tc.flag, tc.cpus, tc.env, got, why, tc.want)
		}
	}
}
