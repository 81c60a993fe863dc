package sensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The bounded walk (kernels without bpf_loop) and the bpf_loop walk report
// every load identically: instructions, helper histogram, instruction hash,
// verdict and outcome, for programs whose calls and ld_imm64s fall on every
// position of a chunk and across chunk boundaries, up to the kernel's
// 1,000,000 instructions. Runs where both walks load (this host); the
// matrix's 5.10 runs the bounded walk alone (TestVerdictsAndEnforcement,
// TestCaptureIsByteIdenticalWithMetadata).
func TestBoundedWalkReportsWhatTheLoopWalkReports(t *testing.T) {
	testutils.RequireRoot(t, "starting the sensor")
	small := 32 << 20
	rs := compiledTestRules(t)
	// Without bpf_loop (5.10) only the bounded walk runs: it is checked
	// against the submitted bytes and the counts computed here.
	var loop *Sensor
	if !withoutBPFLoop[os.Getenv(kernelEnv)] {
		loop = startSensor(t, Config{Hook: HookTracepoint, Walk: WalkLoop, Mode: ModeMonitor, Rules: rs, RingBufferSize: small})
	}
	bounded := startSensor(t, Config{Hook: HookTracepoint, Walk: WalkBounded, Mode: ModeMonitor, Rules: rs, RingBufferSize: small})
	if bounded.Walk() != WalkBounded || loop != nil && loop.Walk() != WalkLoop {
		t.Fatalf("walks %v and %s, want %s and %s", loop, bounded.Walk(), WalkLoop, WalkBounded)
	}
	rng := rand.New(rand.NewPCG(5, 10))
	loads := []struct {
		name  string
		insns []byte
	}{
		{"se2eblk_walk", helperProg(fnGetCurrentPidTgd, fnGetCurrentPidTgd)},
		{"se2e_walk1", genInsns(1)},
		{"se2e_walk511", callsEverywhere(511, rng)},
		{"se2e_walk512", callsEverywhere(512, rng)},
		{"se2e_walk513", callsEverywhere(513, rng)},
		{"se2e_walk4099", callsEverywhere(4099, rng)},
		{"se2e_walk100k", callsEverywhere(100_000, rng)},
	}
	if !testing.Short() && os.Getenv(kernelEnv) == "" {
		loads = append(loads, struct {
			name  string
			insns []byte
		}{"se2e_walk1m", callsEverywhere(1_000_000, rng)})
	}
	for _, l := range loads {
		run := runLoader(t, "-insns", writeInsns(t, l.insns), "-name", l.name)
		pids := map[uint32]bool{uint32(run.pid): true}
		b := collect(t, bounded, pids, 1, 60*time.Second)
		if len(b) != 1 {
			t.Fatalf("%s: the bounded walk saw %d events, want 1", l.name, len(b))
		}
		if !b[0].Complete() || !bytes.Equal(b[0].Program.Insns, l.insns) {
			t.Fatalf("%s: the bounded walk captured other instructions than the submitted ones (missing %v)", l.name, b[0].Missing)
		}
		want := countCalls(l.insns)
		got := slotCalls{b[0].CallsHelper, b[0].CallsSub, b[0].CallsKfunc, b[0].HelperOther, b[0].Helpers}
		if d := want.diff(got); d != "" {
			t.Errorf("%s: bounded walk: %s", l.name, d)
		}
		if loop == nil {
			t.Logf("%s: %d slots, bounded walk %v", l.name, len(l.insns)/8, b[0].WalkTime)
			continue
		}
		a := collect(t, loop, pids, 1, 60*time.Second)
		if len(a) != 1 {
			t.Fatalf("%s: the bpf_loop walk saw %d events, want 1", l.name, len(a))
		}
		if d := sameEvent(a[0], b[0]); d != "" {
			t.Errorf("%s: the walks differ: %s", l.name, d)
		}
		if a[0].CallsHelper != b[0].CallsHelper || a[0].CallsSub != b[0].CallsSub || a[0].CallsKfunc != b[0].CallsKfunc || a[0].HelperOther != b[0].HelperOther {
			t.Errorf("%s: call counts differ between the walks", l.name)
		}
		t.Logf("%s: %d slots, walk %v (bpf_loop) vs %v (bounded)", l.name, len(l.insns)/8, a[0].WalkTime, b[0].WalkTime)
	}
}

