package sensor

import (
	"testing"
	"time"
)

// The reader parks on the Go runtime's netpoller (ringwait.go), polled
// edge-triggered, and every record it must read reaches it through a
// kernel wakeup, never through the periodic sweep: with the sweep an hour
// away, loads made one at a time, each after the last one's event, each
// come complete. A wakeup lost between the reader's last look at the ring
// and its parking (or one the exit hook held back for an earlier wakeup
// the reader had already acted on) would leave a load's event waiting for
// the sweep, and the test would time out on it.
func TestParkedReaderMissesNoWakeup(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, sweepEvery: time.Hour})
	if s.wait == nil {
		t.Fatal("the ring's fd is not polled by the runtime: the reader waits in epoll_wait")
	}
	const loads = 12
	for i := range loads {
		run := runLoader(t, "-gen", "10", "-type", "1", "-name", "se2e_park", "-count", "1")
		if len(run.results) != 1 {
			t.Fatalf("load %d: loader did %d loads", i, len(run.results))
		}
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if len(evs) != 1 {
			t.Fatalf("load %d: %d events", i, len(evs))
		}
		if ev := evs[0]; !ev.Complete() || len(ev.Program.Insns) != 10*8 {
			t.Fatalf("load %d: complete=%v, %d instruction bytes, missing %v", i, ev.Complete(), len(ev.Program.Insns), ev.Missing)
		}
	}
}

// Close wakes a reader parked on the netpoller and returns: the reader
// stops (Events is closed) without a record or the sweep to wake it.
func TestCloseWakesAParkedReader(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, sweepEvery: time.Hour})
	if s.wait == nil {
		t.Fatal("the ring's fd is not polled by the runtime: the reader waits in epoll_wait")
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("close: %v", err)
		}
	case <-time.After(eventWait):
		t.Fatal("Close did not return: the parked reader was not woken")
	}
	select {
	case <-s.done:
	default:
		t.Fatal("Close returned with the reader still running")
	}
}
