package program

import (
	"bytes"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// Every object cilium/ebpf reads must come out of the direct reader the
// same: instructions byte for byte after linking, references, maps, type.
func TestDirectReaderMatchesTheObjectLoader(t *testing.T) {
	for _, obj := range testObjects(t) {
		data, err := os.ReadFile(obj)
		if err != nil {
			t.Fatal(err)
		}
		want, err := FromELFReader(obj, bytes.NewReader(data))
		if err != nil || len(want) == 0 || want[0].ObjectLoaderError != "" {
			continue // only objects the loader accepts
		}
		got, err := fromELFDirect(obj, bytes.NewReader(data), nil)
		if err != nil {
			t.Errorf("%s: %v", obj, err)
			continue
		}
		byName := map[string]*Program{}
		for _, p := range got {
			byName[p.Name] = p
		}
		for _, w := range want {
			g := byName[w.Name]
			if g == nil {
				t.Errorf("%s: program %s missing from the direct reader", obj, w.Name)
				continue
			}
			cmp := func(what string, a, b any) {
				if !reflect.DeepEqual(a, b) {
					t.Errorf("%s: %s: %s: direct %v, loader %v", obj, w.Name, what, a, b)
				}
			}
			cmp("section", g.Section, w.Section)
			cmp("type", g.Type, w.Type)
			cmp("attach type", g.ExpectedAttachType, w.ExpectedAttachType)
			cmp("attach to", g.AttachTo, w.AttachTo)
			cmp("flags", g.Flags, w.Flags)
			cmp("license", g.License, w.License)
			cmp("big endian", g.BigEndian, w.BigEndian)
			if !bytes.Equal(g.Insns, w.Insns) {
				for i := 0; i < len(g.Insns) && i < len(w.Insns); i += 8 {
					if !bytes.Equal(g.Insns[i:i+8], w.Insns[i:i+8]) {
						t.Errorf("%s: %s: insn %d: direct % x, loader % x", obj, w.Name, i/8, g.Insns[i:i+8], w.Insns[i:i+8])
						break
					}
				}
				cmp("insn bytes", len(g.Insns), len(w.Insns))
			}
			cmp("refs", g.Refs, w.Refs)
			// The direct reader does not read a prog_array's initial
			// values (the object loader does): compared without them.
			sortMaps := func(m []Map) []Map {
				m = append([]Map(nil), m...)
				for i := range m {
					m[i].TailCalls = nil
				}
				sort.Slice(m, func(i, j int) bool { return m[i].Name < m[j].Name })
				return m
			}
			cmp("maps", sortMaps(g.Maps), sortMaps(w.Maps))
			cmp("unresolved", g.Unresolved, w.Unresolved)
		}
		if len(got) != len(want) {
			t.Errorf("%s: direct reader %d programs, loader %d", obj, len(got), len(want))
		}
	}
}

// Objects whose source says OBJECT-LOADER-REFUSES are the point of the
// direct reader: the object loader must refuse exactly those, and every
// program in them must still come out.
func TestObjectLoaderRefusesExactlyTheMarkedObjects(t *testing.T) {
	for _, obj := range testObjects(t) {
		src, err := os.ReadFile(strings.TrimSuffix(obj, ".o") + ".c")
		if err != nil {
			continue // generated objects (big.bpf.o)
		}
		marked := bytes.Contains(src, []byte("OBJECT-LOADER-REFUSES"))
		progs, err := FromELF(obj)
		if err != nil {
			t.Errorf("%s: %v", obj, err)
			continue
		}
		if len(progs) == 0 {
			t.Errorf("%s: no programs", obj)
			continue
		}
		refused := progs[0].ObjectLoaderError != ""
		if refused != marked {
			t.Errorf("%s: marked OBJECT-LOADER-REFUSES %v, but the loader refused it: %v (%s)", obj, marked, refused, progs[0].ObjectLoaderError)
		}
	}
}

func readOne(t *testing.T, obj string) map[string]*Program {
	t.Helper()
	progs, err := FromELF("../testdata/" + obj)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]*Program{}
	for _, p := range progs {
		m[p.Name] = p
	}
	return m
}

func findRef(p *Program, kind RefKind, name string) (int, bool) {
	for slot, r := range p.Refs {
		if r.Kind == kind && r.Name == name {
			return slot, true
		}
	}
	return 0, false
}

