package sensor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// The loader-group tests (docs/GROUPS.md): the seed's pamspy profile split
// across two programs, the first of which is the tail-call target of the
// second. Alone neither half matches seed-pamspy; summed over the loader
// group they match seed-pamspy-group, a block rule of the defaults.

// Map indexes for bpfload -maps: a ld_imm64 map-fd slot whose imm is i gets
// the fd of the i-th pinned map.
const (
	mapHash = iota
	mapRing
	mapProgArray
)

func marshalInsns(t testing.TB, insns asm.Instructions) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := insns.Marshal(&b, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pamCallee is the half with the map and ring buffer helpers:
// bpf_map_lookup_elem, bpf_map_delete_elem, bpf_ringbuf_reserve and
// bpf_ringbuf_submit, each once.
func pamCallee(t testing.TB) []byte {
	insns := append(lookupDelete(mapHash), ringReserveSubmit(mapRing)...)
	return marshalInsns(t, append(insns, asm.Return()))
}

// pamCaller is the other half: bpf_get_current_pid_tgid, five
// bpf_probe_read, bpf_get_current_comm, then a tail call through slot 0 of
// the prog array (map index array: mapProgArray, or mapHash for a tail
// call the verifier refuses).
func pamCaller(t testing.TB, array uint32) []byte {
	insns := append(asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}, pamCallerHelpers()...)
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, int(array)),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return())
	return marshalInsns(t, insns)
}

// pamCallerHelpers are the caller half's helper calls: get_current_pid_tgid,
// five probe_reads and get_current_comm.
func pamCallerHelpers() asm.Instructions {
	insns := asm.Instructions{asm.FnGetCurrentPidTgid.Call()}
	for range 5 {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R10),
			asm.Add.Imm(asm.R1, -16),
			asm.Mov.Imm(asm.R2, 8),
			asm.Mov.Imm(asm.R3, 0),
			asm.FnProbeRead.Call())
	}
	insns = append(insns,
		asm.Mov.Reg(asm.R1, asm.R10),
		asm.Add.Imm(asm.R1, -32),
		asm.Mov.Imm(asm.R2, 16),
		asm.FnGetCurrentComm.Call())
	return insns
}

// pamCallerRef is the caller half without the tail call: the same
// helpers, and a reference (an unused ld_imm64 of a map pointer) to map
// index ref, or no map at all when ref < 0. Two processes whose halves
// reference one map share it, as processes passing a map do.
func pamCallerRef(t testing.TB, ref int) []byte {
	insns := pamCallerHelpers()
	if ref >= 0 {
		insns = append(insns, asm.LoadMapPtr(asm.R2, ref))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())
	return marshalInsns(t, insns)
}

// groupMaps creates and pins the maps the halves use: a hash, a ring buffer
// and a prog array (a fresh one per call, so that cases do not share one).
type groupMaps struct {
	pins  string // comma-separated, in mapHash, mapRing, mapProgArray order
	array *ebpf.Map
	pin   string // the prog array's pin
}

// keepLoaded returns a -pin-progs prefix whose pins outlive the test's
// loader, and removes them at the end: a split profile is completed
// against programs still loaded, and a group whose process has exited and
// whose programs are all gone is dropped by the next periodic sweep, so an
// unpinned first half would make the test depend on when that sweep runs.
func keepLoaded(t *testing.T, name string) string {
	t.Helper()
	pin := fmt.Sprintf("/sys/fs/bpf/groups_%d_%s_keep", os.Getpid(), name)
	os.Remove(pin + "_0")
	t.Cleanup(func() { os.Remove(pin + "_0") })
	return pin
}

func newGroupMaps(t *testing.T, name string) groupMaps {
	t.Helper()
	if err := ensureBPFFS(); err != nil {
		t.Fatal(err)
	}
	specs := []*ebpf.MapSpec{
		{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 4},
		{Type: ebpf.RingBuf, MaxEntries: 4096},
		{Type: ebpf.ProgramArray, KeySize: 4, ValueSize: 4, MaxEntries: 4},
	}
	var pins []string
	var g groupMaps
	for i, spec := range specs {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			t.Fatal(err)
		}
		pin := fmt.Sprintf("/sys/fs/bpf/groups_%d_%s_%d", os.Getpid(), name, i)
		os.Remove(pin)
		if err := m.Pin(pin); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Unpin(); m.Close() })
		pins = append(pins, pin)
		if spec.Type == ebpf.ProgramArray {
			g.array, g.pin = m, pin
		}
	}
	g.pins = fmt.Sprintf("%s,%s,%s", pins[0], pins[1], pins[2])
	return g
}

