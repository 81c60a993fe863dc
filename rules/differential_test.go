package rules

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// noKfuncs keeps the analysis off the running kernel's BTF: the generated
// programs' kfunc ids are made up.
type noKfuncs struct{}

func (noKfuncs) KfuncName(int32, int16) (string, bool) { return "", false }

// Pools the generator draws from, small so that rules and programs meet.
var (
	genHelpers = []int32{1, 2, 3, 4, 6, 12, 14, 16, 35, 36, 58, 109, 112, 113, 131, 132}
	genNames   = []string{"", "handle_exec", "handle_", "handle", "det_pam_get_aut", "testtest", "xdp_pass",
		"abcdefghijklmnopqrs", "abcdefghijklmno", "h", "handle_execve_e"}
	genComms = []string{"", "bash", "ebpf-sentry", "systemd", "pamspy", "a_very_long_command_name"}
	genUIDs  = []uint32{0, 1000, 65534}
	// Executable identities: inode 0 is a loader without an mm (kernel thread).
	genExes = []ExeIdentity{{}, {Inode: 131, Dev: KernelDev(8, 1)},
		{Inode: 131, Dev: KernelDev(0, 25)}, {Inode: 4242, Dev: KernelDev(259, 3)}}
)

func genSlot(code uint8, dst, src uint8, off int16, imm int32) []byte {
	b := make([]byte, 8)
	b[0] = code
	b[1] = dst&0xf | src<<4
	binary.LittleEndian.PutUint16(b[2:], uint16(off))
	binary.LittleEndian.PutUint32(b[4:], uint32(imm))
	return b
}

// genProgram builds a well-formed instruction stream: helper calls (some with
// ids past the kernel table), kfunc and bpf-to-bpf calls (not helpers),
// map loads with varying fds, ALU fillers, and an exit.
func genProgram(rng *rand.Rand, i int) *program.Program {
	n := 1 + rng.IntN(300)
	if i%97 == 0 {
		n = kernel.HarnessInsns - 1 // about the longest the harness takes (a trailing ld_imm64 may add one)
	}
	var insns []byte
	for len(insns)/8 < n-1 {
		switch rng.IntN(10) {
		case 0, 1, 2, 3:
			id := genHelpers[rng.IntN(len(genHelpers))]
			if rng.IntN(40) == 0 {
				id = 256 + rng.Int32N(100)
			}
			insns = append(insns, genSlot(0x85, 0, 0, 0, id)...)
		case 4:
			insns = append(insns, genSlot(0x85, 0, 2, 0, rng.Int32N(50000))...) // kfunc
		case 5:
			insns = append(insns, genSlot(0x85, 0, 1, 0, -1)...) // bpf-to-bpf call to itself
		case 6:
			src := []uint8{1, 2, 5, 6, 0, 4}[rng.IntN(6)]
			insns = append(insns, genSlot(0x18, 1, src, 0, rng.Int32N(1000))...)
			insns = append(insns, genSlot(0, 0, 0, 0, rng.Int32N(64))...)
		default:
			insns = append(insns, genSlot(0xb7, uint8(rng.IntN(10)), 0, 0, rng.Int32())...) // mov r, imm
		}
	}
	insns = append(insns, genSlot(0x95, 0, 0, 0, 0)...)
	types := []uint32{2, 5, 6, 17, 26, 31, 63, 64, 70}
	return &program.Program{
		Source:             program.SourceRaw,
		Name:               genNames[rng.IntN(len(genNames))],
		Type:               types[rng.IntN(len(types))],
		ExpectedAttachType: []uint32{0, 1, 23, 37, 58, 63, 64, 127, 128, 200}[rng.IntN(10)],
		Insns:              insns,
		InsnCnt:            uint32(len(insns) / 8),
		Loader: func() *program.Loader {
			e := genExes[rng.IntN(len(genExes))]
			return &program.Loader{
				UID:      genUIDs[rng.IntN(len(genUIDs))],
				Comm:     genComms[rng.IntN(len(genComms))],
				ExeInode: e.Inode, ExeDev: e.Dev,
			}
		}(),
		Origin:     fmt.Sprintf("generated #%d", i),
		Provenance: genProvenance(rng),
	}
}

// genProvenance: unsigned, signed with a keyring id of each kind, or
// through a token (nil: an offline program, which is unsigned).
func genProvenance(rng *rand.Rand) *program.Provenance {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return &program.Provenance{ViaToken: true, TokenFD: 3}
	}
	id := []int32{0, 1, 2, -3, -4, -5, -1, 12345678}[rng.IntN(8)]
	return &program.Provenance{Signed: true, KeyringID: id, Keyring: program.KeyringKind(id), ViaToken: rng.IntN(3) == 0}
}

