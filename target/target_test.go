package target

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// fakeTracefs writes events/<group>/<name>/id files and the probe lists.
func fakeTracefs(t *testing.T, ids map[string]string, uprobes string) string {
	t.Helper()
	root := t.TempDir()
	for name, id := range ids {
		dir := filepath.Join(root, "events", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "id"), []byte(id+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "uprobe_events"), []byte(uprobes), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// funcOffset is the file offset of an ELF function, computed here from the
// section that holds it (independently of elfSymbolAt's segment walk).
func funcOffset(t *testing.T, path, name string) uint64 {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("no %s: %v", path, err)
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	for _, s := range syms {
		if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value != 0 {
			sec := f.Sections[s.Section]
			return s.Value - sec.Addr + sec.Offset
		}
	}
	t.Skipf("%s has no %s", path, name)
	return 0
}

func TestResolveNamesTargets(t *testing.T) {
	libc := "/lib/x86_64-linux-gnu/libc.so.6"
	off := funcOffset(t, libc, "getpid")
	tracefs := fakeTracefs(t, map[string]string{"syscalls/sys_enter_getdents64": "900", "uprobes/p_libc_getpid": "2001"},
		"p:uprobes/p_libc_getpid "+libc+":0x"+hex(off)+"\n")
	r := &Resolver{Tracefs: tracefs, pmu: map[uint32]string{8: "uprobe", 9: "kprobe"}}
	cases := []struct {
		name string
		raw  Raw
		kind Kind
		want string
	}{
		{"a tracepoint id is its group/name", Raw{AttachType: 41, PerfFound: true, PerfType: 2, PerfConfig: 900}, KindTracepoint, "syscalls/sys_enter_getdents64"},
		{"a tracefs uprobe is its binary and symbol", Raw{AttachType: 41, PerfFound: true, PerfType: 2, PerfConfig: 2001}, KindUprobe, libc + ":getpid"},
		{"a uprobe PMU event's offset is named from the ELF symbols", Raw{AttachType: 41, PerfFound: true, PerfType: 8, Name: libc, PerfOffset: off}, KindUprobe, libc + ":getpid"},
		{"a uretprobe is told apart by config bit 0", Raw{AttachType: 41, PerfFound: true, PerfType: 8, PerfConfig: 1, Name: libc, PerfOffset: off}, KindUretprobe, libc + ":getpid"},
		{"a kprobe PMU event is its function", Raw{AttachType: 41, PerfFound: true, PerfType: 9, Name: "vfs_read"}, KindKprobe, "vfs_read"},
		{"a raw tracepoint is its name", Raw{RawTP: true, Name: "sys_enter"}, KindRawTracepoint, "sys_enter"},
		{"kprobe_multi symbols: the first is the name", Raw{AttachType: 42, Count: 2, Syms: []string{"vfs_read", "vfs_write"}}, KindKprobeMulti, "vfs_read"},
		{"an unknown tracepoint id is said, not guessed", Raw{AttachType: 41, PerfFound: true, PerfType: 2, PerfConfig: 77777}, KindTracepoint, ""},
		{"an fd that is no perf event is said so", Raw{AttachType: 41}, KindPerfEvent, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Resolve(c.raw)
			if got.Kind != c.kind || got.Name != c.want {
				t.Fatalf("got %s %q (%s), want %s %q", got.Kind, got.Name, got.Unresolved, c.kind, c.want)
			}
			if c.want == "" && got.Unresolved == "" {
				t.Errorf("nothing named and no reason given")
			}
		})
	}
	multi := r.Resolve(Raw{AttachType: 42, Count: 3, Syms: []string{"vfs_read", "iterate_dir"}})
	if n := multi.Names(); len(n) != 2 || n[1] != "iterate_dir" {
		t.Errorf("names of a kprobe_multi: %v, want every symbol", n)
	}
	if multi.Unresolved == "" {
		t.Errorf("3 symbols, 2 reported: not said")
	}
}

func hex(v uint64) string {
	const digits = "0123456789abcdef"
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v >>= 4 {
		b = append([]byte{digits[v&15]}, b...)
	}
	return string(b)
}

// fentry, fexit, fmod_ret and tp_btf targets are named from the kernel's
// BTF (tp_btf without its btf_trace_ prefix), an freplace target by the
// program it replaces into, and an id the BTF lacks is said, not guessed.
func TestResolveNamesTracingTargetsFromKernelBTF(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if errors.Is(err, btf.ErrNotSupported) {
		t.Skip("no kernel BTF (/sys/kernel/btf/vmlinux): tracing targets are named from it")
	}
	if err != nil {
		t.Fatal(err)
	}
	id := func(name string, typ btf.Type) uint32 {
		t.Helper()
		ids, err := spec.AnyTypesByName(name)
		if err != nil {
			t.Fatalf("kernel BTF: %s: %v", name, err)
		}
		for _, x := range ids {
			if reflect.TypeOf(x) == reflect.TypeOf(typ) {
				i, err := spec.TypeID(x)
				if err != nil {
					t.Fatal(err)
				}
				return uint32(i)
			}
		}
		t.Fatalf("kernel BTF has no %T %s", typ, name)
		return 0
	}
	fn := id("security_bpf", &btf.Func{})
	tp := id("btf_trace_sched_switch", &btf.Typedef{})
	r := NewResolver()
	cases := []struct {
		name string
		raw  Raw
		kind Kind
		want string
	}{
		{"fentry names its kernel function", Raw{AttachType: atFentry, BTFID: fn}, KindTracing, "security_bpf"},
		{"fexit the same", Raw{AttachType: 25, BTFID: fn}, KindTracing, "security_bpf"},
		{"fmod_ret the same", Raw{AttachType: 26, BTFID: fn}, KindTracing, "security_bpf"},
		{"tp_btf names the tracepoint, not its typedef", Raw{AttachType: atTraceRawTP, BTFID: tp}, KindTracing, "sched_switch"},
		{"freplace names the program it replaces into", Raw{AttachType: 0, ProgType: progTypeExt, ProgID: 77}, KindFreplace, "prog 77"},
		{"fentry on a program names the program", Raw{AttachType: atFentry, ProgID: 78}, KindTracing, "prog 78"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := r.Resolve(c.raw)
			if got.Kind != c.kind || got.Name != c.want || got.Unresolved != "" {
				t.Errorf("Resolve(%+v) = %+v, want %s %q", c.raw, got, c.kind, c.want)
			}
		})
	}
	bogus := r.Resolve(Raw{AttachType: atFentry, BTFID: 1 << 30})
	if bogus.Kind != KindTracing || bogus.Name != "" || bogus.Unresolved == "" {
		t.Errorf("an id the BTF lacks: %+v, want unnamed with the reason", bogus)
	}
}
