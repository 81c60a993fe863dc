package cfg

import (
	"fmt"
	"sort"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// EdgeKind says why control flows along an edge.
type EdgeKind uint8

const (
	EdgeFallthrough EdgeKind = iota // the next block, no jump involved
	EdgeTrue                        // a conditional jump taken
	EdgeFalse                       // a conditional jump not taken
	EdgeJump                        // an unconditional jump (ja, gotol)
	EdgeCall                        // a bpf-to-bpf call, to the callee's entry block
	EdgeExit                        // exit: to the sub-program's exit
)

func (k EdgeKind) String() string {
	switch k {
	case EdgeFallthrough:
		return "fallthrough"
	case EdgeTrue:
		return "true"
	case EdgeFalse:
		return "false"
	case EdgeJump:
		return "jump"
	case EdgeCall:
		return "call"
	case EdgeExit:
		return "exit"
	}
	return fmt.Sprintf("EdgeKind(%d)", uint8(k))
}

// Exit is the To of an EdgeExit: the sub-program's exit, not a block.
const Exit = -1

// Graph is the control-flow graph of one program.
type Graph struct {
	Insns  []insn.Instruction // the decoded program, in order
	Funcs  []Func
	Blocks []Block // in instruction order; Block.ID is the index here
	Edges  []Edge
	// Problems lists what does not fit a well-formed program (jumps out
	// of range or into the middle of an ld_imm64); the graph is built
	// around them.
	Problems []string
	// slotToInsn maps a slot index to its position in Insns (-1 for the
	// second slot of an ld_imm64).
	slotToInsn []int32
}

// Func is one sub-program: the main program (ID 0) or a bpf-to-bpf callee
// or callback.
type Func struct {
	ID     int
	Start  int   // slot index of its first instruction
	Blocks []int // block ids, in instruction order
}

// Block is a basic block: First..Last are positions in Graph.Insns.
type Block struct {
	ID          int
	Func        int
	First, Last int
}

// Edge is one edge between blocks (To is Exit for EdgeExit). At is the
// slot index of the instruction that makes it (the jump, the call, the
// exit, or the block's last instruction for a fall-through).
type Edge struct {
	From, To int
	Kind     EdgeKind
	At       int
}

// Options tune Build.
type Options struct {
	// Translated: the program is the kernel's translated form (bpftool
	// prog dump xlated), where a bpf-to-bpf call keeps its offset in off
	// (imm numbers the callee) and ld_imm64 of a function holds an address.
	Translated bool
}

// Start is the slot index of the block's first instruction.
func (g *Graph) Start(b Block) int { return g.Insns[b.First].Index }

// End is the slot index of the block's last instruction.
func (g *Graph) End(b Block) int { return g.Insns[b.Last].Index }

// BlockAt is the block holding slot index slot, or -1.
func (g *Graph) BlockAt(slot int) int {
	i := g.insnAt(slot)
	if i < 0 {
		return -1
	}
	n := sort.Search(len(g.Blocks), func(j int) bool { return g.Blocks[j].Last >= i })
	if n == len(g.Blocks) {
		return -1
	}
	return n
}

// insnAt is the position in Insns of the instruction starting at slot, or -1.
func (g *Graph) insnAt(slot int) int {
	if slot < 0 || slot >= len(g.slotToInsn) {
		return -1
	}
	return int(g.slotToInsn[slot])
}

// jumpTarget is the slot a jump at in goes to.
func jumpTarget(in insn.Instruction) int {
	if in.Kind() == insn.KindGotol {
		return in.Index + 1 + int(in.Imm)
	}
	return in.Index + 1 + int(in.Off)
}

// callTarget is the slot a bpf-to-bpf call (or an ld_imm64 of a function)
// at in refers to; ok is false when the form holds no offset.
func callTarget(in insn.Instruction, translated bool) (int, bool) {
	switch {
	case in.Code == insn.ClassJMP|insn.JmpCALL && in.Src == insn.PseudoCall:
		if translated {
			return in.Index + 1 + int(in.Off), true
		}
		return in.Index + 1 + int(in.Imm), true
	case in.Wide && in.Code == insn.OpLdImm64 && in.Src == insn.PseudoFunc && !translated:
		return in.Index + 1 + int(in.Imm), true
	}
	return 0, false
}

// Build computes the graph of ins (as insn.Decode returns them). It never
// fails: whatever is malformed is listed in Graph.Problems.
func Build(ins []insn.Instruction, opts Options) *Graph {
	g := &Graph{Insns: ins}
	if len(ins) == 0 {
		return g
	}
	last := ins[len(ins)-1]
	nslots := last.Index + last.Slots()
	g.slotToInsn = make([]int32, nslots)
	for i := range g.slotToInsn {
		g.slotToInsn[i] = -1
	}
	for i, in := range ins {
		if in.Index >= 0 && in.Index < nslots {
			g.slotToInsn[in.Index] = int32(i)
		}
	}
	problem := func(format string, a ...any) { g.Problems = append(g.Problems, fmt.Sprintf(format, a...)) }

	// Sub-program starts and block leaders, as positions in ins.
	funcStart := map[int]bool{0: true}
	leader := make([]bool, len(ins)+1)
	leader[0] = true
	for i, in := range ins {
		if t, ok := callTarget(in, opts.Translated); ok {
			if p := g.insnAt(t); p >= 0 {
				funcStart[p] = true
				leader[p] = true
			} else {
				problem("insn %d: call target %d is not the start of an instruction", in.Index, t)
			}
		}
		k := in.Kind()
		switch {
		case k.IsJump():
			t := jumpTarget(in)
			if p := g.insnAt(t); p >= 0 {
				leader[p] = true
			} else {
				problem("insn %d: jump target %d is not the start of an instruction", in.Index, t)
			}
			leader[i+1] = true
		case k == insn.KindExit:
			leader[i+1] = true
		}
	}
	starts := make([]int, 0, len(funcStart))
	for p := range funcStart {
		starts = append(starts, p)
	}
	sort.Ints(starts)
	for id, p := range starts {
		g.Funcs = append(g.Funcs, Func{ID: id, Start: ins[p].Index})
	}

	// Blocks.
	fn := -1
	for i := 0; i < len(ins); {
		if fn+1 < len(starts) && starts[fn+1] == i {
			fn++
		}
		j := i
		for j+1 < len(ins) && !leader[j+1] {
			j++
		}
		b := Block{ID: len(g.Blocks), Func: fn, First: i, Last: j}
		g.Blocks = append(g.Blocks, b)
		g.Funcs[fn].Blocks = append(g.Funcs[fn].Blocks, b.ID)
		i = j + 1
	}

	// Edges.
	for _, b := range g.Blocks {
		in := ins[b.Last]
		next := -1
		if b.ID+1 < len(g.Blocks) && g.Blocks[b.ID+1].Func == b.Func {
			next = b.ID + 1
		}
		k := in.Kind()
		switch {
		case k == insn.KindExit:
			g.Edges = append(g.Edges, Edge{From: b.ID, To: Exit, Kind: EdgeExit, At: in.Index})
		case k == insn.KindJa || k == insn.KindGotol:
			if t := g.BlockAt(jumpTarget(in)); t >= 0 {
				g.Edges = append(g.Edges, Edge{From: b.ID, To: t, Kind: EdgeJump, At: in.Index})
			}
		case k.IsJump():
			if t := g.BlockAt(jumpTarget(in)); t >= 0 {
				g.Edges = append(g.Edges, Edge{From: b.ID, To: t, Kind: EdgeTrue, At: in.Index})
			}
			if next >= 0 {
				g.Edges = append(g.Edges, Edge{From: b.ID, To: next, Kind: EdgeFalse, At: in.Index})
			} else {
				problem("insn %d: conditional jump falls off the end of its sub-program", in.Index)
			}
		default:
			if next >= 0 {
				g.Edges = append(g.Edges, Edge{From: b.ID, To: next, Kind: EdgeFallthrough, At: in.Index})
			} else {
				problem("insn %d: the last instruction of sub-program %d is not an exit or a jump", in.Index, b.Func)
			}
		}
	}
	// Call edges, from the block holding the call to the callee's entry.
	for _, b := range g.Blocks {
		for i := b.First; i <= b.Last; i++ {
			in := ins[i]
			if in.Code != insn.ClassJMP|insn.JmpCALL {
				continue
			}
			if t, ok := callTarget(in, opts.Translated); ok {
				if tb := g.BlockAt(t); tb >= 0 {
					g.Edges = append(g.Edges, Edge{From: b.ID, To: tb, Kind: EdgeCall, At: in.Index})
				}
			}
		}
	}
	return g
}
