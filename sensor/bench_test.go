package sensor

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// rawLoad submits insns with bpf(BPF_PROG_LOAD) as a tracepoint program
// and closes the fd; it returns the errno, if any.
func rawLoad(insns []byte, name string) error {
	lic := []byte("GPL\x00")
	attr := rawbpf.ProgLoadAttr{ProgType: 5, InsnCnt: uint32(len(insns) / 8),
		Insns: uint64(uintptr(unsafe.Pointer(&insns[0]))), License: uint64(uintptr(unsafe.Pointer(&lic[0])))}
	attr.SetName(name)
	fd, err := rawbpf.Load(&attr)
	runtime.KeepAlive(insns)
	runtime.KeepAlive(lic)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

// kernelTime is the run time the kernel accounted to the sensor's
// programs (needs BPF_STATS_RUN_TIME enabled); zero without a sensor.
func kernelTime(s *Sensor) time.Duration {
	var total time.Duration
	if s == nil {
		return 0
	}
	for _, p := range s.coll.Programs {
		if st, err := p.Stats(); err == nil {
			total += st.Runtime
		}
	}
	return total
}

// walkStats sums the kernel's own timing (walk_ns: attr read, instruction
// walk, rule evaluation) of this process's loads, as events report it.
type walkStats struct {
	mu    sync.Mutex
	total time.Duration
	n     int
}

func (w *walkStats) add(ev *Event) {
	if ev.Program.Loader == nil || ev.Program.Loader.PID != uint32(os.Getpid()) {
		return // other engineers' loads on this host
	}
	w.mu.Lock()
	w.total += ev.WalkTime
	w.n++
	w.mu.Unlock()
}

func (w *walkStats) snapshot() (time.Duration, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.total, w.n
}

// measure runs b.Loop around op and reports the sensor programs' kernel
// time per op (bpf_stats: every bpf() on the host, so other loads inflate
// it) and, for loads, the in-kernel walk time of this process's own loads
// (walk-ns/load): figures the noise of a shared host does not blur.
func measure(b *testing.B, s *Sensor, ws *walkStats, op func()) {
	before := kernelTime(s)
	wt0, wn0 := ws.snapshot()
	for b.Loop() {
		op()
	}
	if s == nil {
		return
	}
	b.ReportMetric(float64((kernelTime(s)-before).Nanoseconds())/float64(b.N), "sensor-ns/op")
	deadline := time.Now().Add(5 * time.Second)
	for {
		wt, wn := ws.snapshot()
		if wn-wn0 >= b.N || time.Now().After(deadline) {
			if wn > wn0 {
				b.ReportMetric(float64((wt-wt0).Nanoseconds())/float64(wn-wn0), "walk-ns/load")
			}
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// withSensor runs f with the sensor attached on hook ("off": no sensor),
// draining its events as the agent would.
func withSensor(b *testing.B, hook string, f func(s *Sensor, ws *walkStats)) {
	ws := &walkStats{}
	if hook == "off" {
		f(nil, ws)
		return
	}
	testutils.RequireRoot(b, "attaching the sensor")
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time stats: %v", err)
	}
	defer stats.Close()
	h, walk, _ := strings.Cut(hook, "+") // "tracepoint+bounded": that hook with that walk
	s, err := New(Config{Hook: Hook(h), Walk: Walk(walk), Mode: ModeMonitor, RingBufferSize: *benchRing})
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev := range s.Events() {
			ws.add(ev)
		}
	}()
	defer func() {
		s.Close()
		if l, err := s.Losses(); err == nil && l.Total() > 0 {
			b.Logf("losses: %v", l)
		}
	}()
	f(s, ws)
}

// benchRing sizes the sensor's ring buffer in the load benchmarks (0: the
// default). In a VM the first write to each ring page can cost several
// microseconds (the host backs the page then); a ring smaller than what a
// benchmark writes wraps, so that it measures the steady state instead.
var benchRing = flag.Int("sentry.ring", 0, "ring buffer bytes for BenchmarkProgLoad (0: default)")

var benchHooks = []string{"off", string(HookTracepoint), string(HookTracepoint) + "+" + string(WalkBounded), string(HookBTF), "off"}

// BenchmarkProgLoad measures BPF_PROG_LOAD latency by program size with the
// sensor off, on each hook, and off again (to see drift within the run).
func BenchmarkProgLoad(b *testing.B) {
	testutils.RequireRoot(b, "loading BPF programs")
	sizes := []int{10, 1000, 10_000, 100_000, 1_000_000}
	if testing.Short() {
		sizes = sizes[:3]
	}
	for i, hook := range benchHooks {
		withSensor(b, hook, func(s *Sensor, ws *walkStats) {
			for _, n := range sizes {
				insns := genInsns(n)
				b.Run(fmt.Sprintf("sentry=%s#%d/insns=%d", hook, i, n), func(b *testing.B) {
					measure(b, s, ws, func() {
						if err := rawLoad(insns, "bench"); err != nil {
							b.Fatalf("load %d insns: %v", n, err)
						}
					})
				})
			}
		})
	}
}

// BenchmarkGetpid is the cost to an unrelated syscall: the tracepoint hook
// fires only for bpf(), tp_btf/sys_enter for every syscall.
func BenchmarkGetpid(b *testing.B) {
	for i, hook := range benchHooks {
		withSensor(b, hook, func(s *Sensor, ws *walkStats) {
			b.Run(fmt.Sprintf("sentry=%s#%d", hook, i), func(b *testing.B) {
				measure(b, s, ws, func() { syscall.Getpid() })
			})
		})
	}
}

// BenchmarkRecordParse is user space's cost per ring-buffer record.
func BenchmarkRecordParse(b *testing.B) {
	chunk := make([]byte, chunkSize)
	chunk[0] = byte(kindChunk)
	chunk[20] = 0 // count 512 below
	chunk[21] = 2
	b.SetBytes(int64(len(chunk)))
	for b.Loop() {
		if _, err := parseRecord(chunk); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSensorStart times the start up to "judging loads" (NewStaged:
// the enforcing hook attached with the agent known and the rules in place)
// and up to the end of the whole start (Ready), against the start before
// startup.go (programs verified one after the other, the 32-bit judge
// verified even where kprobes cannot attach, New returning at the end), in
// the same run: the two alternate start by start, and the ratios are of
// the medians. CPU per start (user + system: the verifier runs inside this
// process's bpf() calls) is what a loaded host inflates less than wall time.
func BenchmarkSensorStart(b *testing.B) {
	testutils.RequireRoot(b, "attaching the sensor")
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var old, oldCPU, judging, judgingCPU, ready, readyCPU []time.Duration
	var oldInsns, insns int
	for b.Loop() {
		c0, t0 := cpu(), time.Now()
		s, err := New(Config{Hook: HookTracepoint, Mode: ModeMonitor, sequentialStart: true})
		if err != nil {
			b.Fatal(err)
		}
		old, oldCPU = append(old, time.Since(t0)), append(oldCPU, cpu()-c0)
		oldInsns = verifiedInsns(b, s)
		s.Close()

		c0, t0 = cpu(), time.Now()
		s, err = NewStaged(Config{Hook: HookTracepoint, Mode: ModeMonitor})
		if err != nil {
			b.Fatal(err)
		}
		judging, judgingCPU = append(judging, s.JudgingSince().Sub(t0)), append(judgingCPU, cpu()-c0)
		if err := s.Ready(); err != nil {
			b.Fatal(err)
		}
		ready, readyCPU = append(ready, time.Since(t0)), append(readyCPU, cpu()-c0)
		insns = verifiedInsns(b, s)
		s.Close()
	}
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2]) / 1e6
	}
	b.ReportMetric(med(old), "old-ms")
	b.ReportMetric(med(oldCPU), "old-cpu-ms")
	b.ReportMetric(med(judging), "judging-ms")
	b.ReportMetric(med(judgingCPU), "judging-cpu-ms")
	b.ReportMetric(med(ready), "ready-ms")
	b.ReportMetric(med(readyCPU), "ready-cpu-ms")
	b.ReportMetric(med(judging)/med(old), "x-judging/old")
	b.ReportMetric(med(judgingCPU)/med(oldCPU), "x-judging-cpu/old")
	b.ReportMetric(float64(oldInsns), "old-verified-insns")
	b.ReportMetric(float64(insns), "verified-insns")
	b.Logf("load average: %s", loadAverage())
}

// verifiedInsns is the verifier's work for the sensor's programs: the sum
// of their verified_insns (BPF_OBJ_GET_INFO_BY_FD, 5.16+; 0 before).
func verifiedInsns(b *testing.B, s *Sensor) int {
	n := 0
	for name, p := range s.coll.Programs {
		info, err := p.Info()
		if err != nil {
			b.Fatalf("info of %s: %v", name, err)
		}
		v, _ := info.VerifiedInstructions()
		n += int(v)
	}
	return n
}

// loadAverage is /proc/loadavg's first three fields: the host is shared.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

var judgeBaseObject = flag.String("judge.base-object", "", "BenchmarkJudgeVerify: an older build of sentry_x86_bpfel.o (e.g. git show main:sensor/sentry_x86_bpfel.o) whose judge is verified alternately with this one's, as the baseline")

// BenchmarkJudgeVerify loads the judge of the default start (sentry_enter_tp)
// alone, over freshly created maps, and reports the kernel's own
// verification time (BPF_LOG_STATS "verification time") and the
// instructions it processed, medians: the verify phase of a start ends with
// this program alone on one CPU (docs/PERFORMANCE.md "Start-up"). With
// -judge.base-object, that object's judge is verified alternately with
// this one's, and the ratios are this one's over the baseline's.
func BenchmarkJudgeVerify(b *testing.B) {
	testutils.RequireRoot(b, "loading the judge")
	objs := []func() (*ebpf.CollectionSpec, error){loadSentry}
	if *judgeBaseObject != "" {
		objs = append(objs, func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(*judgeBaseObject) })
	}
	took := make([][]time.Duration, len(objs))
	insns := make([]int, len(objs))
	timeRe := regexp.MustCompile(`verification time (\d+) usec`)
	insnsRe := regexp.MustCompile(`processed (\d+) insns`)
	for b.Loop() {
		for i, load := range objs {
			spec, err := load()
			if err != nil {
				b.Fatal(err)
			}
			maps, err := createMaps(specWith(spec), nil, true)
			if err != nil {
				b.Fatal(err)
			}
			one := specWith(spec, sentryProgSentryEnterTp)
			c, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{
				MapReplacements: maps.Maps,
				Programs:        ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats, LogSizeStart: 1 << 16},
			})
			maps.Close()
			if err != nil {
				b.Fatal(err)
			}
			log := c.Programs[sentryProgSentryEnterTp].VerifierLog
			c.Close()
			tm, in := timeRe.FindStringSubmatch(log), insnsRe.FindStringSubmatch(log)
			if tm == nil || in == nil {
				b.Fatalf("no verification time or processed count in the judge's stats log:\n%s", log)
			}
			us, _ := strconv.Atoi(tm[1])
			insns[i], _ = strconv.Atoi(in[1])
			took[i] = append(took[i], time.Duration(us)*time.Microsecond)
		}
	}
	med := func(d []time.Duration) float64 {
		d = slices.Clone(d)
		slices.Sort(d)
		return float64(d[len(d)/2]) / 1e6
	}
	b.ReportMetric(med(took[0]), "verify-ms")
	b.ReportMetric(float64(insns[0]), "processed-insns")
	if len(objs) > 1 {
		b.ReportMetric(med(took[1]), "base-verify-ms")
		b.ReportMetric(float64(insns[1]), "base-processed-insns")
		b.ReportMetric(med(took[0])/med(took[1]), "x-verify/base")
		b.ReportMetric(float64(insns[0])/float64(insns[1]), "x-insns/base")
	}
	b.Logf("load average: %s", loadAverage())
}