func mapID(t testing.TB, m *ebpf.Map) uint32 {
	t.Helper()
	info, err := m.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no map id")
	}
	return uint32(id)
}

func defaultsSensor(t *testing.T, hook Hook) *Sensor {
	t.Helper()
	c := rules.Compile(rules.MustDefaults())
	if c.Table.GroupN == 0 {
		t.Fatalf("the defaults compile no group rule: %+v", c.Placements)
	}
	return startSensor(t, Config{Hook: hook, Mode: ModeEnforce, Rules: c.Kernel()})
}

// writesOf collects n prog_array writes of the given loader.
func writesOf(t testing.TB, s *Sensor, pid int, n int, timeout time.Duration) []*ProgArrayWrite {
	t.Helper()
	var out []*ProgArrayWrite
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case w := <-s.ProgArrayWrites():
			if w != nil && int(w.PID) == pid {
				out = append(out, w)
			}
		case <-deadline:
			t.Fatalf("%d of %d prog_array writes of pid %d after %v", len(out), n, pid, timeout)
		}
	}
	return out
}

func writeFile(t testing.TB, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGroupSplitProfile(t *testing.T) {
	for _, hook := range []Hook{HookTracepoint, HookBTF} {
		t.Run(string(hook), func(t *testing.T) { testGroupSplitProfile(t, hook) })
	}
}

func testGroupSplitProfile(t *testing.T, hook Hook) {
	s := defaultsSensor(t, hook)
	if note := s.GroupNote(); note != "" {
		t.Fatalf("groups not fully working: %s", note)
	}
	callee := writeFile(t, "callee.bin", pamCallee(t))
	caller := writeFile(t, "caller.bin", pamCaller(t, mapProgArray))

	t.Run("one loader: the load that completes the profile is blocked", func(t *testing.T) {
		requireGroupJudge(t)
		m := newGroupMaps(t, "one")
		run := runLoader(t, "-insns", callee+","+caller, "-name", "grp_one", "-maps", m.pins, "-prog-array", m.pin, "-tail-slot", "0")
		if !run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
			t.Fatalf("killed=%v results %+v: want the callee loaded and the loader killed at the caller", run.killed, run.results)
		}
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 2, eventWait)
		if evs[0].Verdict != VerdictAllow || evs[1].Verdict != VerdictBlock || evs[1].RuleID != "seed-pamspy-group" {
			t.Fatalf("verdicts %v (%s), %v (%s): want allow, then block by seed-pamspy-group", evs[0].Verdict, evs[0].RuleID, evs[1].Verdict, evs[1].RuleID)
		}
		if evs[1].Action != ActionKilled || evs[1].Outcome.Result == ResultLoaded {
			t.Errorf("completing load: action %v outcome %+v, want killed and not loaded", evs[1].Action, evs[1].Outcome)
		}
		if left := progsNamed(t, "grp_one"); len(left) != 1 {
			t.Errorf("programs named grp_one loaded: %v, want only the callee", left)
		}
	})

	t.Run("two loaders sharing a prog_array: the second, completing load is blocked", func(t *testing.T) {
		requireGroupJudge(t)
		m := newGroupMaps(t, "shared")
		first := runLoader(t, "-insns", callee, "-name", "grp_sh1", "-maps", m.pins, "-prog-array", m.pin, "-tail-slot", "0")
		if first.killed || len(first.results) != 1 || first.results[0].Ret < 0 {
			t.Fatalf("first loader: killed=%v results %+v", first.killed, first.results)
		}
		w := writesOf(t, s, first.pid, 1, eventWait)[0]
		if w.Op != "update" || w.MapID != mapID(t, m.array) || w.ProgID != first.results[0].ID || w.Errno != 0 {
			t.Errorf("write %+v: want the callee %d into map %d", w, first.results[0].ID, mapID(t, m.array))
		}
		// The first loader has exited; its program lives on in the array.
		second := runLoader(t, "-insns", caller, "-name", "grp_sh2", "-maps", m.pins)
		if !second.killed {
			t.Fatalf("second loader not killed (results %+v): the split across two processes evaded", second.results)
		}
		evs := collect(t, s, map[uint32]bool{uint32(second.pid): true}, 1, eventWait)
		if evs[0].Verdict != VerdictBlock || evs[0].RuleID != "seed-pamspy-group" {
			t.Errorf("second load: %v by %q, want block by seed-pamspy-group", evs[0].Verdict, evs[0].RuleID)
		}
	})

	t.Run("the same halves from two unrelated loaders are not grouped", func(t *testing.T) {
		a, b := newGroupMaps(t, "unrelA"), newGroupMaps(t, "unrelB")
		first := runLoader(t, "-insns", callee, "-name", "grp_un1", "-maps", a.pins, "-prog-array", a.pin, "-tail-slot", "0")
		second := runLoader(t, "-insns", caller, "-name", "grp_un2", "-maps", b.pins)
		for _, run := range []loaderRun{first, second} {
			if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
				t.Fatalf("loader %d: killed=%v results %+v; unrelated halves must both load", run.pid, run.killed, run.results)
			}
		}
		evs := collect(t, s, map[uint32]bool{uint32(first.pid): true, uint32(second.pid): true}, 2, eventWait)
		for _, ev := range evs {
			if ev.Verdict != VerdictAllow {
				t.Errorf("%s: %v by %q, want allow", ev.Program.Name, ev.Verdict, ev.RuleID)
			}
		}
	})

	// Groups beyond prog_arrays: a map two processes' programs use, a map
	// passed by id, a pinned program opened by another process.
	callerRef := writeFile(t, "caller_ref.bin", pamCallerRef(t, mapHash))
	callerAlone := writeFile(t, "caller_alone.bin", pamCallerRef(t, -1))
	completes := func(t *testing.T, second loaderRun) {
		t.Helper()
		if !second.killed {
			t.Fatalf("second loader not killed (results %+v): the split across two processes evaded", second.results)
		}
		evs := collect(t, s, map[uint32]bool{uint32(second.pid): true}, 1, eventWait)
		if evs[0].Verdict != VerdictBlock || evs[0].RuleID != "seed-pamspy-group" || evs[0].Action != ActionKilled {
			t.Errorf("second load: %v %v by %q, want block, killed, by seed-pamspy-group", evs[0].Verdict, evs[0].Action, evs[0].RuleID)
		}
	}
	loadCallee := func(t *testing.T, args ...string) loaderRun {
		t.Helper()
		run := runLoader(t, append([]string{"-insns", callee}, args...)...)
		if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
			t.Fatalf("first loader: killed=%v results %+v", run.killed, run.results)
		}
		return run
	}

	t.Run("two processes sharing a pinned hash map: the completing load is blocked", func(t *testing.T) {
		requireGroupJudge(t)
		m := newGroupMaps(t, "gr2hash")
		loadCallee(t, "-name", "grp_hm1", "-maps", m.pins, "-pin-progs", keepLoaded(t, "hm1"))
		completes(t, runLoader(t, "-insns", callerRef, "-name", "grp_hm2", "-maps", m.pins))
	})

	t.Run("a map passed by id: the load that references it completes the profile", func(t *testing.T) {
		requireGroupJudge(t)
		m := newGroupMaps(t, "gr2byid")
		loadCallee(t, "-name", "grp_id1", "-maps", m.pins, "-pin-progs", keepLoaded(t, "id1"))
		hash, err := ebpf.LoadPinnedMap(strings.Split(m.pins, ",")[mapHash], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hash.Close()
		completes(t, runLoader(t, "-insns", callerRef, "-name", "grp_id2", "-map-ids", fmt.Sprint(mapID(t, hash))))
	})

	t.Run("a pinned program opened by another process joins that process's loads", func(t *testing.T) {
		requireGroupJudge(t)
		a, b := newGroupMaps(t, "gr2pinA"), newGroupMaps(t, "gr2pinB")
		pin := fmt.Sprintf("/sys/fs/bpf/groups2_%d_prog", os.Getpid())
		os.Remove(pin + "_0")
		t.Cleanup(func() { os.Remove(pin + "_0") })
		loadCallee(t, "-name", "grp_pin1", "-maps", a.pins, "-pin-progs", pin)
		// The second process shares no map with the first: only the pin.
		completes(t, runLoader(t, "-insns", callerRef, "-name", "grp_pin2", "-maps", b.pins, "-open-pins", pin+"_0"))
	})

	t.Run("opening the pins of two groups without loading joins nothing", func(t *testing.T) {
		requireGroupJudge(t)
		a, b := newGroupMaps(t, "gr2openA"), newGroupMaps(t, "gr2openB")
		pin := fmt.Sprintf("/sys/fs/bpf/groups2_%d_open", os.Getpid())
		for _, p := range []string{pin + "A_0", pin + "B_0"} {
			os.Remove(p)
			t.Cleanup(func() { os.Remove(p) })
		}
		// Each half in its own group; the prog_array write reports it.
		first := loadCallee(t, "-name", "grp_op1", "-maps", a.pins, "-prog-array", a.pin, "-tail-slot", "0", "-pin-progs", pin+"A")
		second := runLoader(t, "-insns", callerAlone, "-name", "grp_op2", "-prog-array", b.pin, "-tail-slot", "0", "-pin-progs", pin+"B")
		if second.killed || len(second.results) != 1 || second.results[0].Ret < 0 {
			t.Fatalf("second loader: killed=%v results %+v", second.killed, second.results)
		}
		ga := writesOf(t, s, first.pid, 1, eventWait)[0].Group
		gb := writesOf(t, s, second.pid, 1, eventWait)[0].Group
		// A tool that opens both pins (as a lister would) and loads nothing.
		if run := runLoader(t, "-gen", "2", "-count", "0", "-open-pins", pin+"A_0,"+pin+"B_0"); run.killed {
			t.Fatal("opener killed")
		}
		ra, sa, oka, erra := s.Group(ga)
		rb, sb, okb, errb := s.Group(gb)
		if erra != nil || errb != nil || !oka || !okb || ra == rb || sa.Progs != 1 || sb.Progs != 1 {
			t.Errorf("groups %v (%+v, %v) and %v (%+v, %v): want two groups of one program each", ra, sa, erra, rb, sb, errb)
		}
	})

	t.Run("a failed load that references a shared map joins nothing", func(t *testing.T) {
		m := newGroupMaps(t, "gr2fail")
		loadCallee(t, "-name", "grp_fj1", "-maps", m.pins)
		hash, err := ebpf.LoadPinnedMap(strings.Split(m.pins, ",")[mapHash], nil)
		if err != nil {
			t.Fatal(err)
		}
		defer hash.Close()
		// The first load references the hash map and returns an
		// uninitialised r0: the verifier refuses it. Had it joined the
		// first process's group, the second (which references no map)
		// would complete the profile.
		bad := writeFile(t, "bad_ref.bin", marshalInsns(t, asm.Instructions{asm.LoadMapPtr(asm.R1, mapHash), asm.Return()}))
		run := runLoader(t, "-insns", bad+","+callerAlone, "-name", "grp_fj2", "-map-ids", fmt.Sprint(mapID(t, hash)))
		if run.killed || len(run.results) != 2 || run.results[0].Ret >= 0 || run.results[1].Ret < 0 {
			t.Fatalf("killed=%v results %+v: want the bad load refused by the verifier and the second loaded", run.killed, run.results)
		}
	})

	t.Run("a failed load adds nothing to its group", func(t *testing.T) {
		m := newGroupMaps(t, "failed")
		// The caller half with its tail call through the hash map: the
		// verifier refuses it. Had it counted, the callee would complete
		// the profile.
		bad := writeFile(t, "bad.bin", pamCaller(t, mapHash))
		run := runLoader(t, "-insns", bad+","+callee, "-name", "grp_fail", "-maps", m.pins)
		if run.killed || len(run.results) != 2 || run.results[0].Ret >= 0 || run.results[1].Ret < 0 {
			t.Fatalf("killed=%v results %+v: want the bad caller refused by the verifier and the callee loaded", run.killed, run.results)
		}
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 2, eventWait)
		if evs[0].Outcome.Result != ResultFailed || evs[1].Verdict != VerdictAllow {
			t.Errorf("outcomes %+v / verdict %v: want a failed load, then an allowed one", evs[0].Outcome, evs[1].Verdict)
		}
	})

	t.Run("a tail-call table swap is reported, and the group goes when its programs do", func(t *testing.T) {
		requireGroupJudge(t)
		m := newGroupMaps(t, "swap")
		run := runLoader(t, "-insns", callee, "-count", "2", "-name", "grp_swap", "-maps", m.pins, "-prog-array", m.pin, "-tail-slot", "0")
		if run.killed || len(run.results) != 2 {
			t.Fatalf("killed=%v results %+v", run.killed, run.results)
		}
		ws := writesOf(t, s, run.pid, 2, eventWait)
		if ws[0].Swap() || ws[0].OldProgID != 0 {
			t.Errorf("first write %+v: the slot was empty", ws[0])
		}
		if !ws[1].Swap() || ws[1].OldProgID != run.results[0].ID || ws[1].ProgID != run.results[1].ID {
			t.Errorf("second write %+v: want a swap of %d for %d", ws[1], run.results[0].ID, run.results[1].ID)
		}
		g := ws[1].Group
		if g.TGID != uint32(run.pid) {
			t.Errorf("write group %v, want the loader's tgid %d", g, run.pid)
		}
		// The loader has exited, its second program is in the array: kept.
		if _, err := s.SweepGroups(); err != nil {
			t.Fatal(err)
		}
		if _, sum, ok, err := s.Group(g); err != nil || !ok || sum.Progs != 2 {
			t.Fatalf("group %v after the loader's exit: ok=%v sum %+v err %v; want its 2 programs", g, ok, sum, err)
		}
		// Emptying the slot frees the last program: the group goes.
		if err := m.array.Delete(uint32(0)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SweepGroups(); err != nil {
			t.Fatal(err)
		}
		if _, sum, ok, err := s.Group(g); err != nil || ok {
			t.Errorf("group %v after its programs went: ok=%v sum %+v err %v; want it dropped", g, ok, sum, err)
		}
	})

	t.Run("bad writes are reported with their errno", func(t *testing.T) {
		m := newGroupMaps(t, "bad")
		run := runLoader(t, "-gen", "2", "-count", "0", "-prog-array", m.pin, "-bad-writes")
		if run.killed {
			t.Fatal("loader killed")
		}
		// The update of an fd that is no map is not a prog_array write;
		// the one naming no program is, and fails.
		w := writesOf(t, s, run.pid, 1, eventWait)[0]
		if w.Errno != int(syscall.EBADF) || w.ProgID != 0 || w.ValueFD != 9999 || w.MapID != mapID(t, m.array) {
			t.Errorf("write %+v: want EBADF for value fd 9999 into map %d", w, mapID(t, m.array))
		}
		// The sensor goes on.
		after := runLoader(t, "-gen", "2", "-name", "grp_after")
		if evs := collect(t, s, map[uint32]bool{uint32(after.pid): true}, 1, eventWait); evs[0].Outcome.Result != ResultLoaded {
			t.Errorf("load after the bad writes: %+v", evs[0].Outcome)
		}
	})
}

