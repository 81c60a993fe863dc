package sensor

import (
	"errors"
	"fmt"
	"strings"
)

// Losses are counts of what could not be captured, by reason.
type Losses map[string]uint64

// Total is the sum over all reasons.
func (l Losses) Total() uint64 {
	var n uint64
	for _, v := range l {
		n += v
	}
	return n
}

var lossNames = []string{
	sentrySentryLossSENTRY_LOSS_HEADER_RESERVE:  "header_reserve",
	sentrySentryLossSENTRY_LOSS_CHUNK_RESERVE:   "chunk_reserve",
	sentrySentryLossSENTRY_LOSS_VERDICT_RESERVE: "verdict_reserve",
	sentrySentryLossSENTRY_LOSS_EXIT_RESERVE:    "exit_reserve",
	sentrySentryLossSENTRY_LOSS_ATTR_READ:       "attr_read",
	sentrySentryLossSENTRY_LOSS_INSN_READ:       "insn_read",
	sentrySentryLossSENTRY_LOSS_INFLIGHT_FULL:   "inflight_full",
	sentrySentryLossSENTRY_LOSS_TOO_MANY_INSNS:  "too_many_insns",
	sentrySentryLossSENTRY_LOSS_NO_SCRATCH:      "unjudged_no_scratch",
	sentrySentryLossSENTRY_LOSS_NO_TABLE:        "unjudged_no_table",
	sentrySentryLossSENTRY_LOSS_GATE_UNJUDGED:   "unjudged_at_gate",
	sentrySentryLossSENTRY_LOSS_TAMPER_RESERVE:  "tamper_reserve",
	sentrySentryLossSENTRY_LOSS_RATE_LIMITED:    "rate_limited",
	sentrySentryLossSENTRY_LOSS_ATTACH_RESERVE:  "attach_reserve",
}

// Losses reads the kernel's per-CPU loss counters and adds user space's
// own (malformed records, events dropped because nobody read Events).
func (s *Sensor) Losses() (Losses, error) {
	if s.closed {
		return s.finalLosses, nil
	}
	out := Losses{}
	m := s.coll.Maps[sentryMapLosses]
	for i, name := range lossNames {
		var perCPU []uint64
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("read loss counter %s: %w", name, err)
		}
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		out[name] = n
	}
	// Map references of a load that joined nothing at its judge: past the
	// cap, or in an fd_array the judge could not read (docs/GROUPS.md).
	if gs, err := s.groupCounters(); err == nil {
		out["group_refs_over"] = gs.RefsOver
		out["group_refs_unread"] = gs.RefsUnread
	} else {
		return nil, err
	}
	// A program run the kernel skipped (another BPF program was running on
	// that CPU) is a load never seen: count it too.
	for name, p := range s.coll.Programs {
		if st, err := p.Stats(); err == nil {
			out["recursion_miss_"+strings.TrimPrefix(name, "sentry_")] = st.RecursionMisses
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.userLost {
		out[k] = v
	}
	out["malformed_record"] = s.badRecs
	out["token_events"] = s.tokenDrops
	out["map_create_events"] = s.mapCreateDrops
	out["orphan_chunk"] = s.asm.orphanChunks
	out["reassembly_budget"] = s.asm.overBudget
	out["recover_failed"] = s.asm.recoverFailed
	out["recover_mismatch"] = s.asm.recoverMismatch
	out["attach_orphan_exit"] = s.attachOrphans
	return out, nil
}

// RingWakeups is how many times the exit hook woke the ring's reader since
// the sensor started: at most once per load, and not while an earlier
// wakeup is still to be acted on (bpf/sensor.bpf.c, exit_wakeup).
func (s *Sensor) RingWakeups() (uint64, error) {
	if s.closed {
		return 0, errors.New("read ring wakeups: sensor closed")
	}
	var n uint64
	if err := s.coll.Maps[sentryMapRingWake].Lookup(uint32(1), &n); err != nil {
		return 0, fmt.Errorf("read ring wakeups: %w", err)
	}
	return n, nil
}
