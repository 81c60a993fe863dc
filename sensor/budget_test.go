package sensor

import (
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// With a memory budget, a load whose instructions would not fit next to
// those already held (in reassembly and queued for the consumer) is
// reported without them and counted; the budget frees as loads finish and
// the consumer takes their events.
func TestReassemblyStaysWithinTheMemoryBudget(t *testing.T) {
	const n = 40000 // 320,000 bytes of instructions per load
	a := newAssembler()
	a.budget = 700_000
	var queued int64
	a.queued = func() int64 { return queued }
	insns := genInsns(n)
	recs := func(id uint64) [][]byte { return loadRecords(id, 7, insns) }
	headers := func(ids ...uint64) {
		for _, id := range ids {
			feed(t, a, recs(id)[:1])
		}
	}
	headers(1, 2, 3) // 1 and 2 fit (640,000 bytes), 3 does not
	if a.overBudget != 1 || a.inUse != 2*n*8 {
		t.Fatalf("after three headers: %d over budget, %d bytes held", a.overBudget, a.inUse)
	}
	var evs []*Event
	for _, id := range []uint64{1, 2, 3} {
		evs = append(evs, feed(t, a, recs(id)[1:])...)
	}
	if len(evs) != 3 || a.inUse != 0 {
		t.Fatalf("%d events, %d bytes still held", len(evs), a.inUse)
	}
	for _, ev := range evs[:2] {
		if !ev.Complete() || len(ev.Program.Insns) != n*8 {
			t.Errorf("load %d within budget: complete %v, %d bytes", ev.LoadID, ev.Complete(), len(ev.Program.Insns))
		}
	}
	if ev := evs[2]; ev.Complete() || len(ev.Program.Insns) != 0 || ev.Verdict != VerdictAllow || ev.Outcome.Result != ResultLoaded {
		t.Errorf("load over budget: complete %v missing %v, %d bytes, verdict %s outcome %s", ev.Complete(), ev.Missing, len(ev.Program.Insns), ev.Verdict, ev.Outcome.Result)
	}
	// Events the consumer has not taken count against the budget.
	queued = 2 * n * 8
	headers(4)
	if a.overBudget != 2 {
		t.Fatalf("a header while 640,000 bytes are queued: %d over budget, want 2", a.overBudget)
	}
	queued = 0
	headers(5)
	if a.overBudget != 2 || a.inUse != n*8 {
		t.Fatalf("after the consumer took them: %d over budget, %d held", a.overBudget, a.inUse)
	}
}

// The sensor's view of queued bytes follows what the consumer took.
func TestQueuedBytesFollowTheConsumer(t *testing.T) {
	s := &Sensor{events: make(chan *Event, 4), slots: map[uint32][]string{}}
	for _, n := range []int{8, 16, 24} {
		s.deliver(t.Context(), &Event{RuleIndex: -1, Program: &program.Program{Insns: make([]byte, n)}})
	}
	if q := s.queued(); q != 48 {
		t.Fatalf("three events queued: %d bytes, want 48", q)
	}
	<-s.events
	if q := s.queued(); q != 40 {
		t.Fatalf("after the consumer took the oldest: %d bytes, want 40", q)
	}
	<-s.events
	<-s.events
	if q := s.queued(); q != 0 {
		t.Fatalf("all taken: %d bytes", q)
	}
}
