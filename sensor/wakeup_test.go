package sensor

import (
	"fmt"
	"testing"
	"time"
)

// The exit hook wakes the reader at most once per load, and not while an
// earlier wakeup is still to be acted on: with the reader held back (the
// test takes no event until the loader is done, and the Events channel
// holds one), a burst of loads forces only the few wakeups sent before the
// reader stopped; every load's event then arrives complete, so no wakeup
// was lost.
func TestExitWakesAHeldBackReaderOnce(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeMonitor, EventBuffer: 1, ExpireAfter: 20 * time.Second})
	const loads = 60
	before, err := s.RingWakeups()
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
	// Before it stops, the reader takes the records of at most two
	// completed loads (one event in the channel, one in hand), of anyone's
	// on a shared host: each move of its position allows one more wakeup.
	if forced := held - before; forced == 0 || forced > 8 {
		t.Errorf("%d loads with the reader held back forced %d wakeups, want 1 to 8 (one per load before: %d)", loads, forced, loads)
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, loads, eventWait)
	if len(evs) != loads {
		t.Fatalf("%d events for %d loads", len(evs), loads)
	}
	for _, ev := range evs {
		if !ev.Complete() || len(ev.Program.Insns) != 10*8 {
			t.Fatalf("event of load %#x: complete=%v, %d instruction bytes, missing %v", ev.LoadID, ev.Complete(), len(ev.Program.Insns), ev.Missing)
		}
	}
	t.Logf("%d loads, reader held back: %d wakeups forced", loads, held-before)
}
