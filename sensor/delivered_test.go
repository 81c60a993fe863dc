package sensor

import (
	"testing"
)

// Delivered is a "delivered up to now" mark: once its channel is closed,
// the event of every load that ended before the call is in Events, for a
// consumer that learnt of the load another way (the BPF_PROG_TEST_RUN
// bracket) and must not take it for one no hook reported. Each round's
// load ends (its loader exits) before the mark is taken; the event must
// then be received by the time the mark is, never after it.
func TestDeliveredMeansEveryEarlierLoadsEventIsInEvents(t *testing.T) {
	s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor})
	const rounds = 10
	for i := 0; i < rounds; i++ {
		run := runLoader(t, "-gen", "4", "-name", "dlv_mark")
		if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
			t.Fatalf("round %d: loader killed=%v results %+v", i, run.killed, run.results)
		}
		mark := s.Delivered()
		got := 0
	wait:
		for {
			select {
			case ev, ok := <-s.Events():
				if !ok {
					t.Fatal("events closed")
				}
				if ev.Program.Loader.PID == uint32(run.pid) {
					got++
				}
			case <-mark:
				break wait
			}
		}
		for len(s.Events()) > 0 { // queued before the mark closed
			if ev := <-s.Events(); ev.Program.Loader.PID == uint32(run.pid) {
				got++
			}
		}
		if got != 1 {
			t.Fatalf("round %d: %d events of the loader by the mark, want 1", i, got)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Delivered():
	default:
		t.Error("Delivered after Close: the channel is open, want it closed (no reader is left to close it)")
	}
}
