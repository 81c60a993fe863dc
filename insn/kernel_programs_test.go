package insn

// Instruction streams built field by field for the privileged tests: each
// program covers one family of instructions and is written so that this
// kernel's verifier accepts it.

import (
	"testing"

	"github.com/cilium/ebpf/btf"
)

type testProg struct {
	slots   []Slot
	funcs   []testFunc // BTF functions, needed when the program has callbacks
	fdArray []int32    // BPF_PROG_LOAD fd_array, for map-index ld_imm64
}

// testFunc is a function start for the program's BTF func_info.
type testFunc struct {
	insn int
	fn   *btf.Func
}

// fn marks the next slot as the start of a function with a BTF prototype of
// the given parameters, all u64 except the ones named "ctx" (void *).
func (p *testProg) fn(name string, params ...string) *testProg {
	long := &btf.Int{Name: "long", Size: 8, Encoding: btf.Signed}
	proto := &btf.FuncProto{Return: long}
	for _, n := range params {
		var typ btf.Type = &btf.Int{Name: "unsigned long", Size: 8}
		if n == "ctx" {
			typ = &btf.Pointer{Target: &btf.Void{}}
		}
		proto.Params = append(proto.Params, btf.FuncParam{Name: n, Type: typ})
	}
	linkage := btf.StaticFunc
	if len(p.funcs) == 0 {
		linkage = btf.GlobalFunc
	}
	p.funcs = append(p.funcs, testFunc{insn: len(p.slots), fn: &btf.Func{Name: name, Type: proto, Linkage: linkage}})
	return p
}

func (p *testProg) op(code, dst, src uint8, off int16, imm int32) *testProg {
	p.slots = append(p.slots, Slot{Code: code, Dst: dst, Src: src, Off: off, Imm: imm})
	return p
}

func (p *testProg) ld64(dst, src uint8, lo, hi int32) *testProg {
	p.op(OpLdImm64, dst, src, 0, lo)
	return p.op(0, 0, 0, 0, hi)
}

func (p *testProg) movImm(dst uint8, imm int32) *testProg {
	return p.op(ClassALU64|AluMOV|SrcK, dst, 0, 0, imm)
}

func (p *testProg) exit0() *testProg {
	p.movImm(R0, 0)
	return p.op(ClassJMP|JmpEXIT, 0, 0, 0, 0)
}

func (p *testProg) call(id int32) *testProg { return p.op(ClassJMP|JmpCALL, 0, 0, 0, id) }

func (p *testProg) bytes() []byte {
	var b []byte
	for _, s := range p.slots {
		b = s.Append(b)
	}
	return b
}

// len is the next slot index, for computing jump offsets.
func (p *testProg) len() int { return len(p.slots) }

type kernelTestProg struct {
	name     string
	progType uint32
	flags    uint32
	build    func(t *testing.T, kn *kernelNames) *testProg
}

var aluOps = []uint8{AluADD, AluSUB, AluMUL, AluDIV, AluOR, AluAND, AluLSH, AluRSH, AluMOD, AluXOR, AluMOV, AluARSH}

var jmpOps = []uint8{JmpJEQ, JmpJGT, JmpJGE, JmpJSET, JmpJNE, JmpJSGT, JmpJSGE, JmpJLT, JmpJLE, JmpJSLT, JmpJSLE}

