package inventory

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// loaded is what a test put into the kernel; Close removes all of it.
type loaded struct {
	progs   []*ebpf.Program
	links   []link.Link
	maps    []*ebpf.Map
	pinDir  string
	sockID  ebpf.ProgramID
	rawID   ebpf.ProgramID
	tpID    ebpf.ProgramID
	mapID   ebpf.MapID
	rawLink link.ID
	tpLink  link.ID
	longID  ebpf.ProgramID
}

func (l *loaded) Close() {
	for _, x := range l.links {
		x.Close()
	}
	for _, p := range l.progs {
		p.Close()
	}
	for _, m := range l.maps {
		m.Close()
	}
	if l.pinDir != "" {
		os.RemoveAll(l.pinDir)
	}
}

func progID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// loadFixture loads a socket filter that uses a map and is pinned, a raw
// tracepoint program attached by a raw_tracepoint link and a tracepoint
// program attached by a perf_event link.
func loadFixture(t *testing.T) *loaded {
	t.Helper()
	testutils.RequireRoot(t, "loading BPF programs")
	l := &loaded{}
	t.Cleanup(l.Close)
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "scan_map", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	l.maps = append(l.maps, m)
	mi, _ := m.Info()
	l.mapID, _ = mi.ID()
	ret0 := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	sock, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "scan_sock", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		}})
	if err != nil {
		t.Fatal(err)
	}
	l.progs = append(l.progs, sock)
	l.sockID = progID(t, sock)
	l.pinDir, err = os.MkdirTemp("/sys/fs/bpf", "ebpf-sentry-scan-test-")
	if err != nil {
		t.Fatalf("bpffs at /sys/fs/bpf: %v", err)
	}
	if err := sock.Pin(filepath.Join(l.pinDir, "sock")); err != nil {
		t.Fatal(err)
	}
	raw, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "scan_rawtp", Type: ebpf.RawTracepoint, License: "GPL", Instructions: ret0})
	if err != nil {
		t.Fatal(err)
	}
	l.progs = append(l.progs, raw)
	l.rawID = progID(t, raw)
	rl, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: raw})
	if err != nil {
		t.Fatal(err)
	}
	l.links = append(l.links, rl)
	rli, _ := rl.Info()
	l.rawLink = rli.ID
	tp, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "scan_tp", Type: ebpf.TracePoint, License: "GPL", Instructions: ret0})
	if err != nil {
		t.Fatal(err)
	}
	l.progs = append(l.progs, tp)
	l.tpID = progID(t, tp)
	tl, err := link.Tracepoint("syscalls", "sys_enter_getppid", tp, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.links = append(l.links, tl)
	if tli, err := tl.Info(); err == nil {
		l.tpLink = tli.ID
	}
	// A C program with BTF whose function name is longer than the kernel's
	// 15-byte prog_name.
	spec, err := ebpf.LoadCollectionSpec(testutils.Testdata("cgroup.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	ps := spec.Programs["cg_count_ingress"]
	if ps == nil {
		t.Fatal("cgroup.bpf.o has no cg_count_ingress")
	}
	coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"cg_count_ingress": ps}, Maps: spec.Maps, Types: spec.Types}, ebpf.CollectionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(coll.Close)
	l.longID = progID(t, coll.Programs["cg_count_ingress"])
	return l
}

type bpftoolProg struct {
	ID   uint32 `json:"id"`
	Type string `json:"type"`
	Name string `json:"name"`
	Tag  string `json:"tag"`
}

type bpftoolLink struct {
	ID     uint32 `json:"id"`
	Type   string `json:"type"`
	ProgID uint32 `json:"prog_id"`
}

func bpftoolJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	path, err := exec.LookPath("bpftool")
	if err != nil {
		testutils.SkipOrFail(t, "bpftool not installed (scripts/deps.sh installs it)")
	}
	out, err := exec.Command(path, append(args, "--json")...).Output()
	if err != nil {
		t.Fatalf("bpftool %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("bpftool %s: %v", strings.Join(args, " "), err)
	}
}

// stillLoaded reports whether a program id exists now.
func stillLoaded(id uint32) bool {
	fd, err := fdByID(cmdProgGetFDByID, id)
	if err == nil {
		unix.Close(fd)
	}
	return !errors.Is(err, unix.ENOENT)
}

