package rules

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

func mustParse(t *testing.T, yaml string) *Set {
	t.Helper()
	set, err := Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return set
}

// A hand-made analysis: helper 4 (probe_read) at slots 3 and 9, helper 14
// at slot 5, a string at slot 7, a tail call at slot 11.
// sampleExeSHA is the sample loader's executable hash.
const sampleExeSHA = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func sampleInput() (*program.Program, *analysis.Report) {
	prog := &program.Program{Name: "handle_pam_get_authtok", Type: 2, InsnCnt: 20,
		Loader: &program.Loader{UID: 1000, Comm: "pamspy", Exe: "/usr/local/bin/pamspy",
			ExeInode: 77, ExeDev: KernelDev(8, 1), ExeSHA256: sampleExeSHA}}
	rep := &analysis.Report{
		InsnCount: 20, GPL: true, License: "GPL",
		Helpers: []analysis.HelperUse{
			{ID: 4, Name: "bpf_probe_read", Count: 2, At: []int{3, 9}},
			{ID: 14, Name: "bpf_get_current_pid_tgid", Count: 1, At: []int{5}},
		},
		Strings:   []analysis.String{{Insn: 7, Text: "/etc/shadow", Kind: analysis.StringStack}, {Insn: 2, Text: "hello", Kind: analysis.StringStack}},
		TailCalls: []int{11},
	}
	return prog, rep
}

// A light skeleton's loader calls bpf_sys_bpf: loads_programs holds, names
// the calls' slots, and the kernel table (the helper's count) agrees.
func TestLoadsProgramsIsTheSysBPFCalls(t *testing.T) {
	prog, rep := sampleInput()
	rep.Helpers = append(rep.Helpers, analysis.HelperUse{ID: SysBPFHelper, Name: "bpf_sys_bpf", Count: 2, At: []int{12, 17}})
	set := mustParse(t, "- id: r\n  severity: high\n  action: block\n  match:\n    loads_programs: true\n")
	v := Evaluate(set, prog, rep)
	if len(v.Hits) != 1 || v.Hits[0].Why[0].Predicate != "loads_programs" || !slices.Equal(v.Hits[0].Why[0].Insns, []int{12, 17}) {
		t.Fatalf("hits %+v, want loads_programs at slots 12 and 17", v.Hits)
	}
	if ok, why := Enforceable(set.Rules[0]); !ok {
		t.Fatalf("loads_programs: true is not enforceable in the kernel: %s", why)
	}
	k := Compile(set).Kernel()
	if k == nil || k.Table.Rules[0].AnyOf[SysBPFHelper/64]&(1<<(SysBPFHelper%64)) == 0 {
		t.Fatalf("the kernel rule does not ask for bpf_sys_bpf: %+v", k)
	}
	not := mustParse(t, "- id: r\n  severity: high\n  action: block\n  match:\n    loads_programs: false\n")
	if ok, _ := Enforceable(not.Rules[0]); ok {
		t.Error("loads_programs: false compiled into the kernel table, which cannot express it")
	}
}

