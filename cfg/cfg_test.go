package cfg

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

func assemble(t testing.TB, text string) []insn.Instruction {
	t.Helper()
	ins, probs := assembleLoose(t, text)
	if len(probs) > 0 {
		t.Fatal(probs)
	}
	return ins
}

// assembleLoose keeps what insn.Check objects to (translated forms).
func assembleLoose(t testing.TB, text string) ([]insn.Instruction, []insn.Problem) {
	t.Helper()
	a := insn.Assembler{Helpers: helper.Static()}
	raw, err := a.Assemble(text)
	if err != nil {
		t.Fatal(err)
	}
	return insn.Decode(raw)
}

// blocks renders the graph's blocks as "start-end" slot ranges per func and
// its edges as "from->to kind", for comparison with expectations.
func describe(g *Graph) (blocks, edges []string) {
	for _, b := range g.Blocks {
		blocks = append(blocks, fmt.Sprintf("f%d:%d-%d", b.Func, g.Start(b), g.End(b)))
	}
	for _, e := range g.Edges {
		to := "exit"
		if e.To != Exit {
			to = fmt.Sprint(g.Start(g.Blocks[e.To]))
		}
		edges = append(edges, fmt.Sprintf("%d->%s %s", g.Start(g.Blocks[e.From]), to, e.Kind))
	}
	return
}

// branchy: an if/else joining again, an ld_imm64 (two slots) inside a
// block, a sub-program call, and a second exit.
const branchy = `
	BPF_MOV64_IMM(BPF_REG_0, 0),
	BPF_JMP_IMM(BPF_JEQ, BPF_REG_1, 7, 3),
	BPF_LD_IMM64(BPF_REG_2, 0x1122334455),
	BPF_JMP_A(1),
	BPF_MOV64_IMM(BPF_REG_2, 1),
	BPF_CALL_REL(2),
	BPF_EXIT_INSN(),
	BPF_EXIT_INSN(),
	BPF_MOV64_IMM(BPF_REG_0, 1),
	BPF_EXIT_INSN(),`

func TestBuildSplitsBlocksAtJumpsTargetsAndSubprograms(t *testing.T) {
	g := Build(assemble(t, branchy), Options{})
	blocks, edges := describe(g)
	wantBlocks := []string{"f0:0-1", "f0:2-4", "f0:5-5", "f0:6-7", "f0:8-8", "f1:9-10"}
	wantEdges := []string{
		"0->5 true", "0->2 false", // jeq +2 skips the ld_imm64 (two slots) and the ja
		"2->6 jump",
		"5->6 fallthrough",
		"6->exit exit",
		"8->exit exit", // unreachable second exit: its own block
		"9->exit exit",
		"6->9 call",
	}
	if fmt.Sprint(blocks) != fmt.Sprint(wantBlocks) {
		t.Errorf("blocks\n got %v\nwant %v", blocks, wantBlocks)
	}
	if fmt.Sprint(edges) != fmt.Sprint(wantEdges) {
		t.Errorf("edges\n got %v\nwant %v", edges, wantEdges)
	}
	if len(g.Funcs) != 2 || g.Funcs[1].Start != 9 {
		t.Errorf("funcs = %+v, want main and one sub-program at 9", g.Funcs)
	}
	if len(g.Problems) != 0 {
		t.Errorf("problems in a well-formed program: %v", g.Problems)
	}
	if got := g.BlockAt(3); got != -1 {
		t.Errorf("BlockAt(second slot of ld_imm64) = %d, want -1", got)
	}
	if got := g.BlockAt(7); got != 3 {
		t.Errorf("BlockAt(7) = %d, want block 3", got)
	}
}

func TestBuildTranslatedCallTakesTheOffsetFromOff(t *testing.T) {
	// In translated dumps a pseudo call keeps its offset in off and the
	// callee's number in imm.
	ins, _ := assembleLoose(t, `
		BPF_RAW_INSN(BPF_JMP|BPF_CALL, 0, 1, 1, 1),
		BPF_EXIT_INSN(),
		BPF_EXIT_INSN(),`)
	g := Build(ins, Options{Translated: true})
	if len(g.Funcs) != 2 || g.Funcs[1].Start != 2 {
		t.Fatalf("funcs = %+v, want a callee at slot 2", g.Funcs)
	}
	_, edges := describe(g)
	if !strings.Contains(fmt.Sprint(edges), "0->2 call") {
		t.Errorf("edges %v lack the call edge", edges)
	}
}