// slotCalls is what the kernel counts per slot: code 0x85 with src_reg 0
// (helper; ids ≥ 256 only in other), 1 (bpf-to-bpf) or 2 (kfunc).
type slotCalls struct {
	helper, sub, kfunc, other uint32
	byID                      map[uint32]uint32
}

func countCalls(insns []byte) slotCalls {
	c := slotCalls{byID: map[uint32]uint32{}}
	for i := 0; i+8 <= len(insns); i += 8 {
		if insns[i] != 0x85 {
			continue
		}
		switch insns[i+1] >> 4 {
		case 0:
			c.helper++
			if id := binary.LittleEndian.Uint32(insns[i+4:]); id < 256 {
				c.byID[id]++
			} else {
				c.other++
			}
		case 1:
			c.sub++
		case 2:
			c.kfunc++
		}
	}
	return c
}

func (w slotCalls) diff(g slotCalls) string {
	if w.helper != g.helper || w.sub != g.sub || w.kfunc != g.kfunc || w.other != g.other {
		return fmt.Sprintf("calls (helper, sub, kfunc, helper ≥ 256) %d %d %d %d, want %d %d %d %d", g.helper, g.sub, g.kfunc, g.other, w.helper, w.sub, w.kfunc, w.other)
	}
	if len(w.byID) != len(g.byID) {
		return fmt.Sprintf("%d distinct helpers, want %d", len(g.byID), len(w.byID))
	}
	for id, n := range w.byID {
		if g.byID[id] != n {
			return fmt.Sprintf("helper %d called %d times, want %d", id, g.byID[id], n)
		}
	}
	return ""
}

// callsEverywhere is an n-slot program the verifier refuses (it does not
// need to load: the walk happens before the verifier) with helper calls,
// sub-program and kfunc calls, map ld_imm64s and plain instructions at
// random positions, each slot of a chunk hit across the program.
func callsEverywhere(n int, rng *rand.Rand) []byte {
	b := make([]byte, 0, n*8)
	for len(b)/8 < n-1 {
		switch k := rng.IntN(8); {
		case k == 0:
			b = append(b, asmInsn(0x85, 0, 0, int32(rng.IntN(300)))...) // helper, some ≥ 256
		case k == 1:
			b = append(b, asmInsn(0x85, 0x10, 0, int32(rng.IntN(50)))...) // sub-program
		case k == 2:
			b = append(b, asmInsn(0x85, 0x20, 0, int32(rng.IntN(1000)))...) // kfunc
		case k == 3 && len(b)/8 < n-2:
			// ld_imm64 with every pseudo source (0-6). A map reference
			// (fd, value, fd_array index: 1, 2, 5, 6) names one of 16 fds
			// or indexes: more than 64 distinct references would trip the
			// loop walk's group cap, which fails the load closed (it is
			// marked unreadable: TestGroupMapReferencesPastTheCapAreCounted)
			// while the bounded walk has no group judge.
			src := byte(rng.IntN(7))
			imm := int32(rng.Uint32())
			if src == 1 || src == 2 || src == 5 || src == 6 {
				imm = int32(rng.IntN(16))
			}
			ld := asmInsn(0x18, src<<4|1, 0, imm)
			hi := make([]byte, 8)
			binary.LittleEndian.PutUint32(hi[4:], rng.Uint32())
			b = append(append(b, ld...), hi...)
		default:
			op, regs, imm := byte(rng.IntN(256)), byte(rng.IntN(256)), int32(rng.Uint32())
			if src := regs >> 4; op == 0x18 && (src == 1 || src == 2 || src == 5 || src == 6) {
				imm = int32(rng.IntN(16)) // as above: one of 16 map references
			}
			b = append(b, asmInsn(op, regs, int16(rng.IntN(65536)), imm)...)
		}
	}
	return append(b, asmInsn(0x95, 0, 0, 0)...)
}
