package sensor

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// The tag is computed by the kernel, so agreeing with it on unmodified
// loads is the independent check of progTags (SHA-1 or SHA-256, map-fd
// immediates zeroed).
func TestKernelTagIsTheTagOfTheJudgedInstructions(t *testing.T) {
	s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor})
	for _, insns := range [][]byte{genInsns(2), helperProg(fnGetCurrentPidTgd, fnKtimeGetNs), genInsns(600)} {
		run := runLoader(t, "-insns", writeInsns(t, insns))
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if len(evs) != 1 || evs[0].Program.Kernel == nil {
			t.Fatalf("want one loaded event, got %+v", evs)
		}
		ev := evs[0]
		a, b := progTags(insns)
		if tag := ev.Program.Kernel.Tag; tag != a && tag != b {
			t.Errorf("%d insns: kernel tag %s, computed sha1 %s sha256 %s", len(insns)/8, tag, a, b)
		}
		if ev.JudgedCopyDiffers {
			t.Errorf("%d insns: an unmodified load is flagged as changed after the check", len(insns)/8)
		}
	}
}

func TestProgTagsIgnoreMapFDsOnly(t *testing.T) {
	ldMap := func(fd int32) []byte {
		b := append(asmInsn(0x18, 0x1<<4|1, 0, fd), asmInsn(0, 0, 0, 0)...) // r1 = map fd
		return append(b, genInsns(2)...)
	}
	a1, a2 := progTags(ldMap(3))
	b1, b2 := progTags(ldMap(7))
	if a1 != b1 || a2 != b2 {
		t.Errorf("map fd 3 and 7 give tags %s/%s and %s/%s, want equal: the kernel zeroes map fds", a1, a2, b1, b2)
	}
	c1, _ := progTags(genInsns(3))
	d := genInsns(3)
	d[4] = 1 // r0 = 1 instead of r0 = 0
	d1, _ := progTags(d)
	if c1 == d1 {
		t.Errorf("programs differing in an ordinary immediate share tag %s", c1)
	}
}

// judgedCopyDiffers hashes the instructions in place (a copy only when a
// map load's immediate needs zeroing) and tries one algorithm first: the
// caller's bytes stay as they were, either algorithm's tag is accepted in
// either order, and any other tag is a difference.
func TestJudgedCopyDiffersLeavesTheInstructionsAloneAndAcceptsEitherTag(t *testing.T) {
	ldMap := append(asmInsn(0x18, 0x1<<4|1, 0, 5), asmInsn(0, 0, 0, 0)...)
	ldMap = append(ldMap, genInsns(2)...)
	defer tagSHA256First.Store(tagSHA256First.Load())
	for _, insns := range [][]byte{genInsns(4), ldMap} {
		orig := bytes.Clone(insns)
		s1, s256 := progTags(insns)
		for _, sha256First := range []bool{false, true} {
			for _, tag := range []string{s1, s256} {
				tagSHA256First.Store(sha256First)
				if judgedCopyDiffers(insns, tag) {
					t.Errorf("%x: tag %s (sha1 %s, sha256 %s; sha256 first %v) taken for another program", insns, tag, s1, s256, sha256First)
				}
				if !bytes.Equal(insns, orig) {
					t.Fatalf("instructions changed by the check: %x, were %x", insns, orig)
				}
			}
			if !judgedCopyDiffers(insns, "0000000000000000") {
				t.Errorf("%x: a tag of neither algorithm accepted", insns)
			}
		}
	}
}

// The loader's license sits in userfaultfd memory: the kernel reads it
// after the syscall's entry (where the sensor reads the instructions) and
// before it copies the instructions, and while the kernel waits for the
// page the fault handler toggles an immediate (bpfload -flip-in-copy). So
// every load is judged with one value and loaded with the other, on any
// machine however loaded: each is flagged, and the kernel's tag is exactly
// the tag of the toggled program (an independent check that the flag means
// what it says).
func TestJudgedCopyDiffersWhenTheLoaderRacesTheCheck(t *testing.T) {
	s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor})
	const n = 20
	insns := genInsns(4)
	run := runLoader(t, "-insns", writeInsns(t, insns), "-count", fmt.Sprint(n), "-flip-in-copy", "0")
	if run.killed || len(run.results) != n {
		t.Fatalf("loader killed=%v, %d results", run.killed, len(run.results))
	}
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, n, 60*time.Second)
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	for _, ev := range evs {
		if ev.Program.Kernel == nil || !ev.Complete() {
			t.Fatalf("load %d not loaded or incomplete: %+v", ev.LoadID, ev.Outcome)
		}
		judged := ev.Program.Insns
		other := append([]byte(nil), judged...)
		other[4] ^= 1
		o1, o2 := progTags(other)
		if !ev.JudgedCopyDiffers {
			t.Errorf("load %d: the kernel loaded a toggled immediate, yet the event is not flagged", ev.LoadID)
		}
		if tag := ev.Program.Kernel.Tag; tag != o1 && tag != o2 {
			t.Errorf("load %d: kernel tag %s is not the tag of the toggled program", ev.LoadID, tag)
		}
	}
}