// With an LSM hook the completing load of the split profile is denied with
// EPERM: the loader lives on, the program never exists, and nothing of it
// is added to the group. Both LSM hooks where the kernel has them (the
// sleepable lsm-bpf keeps its group view per task).
func TestLSMGroupSplitProfileIsDenied(t *testing.T) {
	for _, tc := range []struct {
		hook    Hook
		require func(*testing.T) bool
	}{{HookLSMProgLoad, requireLSMProgLoad}, {HookLSMBpf, requireLSMBpf}} {
		t.Run(string(tc.hook), func(t *testing.T) {
			if !tc.require(t) {
				return
			}
			if withoutBPFLoop[os.Getenv(kernelEnv)] {
				t.Logf("kernel %s: the bounded walk has no group judge (docs/GROUPS.md); not asserted here", os.Getenv(kernelEnv))
				return
			}
			s := defaultsSensor(t, tc.hook)
			if s.Hook() != tc.hook || s.Enforcer() != EnforcerDeny {
				t.Fatalf("sensor %s/%s, want %s/deny", s.Hook(), s.Enforcer(), tc.hook)
			}
			m := newGroupMaps(t, "lsm"+string(tc.hook))
			callee := writeFile(t, "callee.bin", pamCallee(t))
			caller := writeFile(t, "caller.bin", pamCaller(t, mapProgArray))
			run := runLoader(t, "-insns", callee+","+caller, "-name", "grp_lsm", "-maps", m.pins, "-prog-array", m.pin, "-tail-slot", "0")
			if run.killed || len(run.results) != 2 || run.results[0].Ret < 0 || run.results[1].Ret != -int(syscall.EPERM) {
				t.Fatalf("killed=%v results %+v: want the callee loaded and the caller denied with EPERM", run.killed, run.results)
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 2, eventWait)
			if evs[1].Verdict != VerdictBlock || evs[1].Action != ActionDenied || evs[1].RuleID != "seed-pamspy-group" {
				t.Errorf("completing load: %v %v by %q, want block, denied, seed-pamspy-group", evs[1].Verdict, evs[1].Action, evs[1].RuleID)
			}
			w := writesOf(t, s, run.pid, 1, eventWait)[0]
			g, sum, ok, err := s.Group(w.Group)
			if err != nil || !ok || sum.Progs != 1 {
				t.Errorf("group %v: ok=%v sum %+v err %v; want the callee alone (the denied load adds nothing)", g, ok, sum, err)
			}

			// Split across two processes that share a plain map (a pinned
			// hash): the second process's completing load is denied.
			shared := newGroupMaps(t, "gr2lsm"+string(tc.hook))
			first := runLoader(t, "-insns", callee, "-name", "grp_lsm1", "-maps", shared.pins, "-pin-progs", keepLoaded(t, "lsm1"+string(tc.hook)))
			if first.killed || len(first.results) != 1 || first.results[0].Ret < 0 {
				t.Fatalf("first loader: killed=%v results %+v", first.killed, first.results)
			}
			callerRef := writeFile(t, "caller_ref.bin", pamCallerRef(t, mapHash))
			second := runLoader(t, "-insns", callerRef, "-name", "grp_lsm2", "-maps", shared.pins)
			if second.killed || len(second.results) != 1 || second.results[0].Ret != -int(syscall.EPERM) {
				t.Fatalf("second loader: killed=%v results %+v: want its load denied with EPERM", second.killed, second.results)
			}
			evs = collect(t, s, map[uint32]bool{uint32(second.pid): true}, 1, eventWait)
			if evs[0].Verdict != VerdictBlock || evs[0].Action != ActionDenied || evs[0].RuleID != "seed-pamspy-group" {
				t.Errorf("second process's load: %v %v by %q, want block, denied, seed-pamspy-group", evs[0].Verdict, evs[0].Action, evs[0].RuleID)
			}
		})
	}
}