func TestEvaluate(t *testing.T) {
	head := "- id: r\n  severity: high\n  action: block\n  match:\n"
	tests := []struct {
		name      string
		match     string
		want      bool
		predicate string // a reason that must be given
		insns     []int  // its slots
	}{
		{"minimum counts that are met match", "    helpers: {bpf_probe_read: 2, get_current_pid_tgid: 1}\n", true, "helpers", []int{3, 5, 9}},
		{"a minimum count above the calls does not match", "    helpers: {bpf_probe_read: 3}\n", false, "", nil},
		{"a listed helper that is never called does not match in mode all", "    helpers: {bpf_probe_read: 1, bpf_ringbuf_submit: 1}\n", false, "", nil},
		{"a listed helper that is never called is skipped in mode called", "    helpers_mode: called\n    helpers: {bpf_probe_read: 1, bpf_ringbuf_submit: 1}\n", true, "helpers", []int{3, 9}},
		{"mode called still needs one listed helper called", "    helpers_mode: called\n    helpers: {bpf_ringbuf_submit: 1}\n", false, "", nil},
		{"helpers_only holds when nothing else is called", "    helpers: {bpf_probe_read: 1, bpf_get_current_pid_tgid: 0}\n    helpers_only: true\n", true, "helpers_only", nil},
		{"helpers_only fails when another helper is called", "    helpers: {bpf_probe_read: 1}\n    helpers_only: true\n", false, "", nil},
		{"helpers_any names the calls", "    helpers_any: [bpf_probe_write_user, bpf_get_current_pid_tgid]\n", true, "helpers_any", []int{5}},
		{"a prog name prefix is matched on the kernel's 15 bytes", "    prog_name: {prefix: [handle_pam]}\n", true, "prog_name", nil},
		{"an exact prog name compares the truncated name", "    prog_name: {exact: [handle_pam_get_]}\n", true, "prog_name", nil},
		{"the full ELF name is not what the kernel sees", "    prog_name: {regex: ['authtok$']}\n", false, "", nil},
		{"strings contains gives the string's slot", "    strings: {contains: [shadow]}\n", true, "strings", []int{7}},
		{"strings regex is RE2", "    strings: {regex: ['^/etc/(shadow|sudoers)$']}\n", true, "strings", []int{7}},
		{"tail calls give their slots", "    tail_calls: true\n", true, "tail_calls", []int{11}},
		{"loader exe globs cross slashes", "    loader: {exe: ['*/pamspy']}\n", true, "loader.exe", nil},
		{"not excludes a matching exception", "    helpers_any: [4]\n    not: {loader: {uid: [1000]}}\n", false, "", nil},
		{"not lets other loaders through", "    helpers_any: [4]\n    not: {loader: {uid: [0]}}\n", true, "not", nil},
		{"an exe identity exception spares the file it names", "    helpers_any: [4]\n    not: {loader: {exe_identity: [{inode: 77, dev: '8:1', sha256: '" + sampleExeSHA + "'}]}}\n", false, "", nil},
		{"an exe identity with another hash does not spare", "    helpers_any: [4]\n    not: {loader: {exe_identity: [{inode: 77, dev: '8:1', sha256: '" + strings.Repeat("0", 64) + "'}]}}\n", true, "not", nil},
		{"an exe identity on another device does not spare", "    helpers_any: [4]\n    not: {loader: {exe_identity: [{inode: 77, dev: '8:2'}]}}\n", true, "not", nil},
		{"an exe identity without a hash is the kernel's inode and device", "    loader: {exe_identity: [{inode: 77, dev: '8:1'}]}\n", true, "loader.exe_identity", nil},
		{"any holds when one alternative holds", "    any:\n      - prog_type: [xdp]\n      - gpl_compatible: true\n", true, "any[1].gpl_compatible", nil},
		{"any fails when none holds", "    any:\n      - prog_type: [xdp]\n      - gpl_compatible: false\n", false, "", nil},
		{"an instruction-count range is inclusive", "    insn_count: {min: 20, max: 20}\n", true, "insn_count", nil},
		{"the uid must be listed", "    loader: {uid: [0]}\n", false, "", nil},
		{"a program without bpf_sys_bpf calls loads no programs", "    loads_programs: true\n", false, "", nil},
		{"loads_programs false holds for a program without bpf_sys_bpf calls", "    loads_programs: false\n", true, "loads_programs", nil},
	}
	prog, rep := sampleInput()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := mustParse(t, head+tt.match)
			v := Evaluate(set, prog, rep)
			if got := len(v.Hits) == 1; got != tt.want {
				t.Fatalf("matched=%v, want %v (%+v)", got, tt.want, v)
			}
			if !tt.want {
				if v.Action != ActionNone {
					t.Errorf("verdict action %v without a hit", v.Action)
				}
				return
			}
			if v.Action != ActionBlock {
				t.Errorf("verdict action %v, want block", v.Action)
			}
			var found *Reason
			for i, r := range v.Hits[0].Why {
				if r.Predicate == tt.predicate {
					found = &v.Hits[0].Why[i]
				}
			}
			if found == nil {
				t.Fatalf("no %q reason in %+v", tt.predicate, v.Hits[0].Why)
			}
			if tt.insns != nil && !slices.Equal(found.Insns, tt.insns) {
				t.Errorf("reason %s points at slots %v, want %v", found, found.Insns, tt.insns)
			}
		})
	}
}

func TestAllowEntriesExemptAProgram(t *testing.T) {
	prog, rep := sampleInput()
	prog.Insns = []byte{0x95, 0, 0, 0, 0, 0, 0, 0}
	rep.SHA256 = strings.Repeat("ab", 32)
	prog.Kernel = &program.Kernel{ID: 7, Tag: "0123456789abcdef"}
	for _, allow := range []string{
		"sha256: " + rep.SHA256,
		"tag: 0123456789ABCDEF",
		"insn_hash: '0x" + hex64(kernel.Hash(prog.Insns)) + "'",
	} {
		set := mustParse(t, "- id: r\n  severity: low\n  action: alert\n  match: {helpers_any: [4]}\n  allow: [{"+allow+"}]\n")
		if v := Evaluate(set, prog, rep); len(v.Hits) != 0 {
			t.Errorf("allow {%s} did not exempt the program", allow)
		}
	}
	set := mustParse(t, "- id: r\n  severity: low\n  action: alert\n  match: {helpers_any: [4]}\n  allow: [{insn_hash: '0x1'}]\n")
	if v := Evaluate(set, prog, rep); len(v.Hits) != 1 {
		t.Errorf("an unrelated allow entry exempted the program")
	}
}

