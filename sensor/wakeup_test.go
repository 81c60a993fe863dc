package sensor

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// The exit hook wakes the reader at most once per load, and not while an
// earlier wakeup is still to be acted on: with the reader stopped (it holds
// an event the full Events channel cannot take), a burst of loads forces at
// most one wakeup. The wakeup counter is the sensor's, for every loader on
// the host, but with the reader stopped its position does not move, so
// every exit meanwhile, anyone's, finds the same position: the first of
// them, ours or not, forces a wakeup unless one is already pending there,
// and the others see it pending. (The check
// and the set are two steps: exits at the same instant on other CPUs may
// each send one, so the bound is one per CPU.) Every load's event then
// arrives complete.
func TestExitWakesAHeldBackReaderOnce(t *testing.T) {
	// While the reader is stopped, every loader on the host fills the
	// ring: a big one here (the matrix VMs have no other loader and
	// little RAM), and what it cannot hold is counted below.
	size := 64 << 20
	if os.Getenv(kernelEnv) != "" {
		size = 0
	}
	s := startSensor(t, Config{Mode: ModeMonitor, EventBuffer: 1, ExpireAfter: 20 * time.Second, RingBufferSize: size})
	const loads = 60
	// Stop the reader: the channel full of a stand-in event (unless a load
	// already filled it), then one load of ours whose event it must hold.
	select {
	case s.events <- &Event{Program: &program.Program{}}: // no loader: no pid of ours
	default:
	}
	hold := runLoader(t, "-gen", "10", "-type", "1", "-name", "se2e_wakehold")
	if len(hold.results) != 1 {
		t.Fatalf("holding loader did %d loads", len(hold.results))
	}
	waitReaderStopped(t)
	before, err := s.RingWakeups()
	if err != nil {
		t.Fatal(err)
	}
	lossesBefore, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	run := runLoader(t, "-gen", "10", "-type", "1", "-name", "se2e_wake", "-count", fmt.Sprint(loads))
	if len(run.results) != loads {
		t.Fatalf("loader did %d loads", len(run.results))
	}
	held, err := s.RingWakeups()
	if err != nil {
		t.Fatal(err)
	}
	if forced, most := held-before, uint64(runtime.NumCPU()); forced > most {
		t.Errorf("%d loads with the reader stopped forced %d wakeups, want at most %d (one per CPU; one per load before: %d)", loads, forced, most, loads)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, loads, eventWait)
	lossesAfter, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	// A record the full ring could not take is counted (the counters are
	// for every loader, so they bound this test's share from above): a
	// load is missing only when its header, verdict and exit records all
	// were, and incomplete only with a counted drop. Every other load's
	// event is complete: no wakeup was lost.
	d := func(k string) uint64 { return lossesAfter[k] - lossesBefore[k] }
	whollyLost := min(d("header_reserve"), d("verdict_reserve"), d("exit_reserve"))
	dropped := d("header_reserve") + d("chunk_reserve") + d("verdict_reserve") + d("exit_reserve")
	if uint64(len(evs))+whollyLost < loads {
		t.Fatalf("%d events for %d loads, at most %d wholly lost to a full ring", len(evs), loads, whollyLost)
	}
	incomplete := 0
	for _, ev := range evs {
		if !ev.Complete() || len(ev.Program.Insns) != 10*8 {
			incomplete++
			if dropped == 0 {
				t.Errorf("event of load %#x: complete=%v, %d instruction bytes, missing %v, and no record was dropped", ev.LoadID, ev.Complete(), len(ev.Program.Insns), ev.Missing)
			}
		}
	}
	t.Logf("%d loads, reader stopped: %d wakeups forced, %d records dropped meanwhile (all loaders on the host); %d events, %d incomplete",
		loads, held-before, dropped, len(evs), incomplete)
}

// waitReaderStopped waits until the sensor's reader goroutine is blocked
// handing an event to the Events channel (nothing but the test takes from
// it, so it stays there).
func waitReaderStopped(t *testing.T) {
	t.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(eventWait); ; {
		n := runtime.Stack(buf, true)
		for _, g := range bytes.Split(buf[:n], []byte("\n\n")) {
			if bytes.Contains(g, []byte("[select")) && bytes.Contains(g, []byte("sensor.(*Sensor).deliver(")) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader never stopped on a full Events channel")
		}
		time.Sleep(time.Millisecond) // polling its state, not waiting out a race
	}
}