func TestDirectReaderCases(t *testing.T) {
	t.Run("weak USDT maps, a kconfig extern and a weak __ksym are all resolved", func(t *testing.T) {
		ps := readOne(t, "externs.bpf.o")
		u, v := ps["ext_usdt"], ps["ext_version"]
		if u == nil || v == nil || len(ps) != 2 {
			t.Fatalf("programs %v", ps)
		}
		if !strings.Contains(u.ObjectLoaderError, "STB_WEAK") {
			t.Errorf("loader error %q does not name the weak binding", u.ObjectLoaderError)
		}
		for _, m := range []string{"__bpf_usdt_specs", "__bpf_usdt_ip_to_spec_id"} {
			if _, ok := findRef(u, RefMap, m); !ok {
				t.Errorf("ext_usdt: no map ref %s: %v", m, u.Refs)
			}
		}
		var specs Map
		for _, m := range u.Maps {
			if m.Name == "__bpf_usdt_specs" {
				specs = m
			}
		}
		if specs.Type != mapTypeArray || specs.KeySize != 4 || specs.MaxEntries != 256 || specs.ValueSize == 0 {
			t.Errorf("__bpf_usdt_specs definition %+v", specs)
		}
		if _, ok := findRef(u, RefFunc, "bpf_usdt_arg"); !ok {
			t.Errorf("the .text sub-program bpf_usdt_arg is not linked: %v", u.Refs)
		}
		if slot, ok := findRef(v, RefKconfig, "LINUX_KERNEL_VERSION"); !ok || slot != 0 {
			t.Errorf("kconfig ref at %d %v: %v", slot, ok, v.Refs)
		}
		if _, ok := findRef(v, RefKsym, "bpf_task_from_pid"); !ok {
			t.Errorf("no ksym ref: %v", v.Refs)
		}
		if len(u.Unresolved)+len(v.Unresolved) != 0 {
			t.Errorf("unresolved: %v %v", u.Unresolved, v.Unresolved)
		}
		if v.Type != 5 || v.AttachTo != "syscalls/sys_enter_getpid" || u.Type != 2 {
			t.Errorf("types %d %q / %d", v.Type, v.AttachTo, u.Type)
		}
	})
	t.Run("an extern function is reported unresolved at its call", func(t *testing.T) {
		p := readOne(t, "externfunc.bpf.o")["xf_kill"]
		if p == nil {
			t.Fatal("no xf_kill")
		}
		slot, ok := findRef(p, RefExtern, "cel_expr_1")
		if !ok || len(p.Unresolved) != 1 || p.Unresolved[0].At != slot || p.Unresolved[0].Name != "cel_expr_1" || p.Unresolved[0].Kind != "extern" {
			t.Fatalf("refs %v unresolved %v", p.Refs, p.Unresolved)
		}
	})
	t.Run("map-in-map with a plain inner struct reads the outer map", func(t *testing.T) {
		p := readOne(t, "mapinmap.bpf.o")["mim_lookup"]
		if p == nil || len(p.Maps) != 1 {
			t.Fatalf("%+v", p)
		}
		if m := p.Maps[0]; m.Name != "mim_outer" || m.Type != mapTypeHashOfMaps || m.MaxEntries != 8 || m.KeySize != 4 || m.ValueSize != 4 {
			t.Errorf("outer map %+v", m)
		}
	})
	t.Run("struct_ops programs name their ops and member", func(t *testing.T) {
		ps := readOne(t, "structops.bpf.o")
		want := map[string]string{"so_select_cpu": "select_cpu", "so_enqueue": "enqueue", "so_init": "init"}
		if len(ps) != len(want) {
			t.Fatalf("%d programs", len(ps))
		}
		for name, member := range want {
			p := ps[name]
			if p == nil || p.StructOps == nil {
				t.Fatalf("%s: %+v", name, p)
			}
			if *p.StructOps != (StructOps{Ops: "sentry_ops", Type: "sched_ext_ops", Member: member}) || p.Type != 27 {
				t.Errorf("%s: %+v type %d", name, *p.StructOps, p.Type)
			}
		}
		if ps["so_init"].Flags&flagSleepable == 0 {
			t.Error("struct_ops.s program is not sleepable")
		}
	})
	t.Run("static programs share .text sub-programs, the first license wins", func(t *testing.T) {
		ps := readOne(t, "staticprogs.bpf.o")
		for _, name := range []string{"sp_static_getpid", "sp_static_getppid", "sp_global_gettid"} {
			p := ps[name]
			if p == nil {
				t.Fatalf("no %s", name)
			}
			if _, ok := findRef(p, RefFunc, "sp_mix"); !ok {
				t.Errorf("%s: sp_mix not linked: %v", name, p.Refs)
			}
			if p.License != "GPL" || len(p.Unresolved) != 1 || p.Unresolved[0].Kind != "license" || p.Unresolved[0].Name != "Proprietary" {
				t.Errorf("%s: license %q, unresolved %v", name, p.License, p.Unresolved)
			}
		}
	})
	t.Run("without BTF a weak legacy map is read and the extern's kind is unknown", func(t *testing.T) {
		p := readOne(t, "nobtfweak.bpf.o")["nbw_unlink"]
		if p == nil || len(p.Maps) != 1 {
			t.Fatalf("%+v", p)
		}
		if m := p.Maps[0]; !reflect.DeepEqual(m, Map{Name: "nbw_counts", Type: 1, KeySize: 4, ValueSize: 8, MaxEntries: 64}) {
			t.Errorf("map %+v", m)
		}
		if len(p.Unresolved) != 1 || !strings.Contains(p.Unresolved[0].Reason, "without BTF") || p.Unresolved[0].Name != "nbw_filter" {
			t.Errorf("unresolved %v", p.Unresolved)
		}
		if p.License != "Dual BSD/GPL" || p.AttachTo != "do_unlinkat" || p.Type != 2 {
			t.Errorf("license %q attach %q type %d", p.License, p.AttachTo, p.Type)
		}
	})
}
