package analysis

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testprogs"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func testObjects(t testing.TB) []string {
	t.Helper()
	objs, err := filepath.Glob("../testdata/*.o")
	if err != nil || len(objs) == 0 {
		t.Skip("no compiled test programs under ../testdata")
	}
	return objs
}

// objdumpHelperCalls counts helper calls per object and function as
// llvm-objdump-19 disassembles the objects (one run for all: its start-up
// dominates): the raw bytes "85 00 ii ii ii ii" of a call with src_reg 0
// and its little-endian imm.
func objdumpHelperCalls(t *testing.T, objs []string) map[string]map[string]map[int32]int {
	t.Helper()
	tool, err := exec.LookPath("llvm-objdump-19")
	if err != nil {
		t.Skip("llvm-objdump-19 not installed")
	}
	out, err := exec.Command(tool, append([]string{"-d"}, objs...)...).Output()
	if err != nil {
		t.Fatalf("llvm-objdump: %v", err)
	}
	file := regexp.MustCompile(`^(.+):\s+file format `)
	fn := regexp.MustCompile(`^[0-9a-f]+ <([^>]+)>:$`)
	ins := regexp.MustCompile(`^\s*\d+:\s+((?:[0-9a-f]{2} ){7}[0-9a-f]{2})`)
	calls := map[string]map[string]map[int32]int{}
	var obj map[string]map[int32]int
	var cur map[int32]int
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := file.FindStringSubmatch(sc.Text()); m != nil {
			obj = map[string]map[int32]int{}
			calls[m[1]] = obj
			cur = nil
			continue
		}
		if m := fn.FindStringSubmatch(sc.Text()); m != nil && obj != nil {
			cur = map[int32]int{}
			obj[m[1]] = cur
			continue
		}
		m := ins.FindStringSubmatch(sc.Text())
		if m == nil || cur == nil {
			continue
		}
		raw, _ := hex.DecodeString(strings.ReplaceAll(m[1], " ", ""))
		if raw[0] == 0x85 && raw[1] == 0 {
			cur[int32(binary.LittleEndian.Uint32(raw[4:]))]++
		}
	}
	return calls
}

func TestAnalyzeHelperCountsAgreeWithLLVMObjdump(t *testing.T) {
	var objs []string
	for _, obj := range testObjects(t) {
		if testing.Short() && strings.HasPrefix(filepath.Base(obj), "big") {
			continue // seconds of llvm-objdump for the 100,000-instruction program
		}
		objs = append(objs, obj)
	}
	oracles := objdumpHelperCalls(t, objs)
	for _, obj := range objs {
		t.Run(filepath.Base(obj), func(t *testing.T) {
			oracle, ok := oracles[obj]
			if !ok {
				t.Fatalf("llvm-objdump printed nothing for %s", obj)
			}
			progs, err := program.FromELF(obj)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range progs {
				want, ok := oracle[p.Name]
				if !ok {
					t.Fatalf("llvm-objdump shows no function %s", p.Name)
				}
				// The flattened program has its sub-programs appended: count
				// only the calls inside the entry function, which ends where
				// the first callee starts.
				r := Analyze(p, nil)
				end := r.InsnCount
				for _, s := range r.Subprogs {
					end = min(end, s)
				}
				got := map[int32]int{}
				for _, h := range r.Helpers {
					if h.Count != len(h.At) {
						t.Errorf("%s: %s count %d but %d sites", p.Name, h.Name, h.Count, len(h.At))
					}
					for _, at := range h.At {
						if at < end {
							got[h.ID]++
						}
					}
				}
				if len(got) != len(want) {
					t.Errorf("%s: helpers %v, llvm-objdump %v", p.Name, got, want)
				}
				for id, n := range want {
					if got[id] != n {
						t.Errorf("%s: helper %d called %d times, llvm-objdump counts %d", p.Name, id, got[id], n)
					}
				}
			}
		})
	}
}