// halfProgram is a program with the given helper calls, then an unused
// ld_imm64 of each map index in refs (a reference the verifier binds),
// then exit.
func halfProgram(t testing.TB, helpers asm.Instructions, refs ...int) []byte {
	insns := append(asm.Instructions{}, helpers...)
	for _, r := range refs {
		insns = append(insns, asm.LoadMapPtr(asm.R2, r))
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 0), asm.Return())
	return marshalInsns(t, insns)
}

// lookupDelete calls bpf_map_lookup_elem and bpf_map_delete_elem on the
// hash at map index idx; ringReserveSubmit reserves and submits a record
// of the ring buffer at index idx. With pamCallerHelpers they are the
// three thirds of seed-pamspy-group.
func lookupDelete(idx int) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, idx),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.LoadMapPtr(asm.R1, idx),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapDeleteElem.Call(),
	}
}

func ringReserveSubmit(idx int) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, idx),
		asm.Mov.Imm(asm.R2, 8),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufSubmit.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
	}
}

// requireGroupJudge skips below 5.17: without bpf_loop the sensor runs its
// bounded walk, which has no group judge and keeps no group sums
// (docs/GROUPS.md); it still reports prog_array writes.
func requireGroupJudge(t *testing.T) {
	t.Helper()
	if v := testutils.KernelVersion(t); !v.AtLeast(testutils.Version{Major: 5, Minor: 17}) {
		t.Skipf("kernel %s: no bpf_loop (5.17), so no group judge", v)
	}
}