// TestScanMatchesBpftool compares the scan with bpftool prog/link show run
// just before and just after it. Other engineers' programs come and go on a
// shared host, so a program may legitimately be in one view only: then it
// must be absent from one of the bpftool runs and gone (or new) now.
func TestScanMatchesBpftool(t *testing.T) {
	fx := loadFixture(t)
	var before, after []bpftoolProg
	var linksBefore, linksAfter []bpftoolLink
	bpftoolJSON(t, &before, "prog", "show")
	bpftoolJSON(t, &linksBefore, "link", "show")
	inv, err := Scan(nil)
	if err != nil {
		t.Fatal(err)
	}
	bpftoolJSON(t, &after, "prog", "show")
	bpftoolJSON(t, &linksAfter, "link", "show")

	ours := map[uint32]Program{}
	for _, p := range inv.Programs {
		ours[p.ID] = p
	}
	inBoth := map[uint32]bool{}
	for _, b := range before {
		for _, a := range after {
			if a.ID == b.ID {
				inBoth[a.ID] = true
			}
		}
	}
	for _, b := range append(before, after...) {
		p, ok := ours[b.ID]
		switch {
		case !ok && inBoth[b.ID]:
			t.Errorf("bpftool lists prog %d (%s) before and after the scan, the scan does not", b.ID, b.Name)
		case !ok:
		case p.Unreadable != "" && p.Unreadable != UnreadableGone:
			t.Errorf("prog %d unreadable: %s", b.ID, p.Unreadable)
		case p.Unreadable == "" && (p.Name != b.Name || analysis.ProgTypeName(p.Type) != b.Type || p.Tag != b.Tag):
			t.Errorf("prog %d: scan says %s %s tag %s, bpftool %s %s tag %s", b.ID,
				analysis.ProgTypeName(p.Type), p.Name, p.Tag, b.Type, b.Name, b.Tag)
		}
	}
	for id := range ours {
		seen := slices.ContainsFunc(append(before, after...), func(b bpftoolProg) bool { return b.ID == id })
		if !seen && stillLoaded(id) && id < maxID(after) {
			t.Errorf("the scan lists prog %d, which bpftool did not list and which is still loaded", id)
		}
	}
	ourLinks := map[uint32]Link{}
	for _, l := range inv.Links {
		ourLinks[l.ID] = l
	}
	for _, b := range linksBefore {
		if !slices.ContainsFunc(linksAfter, func(a bpftoolLink) bool { return a.ID == b.ID }) {
			continue
		}
		l, ok := ourLinks[b.ID]
		if !ok {
			t.Errorf("bpftool lists link %d before and after the scan, the scan does not", b.ID)
			continue
		}
		if l.Type != b.Type || l.ProgID != b.ProgID {
			t.Errorf("link %d: scan says %s prog %d, bpftool %s prog %d", b.ID, l.Type, l.ProgID, b.Type, b.ProgID)
		}
	}

	// The fixture in detail: owners, pins, links, maps, instructions.
	sock := ours[uint32(fx.sockID)]
	if sock.Prog == nil || sock.Name != "scan_sock" {
		t.Fatalf("scan_sock (id %d) not read: %+v", fx.sockID, sock)
	}
	if !slices.ContainsFunc(sock.Holders, func(h Holder) bool { return h.PID == uint32(os.Getpid()) && h.ExeIno != 0 }) {
		t.Errorf("scan_sock holders %+v lack this process with its exe identity", sock.Holders)
	}
	if want := filepath.Join(fx.pinDir, "sock"); !slices.Contains(sock.Pins, want) {
		t.Errorf("scan_sock pins %v lack %s", sock.Pins, want)
	}
	if !slices.Equal(sock.MapIDs, []uint32{uint32(fx.mapID)}) || len(sock.Prog.Maps) != 1 || sock.Prog.Maps[0].Name != "scan_map" {
		t.Errorf("scan_sock maps: ids %v, %+v; want scan_map id %d", sock.MapIDs, sock.Prog.Maps, fx.mapID)
	}
	rep := analysis.Analyze(sock.Prog, nil)
	if len(rep.Maps) != 1 || rep.Maps[0].Name != "scan_map" || rep.Maps[0].Type != "array" {
		t.Errorf("analysis of the translated scan_sock names maps %+v, want scan_map (array)", rep.Maps)
	}
	if sock.LoadTime.IsZero() {
		t.Error("scan_sock has no load time")
	}
	raw := ours[uint32(fx.rawID)]
	if !slices.Contains(raw.Links, uint32(fx.rawLink)) || raw.Prog == nil || raw.Prog.AttachTo != "raw_tracepoint sys_enter" {
		t.Errorf("scan_rawtp: links %v attach_to %q; want link %d to raw_tracepoint sys_enter", raw.Links, attachTo(raw), fx.rawLink)
	}
	rl := ourLinks[uint32(fx.rawLink)]
	if !slices.ContainsFunc(rl.Holders, func(h Holder) bool { return h.PID == uint32(os.Getpid()) }) {
		t.Errorf("raw_tracepoint link %d holders %+v lack this process", fx.rawLink, rl.Holders)
	}
	if long := ours[uint32(fx.longID)]; long.Name != "cg_count_ingress" {
		t.Errorf("a program whose name the kernel cut at 15 bytes: scan says %q, want the BTF name cg_count_ingress as bpftool shows it", long.Name)
	}
	if fx.tpLink != 0 {
		tp := ours[uint32(fx.tpID)]
		if want := "tracepoint sys_enter_getppid"; attachTo(tp) != want {
			t.Errorf("scan_tp attach_to %q, want %q", attachTo(tp), want)
		}
	}
}

func attachTo(p Program) string {
	if p.Prog == nil {
		return ""
	}
	return p.Prog.AttachTo
}

func maxID(ps []bpftoolProg) uint32 {
	var m uint32
	for _, p := range ps {
		m = max(m, p.ID)
	}
	return m
}

// TestScanReportsAProgramUnloadedMidScan closes a program after the scan
// enumerated its id and before it reads it.
func TestScanReportsAProgramUnloadedMidScan(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "scan_gone", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	id := uint32(progID(t, p))
	enumerated := false
	inv, err := Scan(&Options{NoOwners: true, afterIDs: func(ids []uint32) {
		enumerated = slices.Contains(ids, id)
		p.Close()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !enumerated {
		t.Fatalf("prog %d was not enumerated", id)
	}
	i := slices.IndexFunc(inv.Programs, func(q Program) bool { return q.ID == id })
	if i < 0 {
		t.Fatalf("prog %d unloaded mid-scan is missing from the inventory", id)
	}
	if got := inv.Programs[i]; got.Unreadable != UnreadableGone || got.Prog != nil {
		t.Errorf("prog %d: unreadable %q, want %q", id, got.Unreadable, UnreadableGone)
	}

}