// find returns the named program of a test object, skipping when absent.
func find(t *testing.T, obj, name string) *program.Program {
	t.Helper()
	path := filepath.Join("../testdata", obj)
	if _, err := os.Stat(path); err != nil {
		t.Skipf("%s not built", path)
	}
	progs, err := program.FromELF(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range progs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("%s has no program %s", obj, name)
	return nil
}

func hasString(r *Report, kind StringKind, text string) bool {
	for _, s := range r.Strings {
		if s.Kind == kind && s.Text == text {
			return true
		}
	}
	return false
}

func TestAnalyzeFindsWhatTheTestSourcesSay(t *testing.T) {
	// Each expectation is stated in the C source of the test program.
	tests := []struct {
		name, obj, prog string
		check           func(t *testing.T, r *Report)
	}{
		{"the sudoers editor compares the path byte by byte", "sudoers.bpf.o", "handle_openat_enter", func(t *testing.T, r *Report) {
			if !hasString(r, StringCompare, "/etc/sudoers") {
				t.Errorf("no compare string /etc/sudoers in %+v", r.Strings)
			}
		}},
		{"the sudoers editor builds its line on the stack", "sudoers.bpf.o", "handle_read_exit", func(t *testing.T, r *Report) {
			if !hasString(r, StringStack, "hacker ALL=(ALL:ALL) NOPASSWD:ALL #") {
				t.Errorf("no stack string in %+v", r.Strings)
			}
		}},
		{"the getdents hider tail-calls through its prog array", "getdents_hide.bpf.o", "handle_getdents_exit", func(t *testing.T, r *Report) {
			if len(r.TailCallSites) != 1 || r.TailCallSites[0].Map != "dirent_jumps" || !r.TailCallSites[0].Known {
				t.Errorf("tail calls %+v", r.TailCallSites)
			}
		}},
		{"the getdents hider references the hidden name in .rodata", "getdents_hide.bpf.o", "handle_dirent_scan", func(t *testing.T, r *Report) {
			if !hasString(r, StringData, "31337") {
				t.Errorf("strings %+v", r.Strings)
			}
		}},
		{"exechijack's bpf_printk formats are format strings", "exechijack.bpf.o", "handle_execve_enter1", func(t *testing.T, r *Report) {
			for _, f := range []string{"exechijack: write failed pid %d", "exechijack: pid %d now runs %s"} {
				if !hasString(r, StringFormat, f) {
					t.Errorf("no format %q in %+v", f, r.Strings)
				}
			}
			if !hasString(r, StringData, "/a") {
				t.Errorf("no data string /a (hijack_path) in %+v", r.Strings)
			}
		}},
		{"kfuncs are named from the ELF relocations", "kfuncs.bpf.o", "kf_task_ref", func(t *testing.T, r *Report) {
			got := map[string]int{}
			for _, k := range r.Kfuncs {
				got[k.Name] = k.Count
			}
			want := map[string]int{"bpf_rcu_read_lock": 1, "bpf_rcu_read_unlock": 1, "bpf_task_acquire": 1, "bpf_task_from_pid": 1, "bpf_task_release": 2}
			if len(got) != len(want) {
				t.Errorf("kfuncs %v, want %v", got, want)
			}
			for n, c := range want {
				if got[n] != c {
					t.Errorf("kfunc %s called %d times, want %d", n, got[n], c)
				}
			}
		}},
		{"a program without license is not GPL-compatible", "nolicense.bpf.o", "nolic_xdp_pass", func(t *testing.T, r *Report) {
			if r.License != "" || r.GPL || r.ProgType != "xdp" {
				t.Errorf("license %q gpl %v type %q", r.License, r.GPL, r.ProgType)
			}
		}},
		{"pamspy reads the credentials with five bpf_probe_read calls and a ring buffer", "pamspy.bpf.o", "det_pam_get_authtok", func(t *testing.T, r *Report) {
			counts := map[string]int{}
			for _, h := range r.Helpers {
				counts[h.Name] = h.Count
			}
			if counts["bpf_probe_read"] != 5 || counts["bpf_ringbuf_reserve"] != 1 || counts["bpf_ringbuf_submit"] != 1 {
				t.Errorf("helpers %v", counts)
			}
			var rb bool
			for _, m := range r.Maps {
				rb = rb || m.Type == "ringbuf"
			}
			if !rb || !r.GPL {
				t.Errorf("maps %+v gpl %v", r.Maps, r.GPL)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, Analyze(find(t, tt.obj, tt.prog), nil))
		})
	}
}

func TestAnalyzeSubprogramsAndTailCallsOfARawProgram(t *testing.T) {
	a := &asmb{}
	a.slot(0x85, 0, 1, 0, 5)  // 0: call pc+5 → 6
	a.ld64(r2, 1, 9)          // 1-2: r2 = map fd 9
	a.movx(r3, r2).mov(r2, 0) // 3, 4: copy, then clobber r2
	a.movx(r2, r3).call(12)   // 5?: r2 = r3; tail call
	a.exit()                  //
	p := a.prog()
	// Layout: 0 call, 1-2 ld, 3 movx, 4 mov, 5 movx, 6 call 12, 7 exit.
	r := Analyze(p, nil)
	if len(r.SubprogCalls) != 1 || r.SubprogCalls[0].At != 0 || r.SubprogCalls[0].Target != 6 || len(r.Subprogs) != 1 || r.Subprogs[0] != 6 {
		t.Errorf("subprogs %v calls %+v", r.Subprogs, r.SubprogCalls)
	}
	if len(r.TailCalls) != 1 || r.TailCalls[0] != 6 {
		t.Fatalf("tail calls %v", r.TailCalls)
	}
	if tc := r.TailCallSites[0]; !tc.Known || tc.MapFD != 9 || tc.MapAt != 1 {
		t.Errorf("tail call site %+v, want map fd 9 loaded at 1 (followed through r3)", tc)
	}
	if len(r.Maps) != 1 || r.Maps[0].FD != 9 || len(r.Maps[0].At) != 1 {
		t.Errorf("maps %+v", r.Maps)
	}
	if r.InsnCount != 8 {
		t.Errorf("insn count %d", r.InsnCount)
	}
}

func TestFingerprintIgnoresLoadTimeFieldsOnly(t *testing.T) {
	build := func(fd int32, off uint32, helper int32, kfuncID int32) []byte {
		a := &asmb{}
		a.ld64(r1, 1, uint64(uint32(fd)))                   // map fd
		a.ld64(r2, 2, uint64(off)<<32|uint64(uint32(fd+1))) // map value fd+1, offset off
		a.slot(0x85, 0, 2, 1, kfuncID)                      // kfunc call, module fd index 1
		return a.call(helper).exit().b
	}
	fp := func(b []byte) string {
		p := &program.Program{Insns: b}
		ins, _ := p.Decode()
		return Fingerprint(ins)
	}
	base := fp(build(3, 16, 14, 100))
	tests := []struct {
		name string
		prog []byte
		same bool
	}{
		{"other map fds give the same fingerprint", build(42, 16, 14, 100), true},
		{"another kfunc BTF id gives the same fingerprint", build(3, 16, 14, 77), true},
		{"another value offset is another program", build(3, 24, 14, 100), false},
		{"another helper is another program", build(3, 16, 15, 100), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fp(tt.prog) == base; got != tt.same {
				t.Errorf("same = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestFingerprintOfTheObjectMatchesTheProgramWithRealMapFDs(t *testing.T) {
	testutils.RequireRoot(t, "creating maps to fill real fds into the instructions")
	for _, obj := range testObjects(t) {
		if slices.Contains(testprogs.ObjectLoaderRefuses, filepath.Base(obj)) {
			continue // cilium/ebpf cannot load it to fill in map fds
		}
		t.Run(filepath.Base(obj), func(t *testing.T) {
			spec, err := ebpf.LoadCollectionSpec(obj)
			if err != nil {
				t.Fatal(err)
			}
			progs, err := program.FromELF(obj)
			if err != nil {
				t.Fatal(err)
			}
			maps := map[string]*ebpf.Map{}
			for name, ms := range spec.Maps {
				if ms.Type == ebpf.ProgramArray {
					ms = ms.Copy()
					ms.Contents = nil // slots name programs; only fds matter here
				}
				m, err := ebpf.NewMap(ms)
				if err != nil {
					testutils.SkipOrFail(t, fmt.Sprintf("create map %s: %v", name, err))
				}
				defer m.Close()
				maps[name] = m
			}
			for _, p := range progs {
				ps := spec.Programs[p.Name].Copy()
				for name, m := range maps {
					if err := ps.Instructions.AssociateMap(name, m); err != nil && !errors.Is(err, asm.ErrUnreferencedSymbol) {
						t.Fatalf("associate %s: %v", name, err)
					}
				}
				var buf bytes.Buffer
				if err := ps.Instructions.Marshal(&buf, binary.LittleEndian); err != nil {
					t.Fatal(err)
				}
				if bytes.Equal(buf.Bytes(), p.Insns) && len(p.Maps) > 0 {
					t.Fatalf("%s: map fds were not filled in", p.Name)
				}
				loaded := &program.Program{Source: program.SourceSensor, Insns: buf.Bytes()}
				if a, b := Analyze(p, nil).SHA256, Analyze(loaded, nil).SHA256; a != b {
					t.Errorf("%s: object %s, with real fds %s", p.Name, a, b)
				}
			}
		})
	}
}

func TestGPLCompatible(t *testing.T) {
	tests := []struct {
		license string
		want    bool
	}{
		{"GPL", true}, {"GPL v2", true}, {"GPL and additional rights", true},
		{"Dual BSD/GPL", true}, {"Dual MIT/GPL", true}, {"Dual MPL/GPL", true},
		{"", false}, {"MIT", false}, {"Proprietary", false}, {"gpl", false}, {"GPL ", false},
	}
	for _, tt := range tests {
		t.Run("license "+tt.license, func(t *testing.T) {
			if got := GPLCompatible(tt.license); got != tt.want {
				t.Errorf("GPLCompatible(%q) = %v", tt.license, got)
			}
		})
	}
}

func TestKernelKfuncsNamesVmlinuxFunctions(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("no kernel BTF")
	}
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Fatal(err)
	}
	var fn *btf.Func
	if err := spec.TypeByName("bpf_task_acquire", &fn); err != nil {
		t.Skipf("kernel has no bpf_task_acquire: %v", err)
	}
	id, err := spec.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	var k KernelKfuncs
	if name, ok := k.KfuncName(int32(id), 0); !ok || name != "bpf_task_acquire" {
		t.Errorf("KfuncName(%d) = %q, %v", id, name, ok)
	}
	if _, ok := k.KfuncName(1, 0); ok {
		t.Error("type id 1 is not a function but got a name")
	}
	// A raw program calling it by BTF id is reported with the name.
	a := &asmb{}
	p := a.slot(0x85, 0, 2, 0, int32(id)).exit().prog()
	r := Analyze(p, nil)
	if len(r.Kfuncs) != 1 || r.Kfuncs[0].Name != "bpf_task_acquire" || r.Kfuncs[0].BTFID != int32(id) {
		t.Errorf("kfuncs %+v", r.Kfuncs)
	}
}