// Every map a load references joins its group and counts at that load,
// however it is referenced (ld_imm64 map fds, fd_array indexes) and however
// many there are; references past the cap are counted, and make the load
// unreadable.
func TestGroupJoinsEveryMapALoadReferences(t *testing.T) {
	requireGroupJudge(t)
	for _, hook := range []Hook{HookTracepoint, HookBTF} {
		t.Run(string(hook), func(t *testing.T) { testGroupJoinsEveryMap(t, hook) })
	}
}

func testGroupJoinsEveryMap(t *testing.T, hook Hook) {
	s := defaultsSensor(t, hook)
	if note := s.GroupNote(); note != "" {
		t.Fatalf("groups not fully working: %s", note)
	}
	loads := func(t *testing.T, args ...string) loaderRun {
		t.Helper()
		run := runLoader(t, args...)
		if run.killed || len(run.results) != 1 || run.results[0].Ret < 0 {
			t.Fatalf("loader %v: killed=%v results %+v, want it loaded", args, run.killed, run.results)
		}
		return run
	}
	blocked := func(t *testing.T, run loaderRun) {
		t.Helper()
		if !run.killed {
			t.Fatalf("completing loader not killed (results %+v): the split evaded", run.results)
		}
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if evs[0].Verdict != VerdictBlock || evs[0].RuleID != "seed-pamspy-group" || evs[0].Action != ActionKilled {
			t.Errorf("completing load: %v %v by %q, want block, killed, by seed-pamspy-group", evs[0].Verdict, evs[0].Action, evs[0].RuleID)
		}
	}

	t.Run("a split whose programs reach their prog_array through fd_array indexes is blocked at the completing load", func(t *testing.T) {
		m := newGroupMaps(t, "fdarr")
		callee := writeFile(t, "callee.bin", pamCallee(t))
		caller := writeFile(t, "caller.bin", pamCaller(t, mapProgArray))
		first := loads(t, "-insns", callee, "-name", "grp_fa1", "-maps", m.pins, "-prog-array", m.pin, "-tail-slot", "0", "-fd-array")
		if w := writesOf(t, s, first.pid, 1, eventWait)[0]; w.Errno != 0 || w.ProgID != first.results[0].ID {
			t.Fatalf("write %+v: want the callee %d written", w, first.results[0].ID)
		}
		// Another process: its caller names the array only as fd_array
		// index 2 (BPF_PSEUDO_MAP_IDX).
		blocked(t, runLoader(t, "-insns", caller, "-name", "grp_fa2", "-maps", m.pins, "-fd-array"))
	})

	for _, how := range []string{"fd", "fd_array"} {
		t.Run("a load referencing maps of three other groups is judged against their union ("+how+")", func(t *testing.T) {
			// Three processes, three groups: one holds the lookup and
			// delete, one the ring buffer calls, one nothing of the
			// profile (its map comes first in the completing load, so a
			// judge that summed only the first map's group would see
			// no match).
			a, b, d := newGroupMaps(t, "u3a"+how), newGroupMaps(t, "u3b"+how), newGroupMaps(t, "u3d"+how)
			hashA := strings.Split(a.pins, ",")[mapHash]
			ringB := strings.Split(b.pins, ",")[mapRing]
			hashD := strings.Split(d.pins, ",")[mapHash]
			loads(t, "-insns", writeFile(t, "a.bin", halfProgram(t, lookupDelete(0))), "-name", "grp_u3a", "-maps", hashA, "-pin-progs", keepLoaded(t, "u3a"+how))
			loads(t, "-insns", writeFile(t, "b.bin", halfProgram(t, ringReserveSubmit(0))), "-name", "grp_u3b", "-maps", ringB, "-pin-progs", keepLoaded(t, "u3b"+how))
			loads(t, "-insns", writeFile(t, "d.bin", halfProgram(t, nil, 0)), "-name", "grp_u3d", "-maps", hashD, "-pin-progs", keepLoaded(t, "u3d"+how))
			args := []string{"-insns", writeFile(t, "c.bin", halfProgram(t, pamCallerHelpers(), 0, 1, 2)), "-name", "grp_u3c", "-maps", hashD + "," + hashA + "," + ringB}
			if how == "fd_array" {
				args = append(args, "-fd-array")
			}
			blocked(t, runLoader(t, args...))
		})
	}

	t.Run("without the third group the union is incomplete and the load is allowed", func(t *testing.T) {
		a, d := newGroupMaps(t, "u2a"), newGroupMaps(t, "u2d")
		hashA := strings.Split(a.pins, ",")[mapHash]
		hashD := strings.Split(d.pins, ",")[mapHash]
		loads(t, "-insns", writeFile(t, "a.bin", halfProgram(t, lookupDelete(0))), "-name", "grp_u2a", "-maps", hashA, "-pin-progs", keepLoaded(t, "u2a"))
		loads(t, "-insns", writeFile(t, "d.bin", halfProgram(t, nil, 0)), "-name", "grp_u2d", "-maps", hashD, "-pin-progs", keepLoaded(t, "u2d"))
		run := loads(t, "-insns", writeFile(t, "c.bin", halfProgram(t, pamCallerHelpers(), 0, 1)), "-name", "grp_u2c", "-maps", hashD+","+hashA)
		evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
		if evs[0].Verdict != VerdictAllow || evs[0].ReadErrors != 0 {
			t.Errorf("load: %v by %q, read errors %d; want allow, none", evs[0].Verdict, evs[0].RuleID, evs[0].ReadErrors)
		}
	})
}

