package inventory

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

func TestCompareViews(t *testing.T) {
	tests := []struct {
		name string
		v    Views
		want []Hidden
	}{
		{"the same programs in every view: nothing hidden", Views{
			Before: []uint32{1, 2}, After: []uint32{1, 2}, Iter: []uint32{1, 2},
			Ksyms: []KsymProg{{0, "aaaaaaaaaaaaaaaa", "a"}}, Tags: map[uint32]string{1: "aaaaaaaaaaaaaaaa", 2: "bbbbbbbbbbbbbbbb"},
		}, nil},
		{"an id the iterator walks and GET_NEXT_ID never lists is hidden", Views{
			Before: []uint32{1}, After: []uint32{1}, Iter: []uint32{1, 7}, Tags: map[uint32]string{1: "aaaaaaaaaaaaaaaa"},
		}, []Hidden{{ID: 7, SeenBy: []string{ViewIter}, MissingFrom: []string{ViewGetNextID}}}},
		{"a program loaded or unloaded during the snapshot is not", Views{
			Before: []uint32{1, 2}, After: []uint32{1, 3}, Iter: []uint32{1, 3}, Tags: map[uint32]string{},
		}, nil},
		{"an id both enumerations list and the iterator misses is reported", Views{
			Before: []uint32{1, 2}, After: []uint32{1, 2}, Iter: []uint32{1}, Tags: map[uint32]string{},
		}, []Hidden{{ID: 2, SeenBy: []string{ViewGetNextID}, MissingFrom: []string{ViewIter}}}},
		{"a kallsyms program whose tag and address no listed program has is hidden, once (a sub-program's address is known)", Views{
			Before: []uint32{1}, After: []uint32{1}, Iter: []uint32{1}, Tags: map[uint32]string{1: "aaaaaaaaaaaaaaaa"},
			Ksyms: []KsymProg{{1, "aaaaaaaaaaaaaaaa", "a"}, {2, "dddddddddddddddd", "F"}, {3, "cccccccccccccccc", "evil"}, {3, "cccccccccccccccc", "evil"}},
			Funcs: map[uint64]bool{2: true},
		}, []Hidden{{Tag: "cccccccccccccccc", Name: "evil", SeenBy: []string{ViewKallsyms}, MissingFrom: []string{ViewGetNextID}}}},
		{"a view that failed is not compared", Views{
			Before: []uint32{1}, After: []uint32{1}, IterErr: os.ErrPermission, KsymsErr: os.ErrPermission,
			Ksyms: []KsymProg{{3, "cccccccccccccccc", "evil"}},
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.v.Compare()
			if len(got) != len(tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i].ID != tt.want[i].ID || got[i].Tag != tt.want[i].Tag || got[i].Name != tt.want[i].Name ||
					!slices.Equal(got[i].SeenBy, tt.want[i].SeenBy) || !slices.Equal(got[i].MissingFrom, tt.want[i].MissingFrom) {
					t.Errorf("finding %d: got %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestConfirmedKeepsOnlyRepeatedFindings(t *testing.T) {
	a := []Hidden{{ID: 7, SeenBy: []string{ViewIter}, MissingFrom: []string{ViewGetNextID}}, {ID: 8, SeenBy: []string{ViewIter}, MissingFrom: []string{ViewGetNextID}}}
	b := []Hidden{{ID: 8, SeenBy: []string{ViewIter}, MissingFrom: []string{ViewGetNextID}}}
	if got := confirmed(a, b); len(got) != 1 || got[0].ID != 8 {
		t.Errorf("got %+v, want only id 8", got)
	}
}

func TestReadKallsymsPrograms(t *testing.T) {
	table := "ffffffffc0001000 t bpf_prog_6deef7357e7b4530_sd_fw_egress\t[bpf]\n" +
		"ffffffffc0002000 t bpf_prog_6deef7357e7b4530_F\t[bpf]\n" +
		"ffffffffc0003000 t bpf_prog_nothex0000000000_x\t[bpf]\n" +
		"ffffffffc0004000 t bpf_trampoline_6442\t[bpf]\n" +
		"ffffffff81000000 T bpf_prog_put\n"
	got, err := ReadKallsymsPrograms(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	want := []KsymProg{{0xffffffffc0001000, "6deef7357e7b4530", "sd_fw_egress"}, {0xffffffffc0002000, "6deef7357e7b4530", "F"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// TestIteratorListsWhatGetNextIDLists: on a host with nothing hidden, the
// kernel-side walk and GET_NEXT_ID agree; a program loaded or unloaded
// during the comparison is allowed only if it is gone now or came after.
func TestIteratorListsWhatGetNextIDLists(t *testing.T) {
	testutils.RequireRoot(t, "running a bpf_prog iterator")
	// With a bpf-to-bpf call: sub-programs get kallsyms symbols of their own.
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "iter_fixture", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{
			asm.Call.Label("iter_sub"),
			asm.Return(),
			asm.Mov.Imm(asm.R0, 0).WithSymbol("iter_sub"),
			asm.Return(),
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	own := uint32(progID(t, p))
	v, hidden, err := CrossView()
	if err != nil {
		t.Fatal(err)
	}
	if v.IterErr != nil {
		t.Fatalf("iterator: %v", v.IterErr)
	}
	if !slices.Contains(v.Iter, own) || !slices.Contains(v.Before, own) {
		t.Fatalf("prog %d: in iterator %v, in GET_NEXT_ID %v", own, slices.Contains(v.Iter, own), slices.Contains(v.Before, own))
	}
	for _, h := range hidden {
		if h.ID != 0 && stillLoaded(h.ID) {
			t.Errorf("finding on a host with nothing hidden: %+v", h)
		}
		if h.ID == 0 {
			t.Errorf("kallsyms finding on a host with nothing hidden: %+v", h)
		}
	}
	// The fixture's kallsyms symbol carries its tag.
	info, _ := p.Info()
	if !slices.ContainsFunc(v.Ksyms, func(k KsymProg) bool { return k.Tag == info.Tag && k.Name == "iter_fixture" }) {
		t.Errorf("no bpf_prog_%s_iter_fixture in /proc/kallsyms", info.Tag)
	}
}

// TestKeptIteratorIsLoadedOnce: a cross-view walked with a kept iterator
// loads no program of its own, so run's reconciliation does not verify and
// report a new iterator program at every pass.
func TestKeptIteratorIsLoadedOnce(t *testing.T) {
	testutils.RequireRoot(t, "running a bpf_prog iterator")
	it, err := NewProgIterator()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	own, err := it.ID()
	if err != nil {
		t.Fatal(err)
	}
	info, err := it.objs.ListProgIds.Info()
	if err != nil {
		t.Fatal(err)
	}
	before, err := ProgramIDs()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		v, _, err := CrossViewWith(it)
		if err != nil {
			t.Fatal(err)
		}
		if v.IterErr != nil {
			t.Fatalf("iterator: %v", v.IterErr)
		}
		if !slices.Contains(v.Iter, own) {
			t.Fatalf("the kept iterator (prog %d) is missing from its own walk", own)
		}
	}
	after, err := ProgramIDs()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range after {
		if slices.Contains(before, id) {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue // gone again: not one of ours, which stay loaded
		}
		pi, err := p.Info()
		p.Close()
		if err == nil && pi.Name == info.Name {
			t.Errorf("prog %d, another %q, was loaded by the walks", id, pi.Name)
		}
	}
	if again, _ := it.ID(); again != own {
		t.Errorf("iterator id changed from %d to %d", own, again)
	}
}