func TestBuildReportsMalformedJumpsWithoutFailing(t *testing.T) {
	ins := assemble(t, `
		BPF_JMP_IMM(BPF_JEQ, BPF_REG_1, 0, 100),
		BPF_JMP_IMM(BPF_JEQ, BPF_REG_1, 0, 1),
		BPF_LD_IMM64(BPF_REG_2, 1),
		BPF_MOV64_IMM(BPF_REG_0, 0),`)
	g := Build(ins, Options{})
	got := strings.Join(g.Problems, "\n")
	for _, want := range []string{
		"insn 0: jump target 101 is not the start of an instruction",
		"insn 1: jump target 3 is not the start of an instruction",
		"insn 4: the last instruction of sub-program 0 is not an exit or a jump",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
}

func TestMarksCarryRuleIDsStringsAndTailCallTargets(t *testing.T) {
	ins := assemble(t, `
		BPF_LD_MAP_FD(BPF_REG_2, 5),
		BPF_MOV64_IMM(BPF_REG_3, 4),
		BPF_EMIT_CALL(BPF_FUNC_tail_call),
		BPF_MOV64_IMM(BPF_REG_0, 0),
		BPF_EXIT_INSN(),`)
	rep := &analysis.Report{
		Strings:       []analysis.String{{Insn: 3, Text: "/etc/shadow", Kind: analysis.StringStack}},
		TailCallSites: []analysis.TailCall{{At: 3, Known: true, Map: "jmp_table", MapAt: 0}},
	}
	hits := []rules.Hit{{ID: "tailcall-dispatch", Why: []rules.Reason{{Predicate: "helpers", Detail: "bpf_tail_call", Insns: []int{3}}}}}
	marks := Marks(ins, rep, hits)
	got := fmt.Sprintf("%+v", marks)
	for _, want := range []string{
		"{Insn:3 Kind:rule Rule:tailcall-dispatch Text:helpers: bpf_tail_call}",
		`{Insn:3 Kind:string Rule: Text:stack string "/etc/shadow"}`,
		"{Insn:3 Kind:tail_call Rule: Text:tail call via prog_array jmp_table[4]}",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("marks lack %s:\n%s", want, got)
		}
	}
}

func TestDOTShowsBlocksEdgesClustersAndMarks(t *testing.T) {
	ins := assemble(t, branchy)
	g := Build(ins, Options{})
	var buf bytes.Buffer
	marks := []Mark{{Insn: 6, Kind: MarkRule, Rule: "r<1>", Text: "helpers: x|y"}}
	if err := WriteDOT(&buf, g, DOTOptions{Marks: marks, Title: "evil\"name\u202e"}); err != nil {
		t.Fatal(err)
	}
	dot := buf.String()
	for _, want := range []string{
		`label="evil\"name\\u202e";`,
		`subgraph "cluster_1" {`,
		`fn_0_bb_0 [shape=Mdiamond,style=filled,label="ENTRY"];`,
		`fn_0_bb_0:s -> fn_0_bb_2:n`,
		`fn_0_bb_2:s -> fn_0_bb_4:n [color="#1a7f37", label="T"`,
		`fn_0_bb_2:s -> fn_0_bb_3:n [color="#cf222e", label="F"`,
		`fn_0_bb_5:s -> fn_0_bb_1:n`,
		`fn_0_bb_5 -> fn_1_bb_0 [style=dashed`,
		`fn_0_bb_5 [shape=record,style=filled,fillcolor="#f4b6b6",label="{6: (85) call pc+2\l | ; rule r\<1\>: helpers: x\|y\l | 7: (95) exit\l}"];`,
	} {
		if !strings.Contains(dot, want) {
			t.Errorf("DOT lacks %s\n%s", want, dot)
		}
	}
}

func TestBuildOnEveryTestObjectProgram(t *testing.T) {
	// Every block of every test program ends where the next begins, and
	// every edge lands on a block start.
	for _, obj := range []string{"subprogs.bpf.o", "execsnoop.bpf.o", "evasion.bpf.o", "big.bpf.o"} {
		progs, err := program.FromELF("../testdata/" + obj)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range progs {
			ins, _ := p.Decode()
			g := Build(ins, Options{})
			next := 0
			for _, b := range g.Blocks {
				if b.First != next || b.Last < b.First {
					t.Fatalf("%s/%s: block %d covers %d..%d, want it to start at %d", obj, p.Name, b.ID, b.First, b.Last, next)
				}
				next = b.Last + 1
			}
			if next != len(ins) {
				t.Errorf("%s/%s: blocks cover %d of %d instructions", obj, p.Name, next, len(ins))
			}
			if len(g.Problems) > 0 {
				t.Errorf("%s/%s: %v", obj, p.Name, g.Problems)
			}
		}
	}
}
