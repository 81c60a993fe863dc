package program

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testObjects are the committed test programs (testdata/ at the repo root).
func testObjects(t testing.TB) []string {
	t.Helper()
	objs, err := filepath.Glob("../testdata/*.o")
	if err != nil || len(objs) == 0 {
		t.Skip("no compiled test programs under ../testdata")
	}
	return objs
}

// elfFunc is a function symbol read straight from the object with debug/elf,
// independently of cilium/ebpf.
type elfFunc struct {
	section string
	code    []byte // the symbol's bytes
	relocs  map[int]bool
}

func elfFuncs(t *testing.T, path string) map[string]elfFunc {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	relocs := map[int]map[int]bool{} // section index → relocated slots
	for _, s := range f.Sections {
		if s.Type != elf.SHT_REL {
			continue
		}
		data, err := s.Data()
		if err != nil {
			t.Fatal(err)
		}
		m := map[int]bool{}
		for i := 0; i+16 <= len(data); i += 16 {
			off := f.ByteOrder.Uint64(data[i:])
			m[int(off/8)] = true
		}
		relocs[int(s.Info)] = m
	}
	out := map[string]elfFunc{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || int(s.Section) >= len(f.Sections) {
			continue
		}
		sec := f.Sections[s.Section]
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		fr := map[int]bool{}
		for slot := range relocs[int(s.Section)] {
			if rel := slot - int(s.Value/8); rel >= 0 {
				fr[rel] = true
			}
		}
		out[s.Name] = elfFunc{section: sec.Name, code: data[s.Value : s.Value+s.Size], relocs: fr}
	}
	return out
}

func TestFromELFKeepsTheObjectsInstructions(t *testing.T) {
	for _, obj := range testObjects(t) {
		t.Run(filepath.Base(obj), func(t *testing.T) {
			progs, err := FromELF(obj)
			if err != nil {
				t.Fatal(err)
			}
			funcs := elfFuncs(t, obj)
			if len(progs) == 0 {
				t.Fatal("no programs")
			}
			for _, p := range progs {
				fn, ok := funcs[p.Name]
				if !ok {
					t.Fatalf("program %s: no such function symbol in the object", p.Name)
				}
				if p.Section != fn.section {
					t.Errorf("program %s: section %q, symbol is in %q", p.Name, p.Section, fn.section)
				}
				if len(p.Insns) < len(fn.code) {
					t.Fatalf("program %s: %d bytes, the function alone has %d", p.Name, len(p.Insns), len(fn.code))
				}
				if int(p.InsnCnt) != len(p.Insns)/8 {
					t.Errorf("program %s: InsnCnt %d for %d bytes", p.Name, p.InsnCnt, len(p.Insns))
				}
				// Every slot the linker leaves alone is byte for byte the
				// object's; relocated ld_imm64 keep opcode and registers.
				for i := 0; i < len(fn.code)/8; i++ {
					got, want := p.Insns[i*8:i*8+8], fn.code[i*8:i*8+8]
					if fn.relocs[i] || fn.relocs[i-1] {
						if got[0] != want[0] || got[1]&0x0f != want[1]&0x0f {
							t.Errorf("program %s slot %d (relocated): %x, object has %x", p.Name, i, got, want)
						}
						continue
					}
					if !bytes.Equal(got, want) {
						t.Errorf("program %s slot %d: %x, object has %x", p.Name, i, got, want)
					}
				}
				for slot := range fn.relocs {
					if slot < len(fn.code)/8 {
						if _, ok := p.Refs[slot]; !ok && fn.code[slot*8] == 0x18 {
							t.Errorf("program %s slot %d: relocated ld_imm64 without a Ref", p.Name, slot)
						}
					}
				}
			}
		})
	}
}

func TestFromELFMetadataMatchesTheSource(t *testing.T) {
	// Facts stated in the C sources under testdata/.
	tests := []struct {
		name, obj, prog, license, section, attachTo string
		maps                                        []string
	}{
		{"a tracepoint with a GPL license and a hash map", "sudoers.bpf.o", "handle_openat_enter", "GPL", "tracepoint/syscalls/sys_enter_openat", "syscalls/sys_enter_openat", []string{"sudoers_readers"}},
		{"an object without license section has no license", "nolicense.bpf.o", "nolic_xdp_pass", "", "xdp", "", []string{"nolic_stats"}},
		{"a uprobe keeps its attach target", "pamspy.bpf.o", "det_pam_get_authtok", "GPL", "uprobe//lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", "/lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", []string{"skip_once", "creds"}},
		{"an object without BTF still loads", "nobtf.bpf.o", "nobtf_sock_count", "GPL", "socket", "", []string{"nobtf_counts"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("../testdata", tt.obj)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("%s not built", path)
			}
			progs, err := FromELF(path)
			if err != nil {
				t.Fatal(err)
			}
			var p *Program
			for _, q := range progs {
				if q.Name == tt.prog {
					p = q
				}
			}
			if p == nil {
				t.Fatalf("no program %s", tt.prog)
			}
			if p.License != tt.license || p.Section != tt.section || p.AttachTo != tt.attachTo || p.Source != SourceELF || p.Origin != path {
				t.Errorf("got license %q section %q attach %q source %q origin %q", p.License, p.Section, p.AttachTo, p.Source, p.Origin)
			}
			var names []string
			for _, m := range p.Maps {
				names = append(names, m.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.maps, ",") {
				t.Errorf("maps %v, want %v", names, tt.maps)
			}
		})
	}
}