// genProvMatch draws the kernel-enforceable provenance predicates.
func genProvMatch(rng *rand.Rand) *ProvenanceMatch {
	pm := &ProvenanceMatch{}
	b := func() *bool { v := rng.IntN(2) == 0; return &v }
	if rng.IntN(2) == 0 {
		pm.Signed = b()
	}
	if rng.IntN(2) == 0 {
		pm.ViaToken = b()
	}
	if rng.IntN(2) == 0 || (pm.Signed == nil && pm.ViaToken == nil) {
		pm.Keyring = pick(rng, append([]string{KeyringNone}, program.KeyringKinds...), 3)
	}
	return pm
}

func pick[T any](rng *rand.Rand, pool []T, max int) []T {
	n := 1 + rng.IntN(max)
	out := make([]T, 0, n)
	for range n {
		out = append(out, pool[rng.IntN(len(pool))])
	}
	return out
}

func helperMin(id int32, min uint32) HelperMin {
	return HelperMin{ID: id, Name: fmt.Sprintf("helper#%d", id), Min: min}
}

// genRule builds a rule from the kernel-enforceable predicates; half the
// time its thresholds come from near, the program's own facts, so that
// matches and boundary misses are both common.
func genRule(rng *rand.Rand, i int, near *program.Program, rep *analysis.Report) *Rule {
	r := &Rule{ID: fmt.Sprintf("gen-%d", i), Action: ActionAlert}
	if rng.IntN(2) == 0 {
		r.Action = ActionBlock
	}
	m := &r.Match
	counts := map[int32]int{}
	for _, h := range rep.Helpers {
		counts[h.ID] = h.Count
	}
	local := rng.IntN(2) == 0
	if rng.IntN(3) > 0 {
		seen := map[int32]bool{}
		for range 1 + rng.IntN(5) {
			id := genHelpers[rng.IntN(len(genHelpers))]
			if local && len(rep.Helpers) > 0 {
				id = rep.Helpers[rng.IntN(len(rep.Helpers))].ID
				if id > 255 {
					continue
				}
			}
			if seen[id] {
				continue
			}
			seen[id] = true
			minimum := uint32(rng.IntN(4))
			if local {
				minimum = uint32(max(0, counts[id]+rng.IntN(3)-1))
			}
			m.Helpers = append(m.Helpers, helperMin(id, minimum))
		}
		if rng.IntN(3) == 0 {
			m.HelpersMode = HelpersCalled
		}
		m.HelpersOnly = rng.IntN(3) == 0
	}
	if rng.IntN(4) == 0 {
		for _, id := range pick(rng, genHelpers, 3) {
			m.HelpersAny = append(m.HelpersAny, helperMin(id, 1))
		}
	}
	if rng.IntN(4) == 0 {
		m.ProgType = pick(rng, []uint32{2, 5, 6, 17, 26, 31, 63}, 3)
		if local {
			m.ProgType = append(m.ProgType, near.Type%64)
		}
	}
	if rng.IntN(5) == 0 {
		m.AttachType = pick(rng, []uint32{0, 1, 23, 37, 58, 63, 64, 127}, 3)
	}
	if rng.IntN(4) == 0 {
		lo := uint32(rng.IntN(200))
		m.InsnCount = &Range{Min: lo, Max: lo + uint32(rng.IntN(200))}
	}
	names := func() *StringPatterns {
		p := &StringPatterns{}
		for range 1 + rng.IntN(4) {
			s := KernelName(genNames[rng.IntN(len(genNames))])
			if s == "" {
				s = "x"
			}
			if rng.IntN(2) == 0 {
				p.Exact = append(p.Exact, s)
			} else {
				p.Prefix = append(p.Prefix, s[:1+rng.IntN(len(s))])
			}
		}
		return p
	}
	comms := func() []string {
		var out []string
		for _, c := range pick(rng, genComms[1:], 3) {
			out = append(out, KernelName(c))
		}
		return out
	}
	exes := func() []ExeIdentity { return pick(rng, genExes[1:], 3) }
	switch rng.IntN(7) {
	case 0:
		m.ProgName = names()
	case 1:
		m.Loader = &LoaderMatch{Comm: comms()}
	case 2:
		m.Loader = &LoaderMatch{UID: pick(rng, genUIDs, 2)}
	case 3:
		m.Not = &Match{ProgName: names()}
	case 4:
		m.Not = &Match{Loader: &LoaderMatch{ExeIdentity: exes()}}
	case 5:
		m.Not = &Match{Loader: &LoaderMatch{UID: pick(rng, genUIDs, 2)}}
	case 6:
		m.Loader = &LoaderMatch{ExeIdentity: exes()}
	}
	if rng.IntN(5) == 0 {
		h := rng.Uint64()
		if local {
			h = kernel.Hash(near.Insns)
		}
		r.Allow = append(r.Allow, Allow{InsnHash: h, HasHash: true})
	}
	if rng.IntN(3) == 0 {
		m.Prov = genProvMatch(rng)
	}
	if m.describe() == "" {
		m.HelpersAny = []HelperMin{helperMin(14, 1)}
	}
	return r
}

