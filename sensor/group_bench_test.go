package sensor

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// groupStateBudget is the bound on group state for 10,000 live
// programs.
const groupStateBudget = 20 << 20

// memlock is the memory the kernel charges to the map behind fd, from
// /proc/self/fdinfo (the kernel's own account, preallocation included).
func memlock(m *ebpf.Map) (int64, error) {
	b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(m.FD()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "memlock:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("fd %d: no memlock in fdinfo", m.FD())
}

// mapBytes sums memlock over the sensor's maps, split into the group maps
// (bpf/group.h) and the rest.
func mapBytes(tb testing.TB, s *Sensor) (group, rest int64) {
	tb.Helper()
	for name, m := range s.coll.Maps {
		n, err := memlock(m)
		if err != nil {
			tb.Fatalf("map %s: %v", name, err)
		}
		if strings.HasPrefix(name, "group_") {
			group += n
		} else {
			rest += n
		}
	}
	return group, rest
}

// BenchmarkGroupState holds 10,000 programs live, loaded by 100 processes
// of 100 programs each, with the default rules (one of scope group) and
// measures: the kernel's group maps (memlock: preallocated, so fixed), the
// programs and groups they track, and one user-space sweep of them (time
// and heap), against the 20 MB budget and the sensor's other maps.
func BenchmarkGroupState(b *testing.B) {
	testutils.RequireRoot(b, "loading BPF programs")
	const procs, perProc = 100, 100
	c := rules.Compile(rules.MustDefaults())
	s, err := New(Config{Mode: ModeMonitor, Rules: c.Kernel(), RingBufferSize: 4 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	go func() {
		for range s.Events() {
		}
	}()
	go func() {
		for range s.ProgArrayWrites() {
		}
	}()
	before, err := s.GroupStats()
	if err != nil {
		b.Fatal(err)
	}
	bin := buildLoader(b)
	var stdins []io.WriteCloser
	var cmds []*exec.Cmd
	defer func() {
		for i, in := range stdins {
			in.Close()
			cmds[i].Wait()
		}
	}()
	for range procs {
		cmd := exec.Command(bin, "-gen", "2", "-count", strconv.Itoa(perProc), "-keep", "-name", "grp_bench")
		in, err := cmd.StdinPipe()
		if err != nil {
			b.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		stdins, cmds = append(stdins, in), append(cmds, cmd)
		// -keep prints one line per load, then waits on stdin.
		sc := bufio.NewScanner(out)
		for n := 0; n < perProc; n++ {
			if !sc.Scan() {
				b.Fatalf("loader %d: %d of %d loads: %v", cmd.Process.Pid, n, perProc, sc.Err())
			}
			if bytes.Contains(sc.Bytes(), []byte(`"ret":-`)) {
				b.Fatalf("loader %d: %s", cmd.Process.Pid, sc.Text())
			}
		}
	}
	// The exits of the last loads are committed by the kernel before
	// the loaders print; the counters are read after.
	st, err := s.GroupStats()
	if err != nil {
		b.Fatal(err)
	}
	if got := st.Committed - before.Committed; got < procs*perProc {
		b.Fatalf("%d loads committed to groups, want %d", got, procs*perProc)
	}
	tracked := 0
	var id uint32
	var k sentryGroupKey
	it := s.coll.Maps[sentryMapGroupProgs].Iterate()
	for it.Next(&id, &k) {
		tracked++
	}
	if tracked < procs*perProc {
		b.Fatalf("%d programs tracked in group_progs, want at least %d (none evicted)", tracked, procs*perProc)
	}
	group, rest := mapBytes(b, s)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		// Groups of other processes that ended may go; ours stay.
		if _, err := s.SweepGroups(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	ours := map[uint32]bool{}
	for _, cmd := range cmds {
		ours[uint32(cmd.Process.Pid)] = true
	}
	kept := 0
	var acc sentryGroupAcc
	ia := s.coll.Maps[sentryMapGroupAccs].Iterate()
	for ia.Next(&k, &acc) {
		if ours[k.Tgid] && acc.Progs == perProc {
			kept++
		}
	}
	if kept != procs {
		b.Fatalf("after the sweeps %d of the %d loader groups hold their %d programs", kept, procs, perProc)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	// What the sweeps left behind (the sensor keeps no group state in
	// user space between sweeps); their garbage is B/op.
	heap := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	heap = max(heap, 0)
	b.ReportMetric(float64(group)/(1<<20), "kernel-group-MB")
	b.ReportMetric(float64(rest)/(1<<20), "kernel-other-MB")
	b.ReportMetric(float64(group+heap)/groupStateBudget, "of-20MB-budget")
	b.ReportMetric(float64(st.Groups), "groups")
	b.ReportMetric(float64(tracked), "progs-tracked")
	b.Logf("%d live programs in %d groups: kernel group maps %.1f MiB (other sensor maps %.1f MiB), sweep %v each, heap after sweeps +%d B",
		tracked, st.Groups, float64(group)/(1<<20), float64(rest)/(1<<20), elapsed/time.Duration(b.N), heap)
	if group+heap > groupStateBudget {
		b.Errorf("group state %d B over the %d B budget", group+heap, groupStateBudget)
	}
}