func hex64(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&0xf]
		v >>= 4
	}
	return string(b)
}

// The seed's literal semantics (testdata/seed-literal.yaml) against the
// testdata programs: the helper rules catch the imitations, but also flag
// benign programs whose helpers are a subset of the pattern, and the name
// rules catch nothing because the seed compared whole names.
func TestSeedLiteralSemantics(t *testing.T) {
	set, err := LoadFile("testdata/seed-literal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	hits := map[string][]string{}
	objs, _ := filepath.Glob(testutils.Testdata("*.bpf.o"))
	for _, obj := range objs {
		progs, err := program.FromELF(obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range progs {
			for _, h := range Evaluate(set, p, analysis.Analyze(p, nil)).Hits {
				hits[h.ID] = append(hits[h.ID], filepath.Base(obj)+"/"+p.Name)
			}
		}
	}
	mustHave := map[string][]string{
		"literal-pamspy-helpers": {"pamspy.bpf.o/det_pam_get_authtok", "pamspy.bpf.o/handle_pam_ret",
			"cgroup.bpf.o/cg_count_ingress", "netcount.bpf.o/tc_count_egress"},
		"literal-exechijack-helpers": {"exechijack.bpf.o/handle_execve_enter1"},
	}
	for id, want := range mustHave {
		for _, w := range want {
			if !slices.Contains(hits[id], w) {
				t.Errorf("%s did not flag %s (flagged %v)", id, w, hits[id])
			}
		}
	}
	if len(hits["literal-pamspy-names"]) != 0 {
		t.Errorf("literal exact names matched %v; the testdata names only share the prefixes", hits["literal-pamspy-names"])
	}
}

func TestKernelName(t *testing.T) {
	for in, want := range map[string]string{
		"short":                "short",
		"handle_execve_enter1": "handle_execve_e",
		"exactly15chars_":      "exactly15chars_",
		"nul\x00after":         "nul",
	} {
		if got := KernelName(in); got != want {
			t.Errorf("KernelName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"*libpam*", "/lib/x86_64-linux-gnu/libpam.so.0:pam_get_authtok", true},
		{"syscalls/sys_enter_*", "syscalls/sys_enter_getdents64", true},
		{"syscalls/sys_enter_*", "syscalls/sys_exit_getdents64", false},
		{"sys_?nter", "sys_enter", true},
		{"[!a-z]x", "1x", true},
		{"[!a-z]x", "bx", false},
		{"a.c", "abc", false},
		{`\*`, "*", true},
		{"[]]", "]", true},
		{"(x|y)", "(x|y)", true},
	}
	for _, tt := range tests {
		g, err := CompileGlob(tt.glob)
		if err != nil {
			t.Fatalf("CompileGlob(%q): %v", tt.glob, err)
		}
		if got := g.Match(tt.s); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.glob, tt.s, got, tt.want)
		}
	}
	for _, bad := range []string{"[abc", `abc\`, "[]", "[!]"} {
		if _, err := CompileGlob(bad); err == nil {
			t.Errorf("CompileGlob(%q) accepted a broken glob", bad)
		}
	}
}

func TestReasonsListAtMost256Slots(t *testing.T) {
	at := make([]int, 1000)
	for i := range at {
		at[i] = i * 2
	}
	prog := &program.Program{Name: "p"}
	rep := &analysis.Report{Helpers: []analysis.HelperUse{{ID: 14, Name: "bpf_get_current_pid_tgid", Count: 1000, At: at}}}
	v := Evaluate(mustParse(t, "- id: r\n  severity: low\n  action: alert\n  match: {helpers: {14: 1000}}\n"), prog, rep)
	r := v.Hits[0].Why[0]
	if len(r.Insns) != 256 || r.Insns[255] != 510 || !strings.Contains(r.Detail, "(first 256 of 1000 slots)") {
		t.Fatalf("reason %q lists %d slots", r.Detail, len(r.Insns))
	}
}

// A loader field the sensor lost (header record dropped) is no fact: an
// exception on it does not spare the load, a requirement on it does not hold.
func TestUnknownLoaderFieldsMatchNothing(t *testing.T) {
	head := "- id: r\n  severity: high\n  action: block\n  match:\n"
	prog, rep := sampleInput()
	prog.Loader = &program.Loader{PID: 42, Unknown: program.HeaderFields} // uid reads 0
	for _, tc := range []struct {
		match string
		want  bool
	}{
		{"    helpers_any: [4]\n    not: {loader: {uid: [0]}}\n", true},
		{"    loader: {uid: [0]}\n", false},
		{"    helpers_any: [4]\n    not: {loader: {exe: ['*']}}\n", true},
	} {
		v := Evaluate(mustParse(t, head+tc.match), prog, rep)
		if got := len(v.Hits) == 1; got != tc.want {
			t.Errorf("%q: matched %v, want %v", tc.match, got, tc.want)
		}
	}
}