// compile builds src with clang-19 for target (bpfel or bpfeb).
func compile(t *testing.T, src, target string) string {
	t.Helper()
	clang, err := exec.LookPath("clang-19")
	if err != nil {
		t.Skip("clang-19 not installed")
	}
	dir := t.TempDir()
	c := filepath.Join(dir, "p.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	o := filepath.Join(dir, target+".o")
	out, err := exec.Command(clang, "-O2", "-g", "-target", target, "-c", c, "-o", o).CombinedOutput()
	if err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	return o
}

const twoProgsOneSection = `
#define SEC(n) __attribute__((section(n), used))
typedef unsigned long long u64;
static long (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_trace_printk)(const char *fmt, int size, ...) = (void *)6;
const volatile char msg[] = "hello world";
int counter;
static __attribute__((noinline)) int twice(int x) { return x * 2 + counter; }
SEC("kprobe/do_sys_open") int first(void *ctx) { bpf_trace_printk(msg, sizeof(msg)); return twice(bpf_ktime_get_ns()); }
SEC("kprobe/do_sys_open") int second(void *ctx) { counter++; return twice(3); }
char LICENSE[] SEC("license") = "Dual BSD/GPL";
`

func TestFromELFSeveralProgramsPerSectionWithSubprograms(t *testing.T) {
	obj := compile(t, twoProgsOneSection, "bpfel")
	progs, err := FromELF(obj)
	if err != nil {
		t.Fatal(err)
	}
	if len(progs) != 2 || progs[0].Name != "first" || progs[1].Name != "second" {
		t.Fatalf("want programs first, second in object order, got %d", len(progs))
	}
	for _, p := range progs {
		var funcs, data int
		for _, r := range p.Refs {
			switch r.Kind {
			case RefFunc:
				funcs++
				if r.Name != "twice" {
					t.Errorf("%s: func ref %q", p.Name, r.Name)
				}
			case RefData:
				data++
			}
		}
		if funcs != 1 || data < 1 {
			t.Errorf("%s: %d func refs and %d data refs, want 1 and ≥1", p.Name, funcs, data)
		}
		if p.License != "Dual BSD/GPL" {
			t.Errorf("%s: license %q", p.Name, p.License)
		}
		if !bytes.Contains(p.Data[".rodata"], []byte("hello world\x00")) {
			t.Errorf("%s: .rodata %q lacks the message", p.Name, p.Data[".rodata"])
		}
	}
}

func TestFromELFBigEndianGivesTheSameInstructionsAsLittleEndian(t *testing.T) {
	el, err := FromELF(compile(t, twoProgsOneSection, "bpfel"))
	if err != nil {
		t.Fatal(err)
	}
	eb, err := FromELF(compile(t, twoProgsOneSection, "bpfeb"))
	if err != nil {
		t.Fatal(err)
	}
	if len(el) != len(eb) {
		t.Fatalf("%d vs %d programs", len(el), len(eb))
	}
	for i := range el {
		if !eb[i].BigEndian || el[i].BigEndian {
			t.Errorf("%s: BigEndian el=%v eb=%v", el[i].Name, el[i].BigEndian, eb[i].BigEndian)
		}
		// No stored or compared multi-byte constants in this source, so the
		// encodings must agree exactly.
		if !bytes.Equal(el[i].Insns, eb[i].Insns) {
			t.Errorf("%s: instructions differ\nel %x\neb %x", el[i].Name, el[i].Insns, eb[i].Insns)
		}
	}
}

func TestFromELFRejectsBadInputWithAClearError(t *testing.T) {
	good, err := os.ReadFile(compile(t, twoProgsOneSection, "bpfel"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"an empty file is not an ELF", nil, "not an ELF file (empty file)"},
		{"a text file is not an ELF", []byte("hello, world\n"), "not an ELF file"},
		{"a file cut inside the identification is truncated", good[:10], "truncated ELF"},
		{"a file cut inside the header is truncated", good[:40], "truncated ELF: the ELF header needs bytes 0..64, the file has 40 bytes"},
		{"a file cut before its section headers is truncated", good[:len(good)/2], "truncated"},
		{"a 32-bit ELF is refused", append(append([]byte{}, good[:4]...), append([]byte{1}, good[5:]...)...), "eBPF objects are 64-bit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromELFReader("x.o", bytes.NewReader(tt.data))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), "x.o: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start with the file and contain %q", err, tt.want)
			}
		})
	}
	_, err = FromELFReader("x.o", bytes.NewReader([]byte("#!/bin/sh\n")))
	if !errors.Is(err, ErrNotELF) {
		t.Errorf("a shell script: %v, want ErrNotELF", err)
	}
}

func TestFromELFTruncatedAtEveryLengthNeverPanics(t *testing.T) {
	good, err := os.ReadFile(compile(t, twoProgsOneSection, "bpfel"))
	if err != nil {
		t.Fatal(err)
	}
	step := 1
	if testing.Short() {
		step = 13
	}
	for n := 0; n < len(good); n += step {
		if _, err := FromELFReader("cut.o", bytes.NewReader(good[:n])); err == nil {
			t.Errorf("cut at %d of %d bytes: no error", n, len(good))
		}
	}
}
