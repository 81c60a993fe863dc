package inventory

import (
	"errors"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// Offsets in the syscalls:sys_{enter,exit}_bpf tracepoint records and in
// the GET_NEXT_ID attr {start_id, next_id}.
const (
	tpEnterCmd   = 16
	tpEnterUattr = 24
	attrNextID   = 4
	cmdProgNext  = 11 // BPF_PROG_GET_NEXT_ID
)

// hideProgram attaches an ebpfkit-style hider: at the exit of every
// BPF_PROG_GET_NEXT_ID it rewrites the next_id the caller reads when it is
// hidden, to replacement (the id after it), with bpf_probe_write_user.
// The error is the kernel's refusal of the helper (lockdown).
func hideProgram(t *testing.T, hidden, replacement uint32) error {
	t.Helper()
	cfg, err := ebpf.NewMap(&ebpf.MapSpec{Name: "hide_cfg", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cfg.Close() })
	if err := cfg.Put(uint32(0), [2]uint32{hidden, replacement}); err != nil {
		t.Fatal(err)
	}
	pending, err := ebpf.NewMap(&ebpf.MapSpec{Name: "hide_pending", Type: ebpf.Hash, KeySize: 8, ValueSize: 8, MaxEntries: 1024})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pending.Close() })

	enter := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, tpEnterCmd, asm.DWord),
		asm.JNE.Imm(asm.R7, cmdProgNext, "out"),
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, asm.R6, tpEnterUattr, asm.DWord),
		asm.StoreMem(asm.RFP, -16, asm.R1, asm.DWord),
		asm.LoadMapPtr(asm.R1, pending.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -8),
		asm.Mov.Reg(asm.R3, asm.RFP), asm.Add.Imm(asm.R3, -16),
		asm.Mov.Imm(asm.R4, 0),
		asm.FnMapUpdateElem.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	exit := asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
		asm.LoadMapPtr(asm.R1, pending.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -8),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R6, asm.R0, 0, asm.DWord), // uattr
		asm.LoadMapPtr(asm.R1, pending.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -8),
		asm.FnMapDeleteElem.Call(),
		asm.StoreImm(asm.RFP, -16, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, cfg.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -16),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, -24),
		asm.Mov.Imm(asm.R2, 4),
		asm.Mov.Reg(asm.R3, asm.R6), asm.Add.Imm(asm.R3, attrNextID),
		asm.FnProbeReadUser.Call(),
		asm.JNE.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.RFP, -24, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, 0, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "out"),
		asm.Mov.Reg(asm.R1, asm.R6), asm.Add.Imm(asm.R1, attrNextID),
		asm.Mov.Reg(asm.R2, asm.R7), asm.Add.Imm(asm.R2, 4),
		asm.Mov.Imm(asm.R3, 4),
		asm.FnProbeWriteUser.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	ep, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "hide_enter", Type: ebpf.TracePoint, License: "GPL", Instructions: enter})
	if err != nil {
		t.Fatalf("load the hider's enter program: %v", err)
	}
	t.Cleanup(func() { ep.Close() })
	xp, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "hide_exit", Type: ebpf.TracePoint, License: "GPL", Instructions: exit})
	if err != nil {
		return err
	}
	t.Cleanup(func() { xp.Close() })
	for _, a := range []struct {
		name string
		p    *ebpf.Program
	}{{"sys_enter_bpf", ep}, {"sys_exit_bpf", xp}} {
		l, err := link.Tracepoint("syscalls", a.name, a.p, nil)
		if err != nil {
			t.Fatalf("attach %s: %v", a.name, err)
		}
		t.Cleanup(func() { l.Close() })
	}
	return nil
}

// TestCrossViewFindsAProgramHiddenFromGetNextID: a program whose id an
// ebpfkit-style hider removes from BPF_PROG_GET_NEXT_ID (bpf_probe_write_user
// on the caller's attr at the syscall's exit) is missing from the id list,
// and the cross-view reports it as seen by the bpf_prog iterator and, by its
// tag, by kallsyms. Where lockdown forbids bpf_probe_write_user (this CI
// host, 6.12-lockdown) the hider cannot load, which is checked instead.
func TestCrossViewFindsAProgramHiddenFromGetNextID(t *testing.T) {
	facts := testutils.KernelFacts(t)
	// Its own instructions, so its tag is its own: kallsyms finds a
	// hidden program by a tag no listed program has.
	target, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "hidden_target", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0x5eb1d), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	id := uint32(progID(t, target))
	// The id after it: a program loaded next (ids only grow).
	next, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "hidden_next", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	ids, err := ProgramIDs()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.Index(ids, id)
	if i < 0 || i+1 >= len(ids) {
		t.Fatalf("prog %d and a later one not in %v", id, ids)
	}

	err = hideProgram(t, id, ids[i+1])
	if facts.Lockdown == "integrity" || facts.Lockdown == "confidentiality" {
		if err == nil {
			t.Fatalf("lockdown=%s, yet a program calling bpf_probe_write_user loaded", facts.Lockdown)
		}
		t.Logf("lockdown=%s refuses the hider, as it should: %v", facts.Lockdown, err)
		return
	}
	if err != nil {
		var ve *ebpf.VerifierError
		t.Fatalf("the hider does not load without lockdown (%v): %v", errors.As(err, &ve), err)
	}
	listed, err := ProgramIDs()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(listed, id) {
		t.Fatalf("the hider did not hide prog %d from GET_NEXT_ID: %v", id, listed)
	}
	if !stillLoaded(id) {
		t.Fatalf("prog %d is gone, not hidden", id)
	}
	v, hidden, err := CrossView()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := target.Info()
	if err != nil {
		t.Fatal(err)
	}
	var byIter, byKsyms bool
	for _, h := range hidden {
		t.Logf("finding %+v", h)
		switch {
		case h.ID == id && slices.Equal(h.SeenBy, []string{ViewIter}) && slices.Equal(h.MissingFrom, []string{ViewGetNextID}):
			byIter = true
		case h.ID == 0 && h.Tag == tag.Tag && slices.Equal(h.SeenBy, []string{ViewKallsyms}):
			byKsyms = true
		}
	}
	if v.IterErr == nil && !byIter {
		t.Errorf("the iterator view does not report prog %d hidden: %+v", id, hidden)
	}
	if v.KsymsErr == nil && !byKsyms {
		t.Errorf("kallsyms does not report tag %s hidden: %+v", tag.Tag, hidden)
	}
	if v.IterErr != nil && v.KsymsErr != nil {
		t.Fatalf("no kernel-side view: iterator %v, kallsyms %v", v.IterErr, v.KsymsErr)
	}
}