// A load with more distinct map references than the cap (RULES_MAP_REFS,
// 64): the references past it join nothing at the judge; the kernel counts
// the load (GroupStats.RefsOver, Losses "group_refs_over") and its event
// carries read errors, so that BlockUnreadable blocks it.
func TestGroupMapReferencesPastTheCapAreCounted(t *testing.T) {
	requireGroupJudge(t)
	const refs = 70 // distinct fds, all of one hash map: the kernel binds one map
	m := newGroupMaps(t, "cap")
	hash := strings.Split(m.pins, ",")[mapHash]
	pins := make([]string, refs)
	idx := make([]int, refs)
	for i := range pins {
		pins[i], idx[i] = hash, i
	}
	prog := writeFile(t, "cap.bin", halfProgram(t, nil, idx...))
	for _, block := range []bool{false, true} {
		t.Run(fmt.Sprintf("block_unreadable=%v", block), func(t *testing.T) {
			s := startSensor(t, Config{Hook: HookTracepoint, Mode: ModeEnforce, BlockUnreadable: block, Rules: rules.Compile(rules.MustDefaults()).Kernel()})
			before, err := s.GroupStats()
			if err != nil {
				t.Fatal(err)
			}
			run := runLoader(t, "-insns", prog, "-name", "grp_cap", "-maps", strings.Join(pins, ","))
			if run.killed != block {
				t.Fatalf("killed=%v results %+v; want killed only with BlockUnreadable", run.killed, run.results)
			}
			if !block && (len(run.results) != 1 || run.results[0].Ret < 0) {
				t.Fatalf("results %+v: want the load to succeed (one map, %d fds)", run.results, refs)
			}
			evs := collect(t, s, map[uint32]bool{uint32(run.pid): true}, 1, eventWait)
			if evs[0].ReadErrors != refs-64 || evs[0].GroupRefsOver != refs-64 {
				t.Errorf("read errors %d (group refs over %d), want %d (the references past 64)", evs[0].ReadErrors, evs[0].GroupRefsOver, refs-64)
			}
			// the block's reason is the cap, not unreadable instructions
			if block && (evs[0].Verdict != VerdictBlock || evs[0].RuleID != RuleGroupRefsOver) {
				t.Errorf("verdict %v rule %q, want a block by %s", evs[0].Verdict, evs[0].RuleID, RuleGroupRefsOver)
			}
			after, err := s.GroupStats()
			if err != nil {
				t.Fatal(err)
			}
			if after.RefsOver < before.RefsOver+1 {
				t.Errorf("RefsOver %d → %d: the load past the cap was not counted", before.RefsOver, after.RefsOver)
			}
			l, err := s.Losses()
			if err != nil {
				t.Fatal(err)
			}
			if l["group_refs_over"] < after.RefsOver {
				t.Errorf("losses group_refs_over %d, GroupStats.RefsOver %d: not reported", l["group_refs_over"], after.RefsOver)
			}
		})
	}
}
