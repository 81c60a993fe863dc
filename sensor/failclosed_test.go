package sensor

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
)

// A load the kernel side could not judge arrives as a verdict record with
// the reason and no header: the event says why, carries the on-error verdict
// and is attributed to the unjudged-load rule, never to a table slot.
func TestUnjudgedLoadIsReportedWithItsReason(t *testing.T) {
	v := sentrySentryVerdictRec{Verdict: uint32(VerdictBlock), Action: uint32(ActionKilled), RuleIndex: -1,
		Error: uint32(sentrySentryLossSENTRY_LOSS_NO_SCRATCH) + 1}
	v.H.Kind, v.H.LoadId, v.H.Pid = kindVerdict, 7, 42
	b, _ := binary.Append(nil, binary.LittleEndian, &v)
	evs := feed(t, newAssembler(), [][]byte{b, encExit(7, -4, 0)})
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	s := &Sensor{slots: map[uint32][]string{}, events: make(chan *Event, 1)}
	s.deliver(t.Context(), ev)
	if ev.Unjudged != "unjudged_no_scratch" || ev.RuleID != RuleUnjudged || ev.Verdict != VerdictBlock || ev.Action != ActionKilled {
		t.Fatalf("unjudged %q rule %q verdict %s action %s", ev.Unjudged, ev.RuleID, ev.Verdict, ev.Action)
	}
}

// The enter/exit pairing table cannot be full: with every one of its
// entries taken by loads whose exit never came, a new load is still
// recorded (the oldest entry is evicted), so its exit is paired, a blocked
// load's kill is reported, and nothing is counted as inflight_full. On the
// 5.10 LSM gate this record is what denies the load.
func TestFullInflightMapStillPairsTheLoad(t *testing.T) {
	s := startSensor(t, Config{Mode: ModeEnforce, Rules: compiledTestRules(t)})
	m := s.coll.Maps[sentryMapInflight]
	for i := range m.MaxEntries() {
		tid := 0x7ff00000 + i // not a thread id this host hands out
		if err := m.Update(tid, sentryInflight{LoadId: uint64(i)}, ebpf.UpdateAny); err != nil {
			t.Fatalf("fill inflight entry %d: %v", i, err)
		}
	}
	before, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	blocked := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)), "-name", "se2eblk_full")
	allowed := runLoader(t, "-insns", writeInsns(t, helperProg(fnGetCurrentPidTgd)), "-name", "se2e_full")
	lsm := s.Hook().IsLSM()
	denied := len(blocked.results) == 1 && blocked.results[0].Ret == -1
	if lsm && !denied || !lsm && !blocked.killed {
		t.Fatalf("hook %s: blocked load with a full inflight map: killed=%v %+v", s.Hook(), blocked.killed, blocked.results)
	}
	evs := collect(t, s, map[uint32]bool{uint32(blocked.pid): true, uint32(allowed.pid): true}, 2, eventWait)
	if len(evs) != 2 {
		t.Fatalf("%d events, want 2", len(evs))
	}
	for _, ev := range evs {
		want := ResultLoaded
		if ev.Program.Loader.PID == uint32(blocked.pid) {
			want = ResultKilled
			if lsm {
				want = ResultFailed // EPERM from the hook
			}
		}
		if ev.Outcome.Result != want {
			t.Errorf("%s: outcome %+v, want %s (exit paired)", ev.Program.Name, ev.Outcome, want)
		}
	}
	after, err := s.Losses()
	if err != nil {
		t.Fatal(err)
	}
	// A failed insert leaves the exit nothing to pair with: the outcomes
	// above (killed, denied, loaded: each from the exit) are this test's
	// loads' inflight records. The counter is the sensor's, for every
	// loader on the host (and for the attach and map-create pairings), so
	// it is only shown.
	t.Logf("inflight_full %d during the two loads (all loaders on the host)", after["inflight_full"]-before["inflight_full"])
}
