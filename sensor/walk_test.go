package sensor

import (
	"bytes"
	"encoding/binary"
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
	if withoutBPFLoop[os.Getenv(kernelEnv)] {
		t.Skipf("kernel %s has no bpf_loop: only the bounded walk runs here (see TestVerdictsAndEnforcement)", os.Getenv(kernelEnv))
	}
	small := 32 << 20
	rs := compiledTestRules(t)
	loop := startSensor(t, Config{Hook: HookTracepoint, Walk: WalkLoop, Mode: ModeMonitor, Rules: rs, RingBufferSize: small})
	bounded := startSensor(t, Config{Hook: HookTracepoint, Walk: WalkBounded, Mode: ModeMonitor, Rules: rs, RingBufferSize: small})
	if loop.Walk() != WalkLoop || bounded.Walk() != WalkBounded {
		t.Fatalf("walks %s and %s, want %s and %s", loop.Walk(), bounded.Walk(), WalkLoop, WalkBounded)
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
		a := collect(t, loop, pids, 1, 60*time.Second)
		b := collect(t, bounded, pids, 1, 60*time.Second)
		if len(a) != 1 || len(b) != 1 {
			t.Fatalf("%s: bpf_loop walk saw %d events, bounded %d; want 1 each", l.name, len(a), len(b))
		}
		if d := sameEvent(a[0], b[0]); d != "" {
			t.Errorf("%s: the walks differ: %s", l.name, d)
		}
		if !bytes.Equal(b[0].Program.Insns, l.insns) {
			t.Errorf("%s: the bounded walk captured other instructions than the submitted ones", l.name)
		}
		ca := [4]uint32{a[0].CallsHelper, a[0].CallsSub, a[0].CallsKfunc, a[0].HelperOther}
		cb := [4]uint32{b[0].CallsHelper, b[0].CallsSub, b[0].CallsKfunc, b[0].HelperOther}
		if ca != cb {
			t.Errorf("%s: calls (helper, sub, kfunc, helper ≥ 256) %v vs %v", l.name, ca, cb)
		}
		if ca[0] == 0 && len(l.insns) > 4096 {
			t.Errorf("%s: no helper call counted in a program full of them", l.name)
		}
		t.Logf("%s: %d slots, walk %v (bpf_loop) vs %v (bounded)", l.name, len(l.insns)/8, a[0].WalkTime, b[0].WalkTime)
	}
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
			ld := asmInsn(0x18, byte(rng.IntN(7))<<4|1, 0, int32(rng.Uint32()))
			hi := make([]byte, 8)
			binary.LittleEndian.PutUint32(hi[4:], rng.Uint32())
			b = append(append(b, ld...), hi...)
		default:
			b = append(b, asmInsn(byte(rng.IntN(256)), byte(rng.IntN(256)), int16(rng.IntN(65536)), int32(rng.Uint32()))...)
		}
	}
	return append(b, asmInsn(0x95, 0, 0, 0)...)
}
