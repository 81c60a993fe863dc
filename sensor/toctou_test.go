package sensor

import (
	"syscall"
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
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, 20*time.Second)
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

// A loader thread toggles an immediate while another thread loads the
// program again and again: some loads are judged with one value and
// loaded with the other. Those are flagged, and the kernel's tag is then
// exactly the tag of the other value (an independent check that the flag
// means what it says); the loads not flagged carry the judged tag.
func TestJudgedCopyDiffersWhenTheLoaderRacesTheCheck(t *testing.T) {
	s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeMonitor})
	const n = 400
	insns := genInsns(4)
	run := runLoader(t, "-insns", writeInsns(t, insns), "-count", "400", "-flip", "0")
	evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, n, 60*time.Second)
	if len(evs) != n {
		t.Fatalf("got %d events, want %d", len(evs), n)
	}
	flagged, interrupted := 0, 0
	for _, ev := range evs {
		// The Go runtime signals the loader's threads (preemption); a
		// signal pending during verification fails the load with EAGAIN,
		// which loaders retry. Those loads prove nothing either way.
		if ev.Outcome.Result == ResultFailed && ev.Outcome.Errno == int(syscall.EAGAIN) {
			interrupted++
			continue
		}
		if ev.Program.Kernel == nil || !ev.Complete() {
			t.Fatalf("load %d not loaded or incomplete: %+v", ev.LoadID, ev.Outcome)
		}
		judged := ev.Program.Insns
		other := append([]byte(nil), judged...)
		other[4] ^= 1
		j1, j2 := progTags(judged)
		o1, o2 := progTags(other)
		tag := ev.Program.Kernel.Tag
		switch {
		case ev.JudgedCopyDiffers:
			flagged++
			if tag != o1 && tag != o2 {
				t.Errorf("flagged load: kernel tag %s is not the tag of the flipped program either", tag)
			}
		case tag != j1 && tag != j2:
			t.Errorf("unflagged load: kernel tag %s is not the judged program's", tag)
		}
	}
	t.Logf("%d of %d loads raced the check and were flagged (%d interrupted by a signal, EAGAIN)", flagged, n, interrupted)
	if interrupted > len(evs)/2 {
		t.Errorf("%d of %d loads interrupted (EAGAIN): too few left to judge", interrupted, len(evs))
	}
	if flagged == 0 {
		t.Errorf("no load out of %d raced the check: the race was not exercised", n)
	}
}