func kernelTestProgs() []kernelTestProg {
	return []kernelTestProg{
		{"alu", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			p := &testProg{}
			for r := uint8(0); r <= 9; r++ {
				p.movImm(r, int32(r)+1)
			}
			p.op(ClassALU|AluMOV|SrcK, 1, 0, 0, -7)
			for _, op := range aluOps {
				p.op(ClassALU64|op|SrcK, 2, 0, 0, 3)
				p.op(ClassALU|op|SrcK, 3, 0, 0, 3)
				p.op(ClassALU64|op|SrcX, 4, 5, 0, 0)
				p.op(ClassALU|op|SrcX, 6, 7, 0, 0)
			}
			p.op(ClassALU64|AluNEG, 2, 0, 0, 0)
			p.op(ClassALU|AluNEG, 3, 0, 0, 0)
			for _, op := range []uint8{AluDIV, AluMOD} { // sdiv, smod
				p.op(ClassALU64|op|SrcK, 2, 0, 1, -3)
				p.op(ClassALU|op|SrcK, 3, 0, 1, 5)
				p.op(ClassALU64|op|SrcX, 4, 8, 1, 0)
				p.op(ClassALU|op|SrcX, 6, 9, 1, 0)
			}
			for _, off := range []int16{8, 16, 32} { // movsx
				p.op(ClassALU64|AluMOV|SrcX, 2, 3, off, 0)
			}
			p.op(ClassALU|AluMOV|SrcX, 4, 5, 8, 0)
			p.op(ClassALU|AluMOV|SrcX, 4, 5, 16, 0)
			for _, w := range []int32{16, 32, 64} {
				p.op(ClassALU|AluEND|SrcK, 2, 0, 0, w)   // le
				p.op(ClassALU|AluEND|SrcX, 3, 0, 0, w)   // be
				p.op(ClassALU64|AluEND|SrcK, 4, 0, 0, w) // bswap
			}
			p.movImm(5, -2147483648)
			p.op(ClassALU64|AluADD|SrcK, 5, 0, 0, 2147483647)
			return p.exit0()
		}},
		{"jumps", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			p := &testProg{}
			for _, op := range jmpOps {
				for _, cls := range []uint8{ClassJMP, ClassJMP32} {
					// Fresh unknown values (bpf_get_prandom_u32) for every
					// pair, so both branches are explored and the verifier's
					// state pruning keeps the paths from multiplying.
					p.call(7)
					p.op(ClassALU64|AluMOV|SrcX, 8, 0, 0, 0)
					p.call(7)
					p.op(cls|op|SrcK, R0, 0, 1, -5)
					p.movImm(9, 1)
					p.op(cls|op|SrcX, R0, 8, 1, 0)
					p.movImm(9, 2)
				}
			}
			// Unconditional jumps over an instruction that a conditional
			// jump keeps reachable.
			p.call(7)
			p.op(ClassALU64|AluMOV|SrcX, 6, 0, 0, 0)
			p.op(ClassJMP|JmpJEQ|SrcK, 6, 0, 1, 1)
			p.op(ClassJMP|JmpJA, 0, 0, 1, 0)
			p.movImm(9, 3)
			p.op(ClassJMP|JmpJEQ|SrcK, 6, 0, 1, 2)
			p.op(ClassJMP32|JmpJA, 0, 0, 0, 1) // gotol
			p.movImm(9, 4)
			p.op(ClassJMP|JmpJCOND, 0, MayGoto, 1, 0)
			p.movImm(9, 5)
			p.op(ClassJMP|JmpJEQ|SrcK, 6, 0, 0, 0x7fffffff) // goto pc+0
			return p.exit0()
		}},
		{"memory", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			p := &testProg{}
			p.movImm(2, 5)
			sizes := []uint8{SizeDW, SizeW, SizeH, SizeB}
			offs := []int16{-8, -16, -24, -32}
			for i, sz := range sizes {
				p.op(ClassST|ModeMEM|sz, R10, 0, offs[i], -1)
				p.op(ClassSTX|ModeMEM|sz, R10, 2, offs[i], 0)
				p.op(ClassLDX|ModeMEM|sz, 3, R10, offs[i], 0)
			}
			for i, sz := range sizes[1:] {
				p.op(ClassLDX|ModeMEMSX|sz, 4, R10, offs[i+1], 0)
			}
			p.movImm(R0, 0)
			for _, sz := range []uint8{SizeDW, SizeW} {
				off := int16(-8)
				if sz == SizeW {
					off = -16
				}
				for _, imm := range []int32{AtomicADD, AtomicOR, AtomicAND, AtomicXOR,
					AtomicADD | AtomicFETCH, AtomicOR | AtomicFETCH, AtomicAND | AtomicFETCH, AtomicXOR | AtomicFETCH,
					AtomicXCHG, AtomicCMPXCHG} {
					p.op(ClassSTX|ModeATOMIC|sz, R10, 2, off, imm)
					p.movImm(2, 5)
				}
			}
			for i, sz := range sizes {
				p.op(ClassSTX|ModeATOMIC|sz, 3, R10, offs[i], AtomicLoadAcq)
				p.op(ClassSTX|ModeATOMIC|sz, R10, 2, offs[i], AtomicStoreRel)
			}
			return p.exit0()
		}},
		{"skb_loads", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			p := &testProg{}
			p.op(ClassALU64|AluMOV|SrcX, 6, 1, 0, 0)
			p.movImm(7, 0)
			for _, sz := range []uint8{SizeB, SizeH, SizeW} {
				p.op(ClassLD|ModeABS|sz, 0, 0, 0, 12)
				p.op(ClassLD|ModeIND|sz, 0, 7, 0, 2)
			}
			return p.exit0()
		}},
		{"calls", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			hash := int32(createMap(t, mapTypeArray, 4, 8, 4))
			single := int32(createMap(t, mapTypeArray, 4, 8, 1))
			progs := int32(createMap(t, mapTypeProgArray, 4, 4, 2))
			p := (&testProg{}).fn("calls", "ctx")
			p.op(ClassALU64|AluMOV|SrcX, 6, 1, 0, 0)
			p.call(7) // bpf_get_prandom_u32
			p.call(5) // bpf_ktime_get_ns
			p.call(8) // bpf_get_smp_processor_id
			// map lookup with a key on the stack
			p.op(ClassST|ModeMEM|SizeW, R10, 0, -4, 0)
			p.op(ClassALU64|AluMOV|SrcX, 2, R10, 0, 0)
			p.op(ClassALU64|AluADD|SrcK, 2, 0, 0, -4)
			p.ld64(1, PseudoMapFD, hash, 0)
			p.call(1) // bpf_map_lookup_elem
			// direct map value access
			p.ld64(1, PseudoMapValue, single, 4)
			p.op(ClassLDX|ModeMEM|SizeW, 3, 1, 0, 0)
			// a bpf-to-bpf call, its target placed after the exit below
			callAt := p.len()
			p.op(ClassJMP|JmpCALL, 0, PseudoCall, 0, 0)
			// bpf_loop with a callback given by ld_imm64 of a function
			p.movImm(1, 3)
			loopAt := p.len()
			p.ld64(2, PseudoFunc, 0, 0)
			p.movImm(3, 0)
			p.movImm(4, 0)
			p.call(181) // bpf_loop
			// tail call
			p.op(ClassALU64|AluMOV|SrcX, 1, 6, 0, 0)
			p.ld64(2, PseudoMapFD, progs, 0)
			p.movImm(3, 0)
			p.call(12) // bpf_tail_call
			p.exit0()
			sub := p.len()
			p.slots[callAt].Imm = int32(sub - callAt - 1)
			p.fn("sub", "a", "b", "c", "d")
			p.movImm(R0, 1)
			p.op(ClassJMP|JmpEXIT, 0, 0, 0, 0)
			cb := p.len()
			p.slots[loopAt].Imm = int32(cb - loopAt - 1)
			p.fn("cb", "index", "ctx")
			return p.exit0()
		}},
		{"long", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			// Past 1000 and 10000 instructions, where bpftool's index
			// column stops padding.
			p := &testProg{}
			p.movImm(R0, 0)
			for i := range 10100 {
				p.op(ClassALU64|AluADD|SrcK, R0, 0, 0, int32(i%7))
			}
			return p.op(ClassJMP|JmpEXIT, 0, 0, 0, 0)
		}},
		{"map_index", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			// ld_imm64 naming maps by index into fd_array (pseudo
			// sources 5 and 6), as light skeletons load them.
			p := &testProg{fdArray: []int32{
				int32(createMap(t, mapTypeArray, 4, 8, 4)),
				int32(createMap(t, mapTypeArray, 4, 16, 1)),
			}}
			p.op(ClassST|ModeMEM|SizeW, R10, 0, -4, 0)
			p.op(ClassALU64|AluMOV|SrcX, 2, R10, 0, 0)
			p.op(ClassALU64|AluADD|SrcK, 2, 0, 0, -4)
			p.ld64(1, PseudoMapIdx, 0, 0)
			p.call(1) // bpf_map_lookup_elem
			p.ld64(1, PseudoMapIdxValue, 1, 8)
			p.op(ClassLDX|ModeMEM|SizeDW, 3, 1, 0, 0)
			return p.exit0()
		}},
		{"ksym_func", progTypeSocketFilter, 0, func(t *testing.T, kn *kernelNames) *testProg {
			// ld_imm64 of a kernel function's address by BTF id (pseudo
			// source 3); this kernel lists no data symbols in kallsyms,
			// so a BTF variable cannot be used.
			p := &testProg{}
			p.ld64(1, PseudoBTFID, kn.btfID(t, "bpf_get_current_pid_tgid"), 0)
			return p.exit0()
		}},
		{"arena", progTypeSocketFilter, 0, func(t *testing.T, _ *kernelNames) *testProg {
			// addr_space_cast needs the program to use an arena map.
			arena := int32(createMapFlags(t, mapTypeArena, 0, 0, 1, mapFlagMmapable, 1<<32))
			p := &testProg{}
			p.ld64(1, PseudoMapFD, arena, 0)
			p.movImm(2, 0)
			p.op(ClassALU64|AluMOV|SrcX, 3, 2, 1, 1)
			p.op(ClassALU64|AluMOV|SrcX, 4, 2, 1, 1<<16)
			return p.exit0()
		}},
		{"kfuncs", progTypeSocketFilter, 0, func(t *testing.T, kn *kernelNames) *testProg {
			p := &testProg{}
			p.op(ClassJMP|JmpCALL, 0, PseudoKfuncCall, 0, kn.btfID(t, "bpf_rcu_read_lock"))
			p.op(ClassJMP|JmpCALL, 0, PseudoKfuncCall, 0, kn.btfID(t, "bpf_rcu_read_unlock"))
			return p.exit0()
		}},
	}
}