// TestKernelAndGoEvaluatorsAgree runs the kernel evaluator (rules_eval.h in a
// BPF_PROG_TYPE_SYSCALL program, under BPF_PROG_RUN) and the Go evaluator on
// the same generated programs and rule sets, and requires the same facts
// and the same verdict for every rule.
func TestKernelAndGoEvaluatorsAgree(t *testing.T) {
	testutils.RequireRoot(t, "BPF_PROG_RUN of the rule evaluator harness")
	h, err := kernel.NewHarness()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	cases := 1500
	if testing.Short() {
		cases = 200
	}
	opts := &analysis.Options{Kfuncs: noKfuncs{}}
	var matched, unmatched, blocks int
	for c := range cases {
		rng := rand.New(rand.NewPCG(uint64(c), 0x5eed))
		prog := genProgram(rng, c)
		rep := analysis.Analyze(prog, opts)
		set := &Set{}
		for i := range 1 + rng.IntN(min(kernel.MaxRules, 160)) { // past 64: the bitmap's second word and on
			near, nearRep := prog, rep
			if rng.IntN(4) == 0 { // rules made for another program
				near = genProgram(rng, -1)
				nearRep = analysis.Analyze(near, opts)
			}
			set.Rules = append(set.Rules, genRule(rng, i, near, nearRep))
		}
		comp := compile(set, true)
		for _, p := range comp.Placements {
			if !p.Kernel {
				t.Fatalf("case %d: generated rule %s not compiled: %s", c, p.ID, p.Reason)
			}
		}
		if err := h.SetTable(&comp.Table); err != nil {
			t.Fatal(err)
		}
		want := Facts(prog)
		out, err := h.Run(&want, prog.Insns)
		if err != nil {
			t.Fatalf("case %d: %v", c, err)
		}
		if out.Facts != want {
			t.Fatalf("case %d: kernel facts differ from Go's:\nkernel %+v\ngo     %+v", c, out.Facts, want)
		}

		in := newInput(prog, rep)
		first, firstBlock := int32(-1), int32(-1)
		var action kernel.Action
		for i, r := range set.Rules {
			_, goMatch := r.eval(in)
			kMatch := out.Result.Matched[i/64]&(1<<(i%64)) != 0
			if goMatch != kMatch {
				t.Fatalf("case %d (%s, name %q, type %d, attach type %d, %d insns, comm %q, uid %d, hash %#x): rule %d %s: Go says %v, kernel says %v\nrule: %s allow %+v\nkernel rule: %+v\nhelpers: %+v",
					c, prog.Origin, prog.Name, prog.Type, prog.ExpectedAttachType, prog.InsnCnt, prog.Loader.Comm, prog.Loader.UID, want.InsnHash,
					i, r.ID, goMatch, kMatch, r.Match.describe(), r.Allow, comp.Table.Rules[i], rep.Helpers)
			}
			if goMatch {
				matched++
				ka := kernel.ActionAlert
				if r.Action == ActionBlock {
					ka = kernel.ActionBlock
					blocks++
					if firstBlock < 0 {
						firstBlock = int32(i)
					}
				}
				if first < 0 {
					first = int32(i)
				}
				action = max(action, ka)
			} else {
				unmatched++
			}
		}
		if out.Result.First != first || out.Result.FirstBlock != firstBlock || out.Result.Action != action {
			t.Fatalf("case %d: kernel result %+v, Go first=%d first_block=%d action=%d", c, out.Result, first, firstBlock, action)
		}
	}
	t.Logf("%d cases: %d rule matches (%d block), %d misses, all agreed", cases, matched, blocks, unmatched)
	// A generator that never (or always) matches would prove nothing.
	if matched < cases || unmatched < cases {
		t.Fatalf("generator is lopsided: %d matches, %d misses over %d cases", matched, unmatched, cases)
	}
}
