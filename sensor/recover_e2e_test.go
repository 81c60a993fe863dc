package sensor

import (
	"bytes"
	"io"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// Several programs bigger than the ring at once, and small loads among
// them: every load gets one complete event; the big ones' instructions
// come from the loaders' memory (the kernel writes a big program's chunks
// only into the first half of the ring), the small ones' from the ring
// (the other half is kept for them).
func TestProgramsBiggerThanTheRingAreCapturedWholeSeveralAtOnce(t *testing.T) {
	s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor, RingBufferSize: 1 << 20})
	const bigInsns, bigLoaders, bigLoads, smallLoads = 200_000, 4, 2, 50 // 1.6 MB of chunks per big load
	// The loaders keep running (-keep, until their stdin closes) while the
	// events are collected, as a loader does that goes on to attach what
	// it loaded: the second path reads a live loader's memory. A loader
	// that exits at once is the case recover_failed counts.
	pids := map[uint32]bool{}
	var stdins []io.Closer
	var waits []func() loaderRun
	start := func(args ...string) {
		cmd := exec.Command(buildLoader(t), append(args, "-keep")...)
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pids[uint32(cmd.Process.Pid)] = true
		stdins = append(stdins, in)
		waits = append(waits, func() loaderRun { return waitLoader(t, cmd, args, &out, &stderr) })
	}
	for range bigLoaders {
		start("-gen", strconv.Itoa(bigInsns), "-count", strconv.Itoa(bigLoads), "-name", "sperf_big")
	}
	start("-gen", "10", "-count", strconv.Itoa(smallLoads), "-name", "sperf_small")
	want := bigLoaders*bigLoads + smallLoads
	evs := collect(t, s, pids, want, 60*time.Second)
	evs = append(evs, collect(t, s, pids, 1, 300*time.Millisecond)...)
	for _, in := range stdins {
		in.Close()
	}
	for _, w := range waits {
		if run := w(); run.killed {
			t.Fatal("a loader was killed")
		}
	}
	if len(evs) != want {
		t.Fatalf("%d events, want %d", len(evs), want)
	}
	big := genInsns(bigInsns)
	recovered := 0
	for _, ev := range evs {
		p := ev.Program
		if !ev.Complete() || p.Truncated || ev.Outcome.Result != ResultLoaded {
			t.Fatalf("%s: complete=%v truncated=%v missing=%v outcome=%v", p.Name, ev.Complete(), p.Truncated, ev.Missing, ev.Outcome)
		}
		switch p.Name {
		case "sperf_big":
			if !bytes.Equal(p.Insns, big) {
				t.Fatalf("big program: %d bytes captured, differ from the %d loaded", len(p.Insns), len(big))
			}
			if !ev.Recovered || ev.ChunksReceived >= ev.ChunksExpected {
				t.Errorf("big program: recovered=%v with %d of %d chunks from the ring", ev.Recovered, ev.ChunksReceived, ev.ChunksExpected)
			}
			recovered++
		case "sperf_small":
			if ev.Recovered || len(p.Insns) != 80 {
				t.Errorf("small program: recovered=%v, %d bytes", ev.Recovered, len(p.Insns))
			}
		}
	}
	if recovered != bigLoaders*bigLoads {
		t.Errorf("%d big programs recovered, want %d", recovered, bigLoaders*bigLoads)
	}
	l, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	// This test's recoveries are checked per event above (complete, the
	// bytes loaded, recovered); the counters are the sensor's, for every
	// loader on the host, so they are only shown.
	t.Logf("recover_failed %d, recover_mismatch %d, chunk_reserve (chunks left to the second path) %d (all loaders on the host)",
		l["recover_failed"], l["recover_mismatch"], l["chunk_reserve"])
}
