package analysis

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Helper ids the analysis treats specially.
const (
	helperTracePrintk = 6
	helperTailCall    = 12
	helperSeqPrintf   = 126
	helperSnprintf    = 165
	helperTraceVprint = 177
)

// Options tune Analyze. The zero value (or nil) is ready to use.
type Options struct {
	// HelperName names a helper id; nil uses DefaultHelperName.
	HelperName func(id int32) string
	// Kfuncs resolves kfunc BTF ids; nil uses the running kernel's BTF
	// (vmlinux and modules), loaded once per process on first need.
	Kfuncs KfuncResolver
	// MinString is the shortest stack-built or compared string reported;
	// 0 means 4. Format strings are reported whatever their length.
	MinString int
	// Kallsyms names the call targets of translated programs (Source
	// kernel, e.g. "bpftool prog dump xlated"), whose helper and kfunc calls
	// hold kernel address offsets instead of ids. nil leaves them unnamed.
	Kallsyms *insn.Kallsyms
}

// Translated reports whether p holds the kernel's translated (xlated) form,
// where calls carry addresses and sub-program calls keep their offset in off.
func Translated(p *program.Program) bool { return p.Source == program.SourceKernel }

// callTarget is the slot a bpf-to-bpf call at in jumps to: imm+1 ahead in
// submitted programs, off+1 ahead in translated ones (imm then numbers the
// sub-program).
func callTarget(in insn.Instruction, translated bool) int {
	if translated {
		return in.Index + int(in.Off) + 1
	}
	return in.Index + int(in.Imm) + 1
}

// xlatedHelper names a translated helper call from its address: the kernel
// function's name, and the helper id when that function is the helper's own
// implementation (bpf_get_current_pid_tgid); inlined or specialised ones
// (__htab_map_lookup_elem) keep the raw imm as id.
func xlatedHelper(ks *insn.Kallsyms, imm int32) (int32, string) {
	if imm == helperTailCall { // the kernel dumps tail calls with their id
		return imm, DefaultHelperName(imm)
	}
	base, ok := ks.CallBase()
	if !ok {
		return imm, "helper#" + strconv.FormatInt(int64(imm), 10)
	}
	name, ok := ks.Name(base + uint64(int64(imm)))
	if !ok {
		return imm, "helper#" + strconv.FormatInt(int64(imm), 10)
	}
	if id, ok := helper.Default().ID(name); ok {
		return id, DefaultHelperName(id)
	}
	return imm, name
}

// GPLCompatible reports whether the kernel treats license as GPL-compatible
// (include/linux/license.h: an exact match against this list).
func GPLCompatible(license string) bool {
	switch license {
	case "GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL", "Dual MPL/GPL":
		return true
	}
	return false
}

// Analyze derives the Report of p. It never fails: what cannot be decoded is
// listed in Report.Problems and the rest is analysed.
func Analyze(p *program.Program, opts *Options) *Report {
	ins, probs := p.Decode()
	return AnalyzeDecoded(p, ins, probs, opts)
}

// MaxProblems is how many decode problems a Report lists; the rest are
// counted in Report.ProblemsDropped, so that a dump of garbage costs memory
// in proportion to its size, not to the text of a message per slot.
const MaxProblems = 100

// AnalyzeDecoded is Analyze for a caller that already decoded p (ins and
// probs from p.Decode()), so that a large program is decoded once.
func AnalyzeDecoded(p *program.Program, ins []insn.Instruction, probs []insn.Problem, opts *Options) *Report {
	if opts == nil {
		opts = &Options{}
	}
	helperName := opts.HelperName
	if helperName == nil {
		helperName = DefaultHelperName
	}
	r := &Report{
		InsnCount: len(p.Insns) / insn.Size,
		License:   p.License,
		GPL:       GPLCompatible(p.License),
		ProgType:  ProgTypeName(p.Type),
		Helpers:   []HelperUse{},
	}
	for _, pr := range probs[:min(len(probs), MaxProblems)] {
		r.Problems = append(r.Problems, pr.Error())
	}
	r.ProblemsDropped = max(0, len(probs)-MaxProblems)
	r.SHA256 = Fingerprint(ins)

	helpers := map[int32]*HelperUse{}
	kfuncs := map[string]*KfuncUse{}
	// A map is one entry per name, or per (kind of reference, fd) when it
	// has no name; the value is its index in r.Maps.
	type mapKey struct {
		name string
		src  uint8
		imm  int32
	}
	maps := make(map[mapKey]int, len(p.Maps))
	r.Maps = make([]MapUse, 0, len(p.Maps)) // raw dumps list every fd they use
	subprogs := map[int]bool{}
	var kfuncOrder []string
	idx := newMapIndex(p)

	translated := Translated(p)
	externs := map[program.Ref]*ExternUse{}
	for i, in := range ins {
		if ref, ok := p.Refs[in.Index]; ok && isExtern(ref.Kind) {
			// Values and functions the loader patches in or links: a
			// kconfig value, a kernel symbol's address, an extern function.
			key := program.Ref{Kind: ref.Kind, Name: ref.Name}
			e := externs[key]
			if e == nil {
				e = &ExternUse{Kind: string(ref.Kind), Name: ref.Name}
				externs[key] = e
			}
			e.At = append(e.At, in.Index)
			if ref.Kind == program.RefExtern {
				continue // not a call into this program, whatever its encoding
			}
		}
		switch {
		case in.Code == insn.ClassJMP|insn.JmpCALL:
			switch in.Src {
			case 0:
				id, name := in.Imm, ""
				if translated && opts.Kallsyms != nil {
					id, name = xlatedHelper(opts.Kallsyms, in.Imm)
				}
				h := helpers[id]
				if h == nil {
					if name == "" {
						name = helperName(id)
					}
					h = &HelperUse{ID: id, Name: name}
					helpers[id] = h
				}
				h.Count++
				h.At = append(h.At, in.Index)
				if id == helperTailCall {
					r.TailCalls = append(r.TailCalls, in.Index)
					r.TailCallSites = append(r.TailCallSites, tailCallSite(p, idx, ins, i))
				}
			case insn.PseudoCall:
				target := callTarget(in, translated)
				subprogs[target] = true
				c := SubprogCall{At: in.Index, Target: target}
				if ref, ok := p.Refs[in.Index]; ok && ref.Kind == program.RefFunc {
					c.Name = ref.Name
				}
				r.SubprogCalls = append(r.SubprogCalls, c)
			case insn.PseudoKfuncCall:
				name := ""
				if ref, ok := p.Refs[in.Index]; ok && ref.Kind == program.RefKfunc {
					name = ref.Name
				} else if translated {
					name = "kfunc#" + strconv.FormatInt(int64(in.Imm), 10)
					if base, ok := opts.Kallsyms.CallBase(); ok {
						if n, ok := opts.Kallsyms.Name(base + uint64(int64(in.Imm))); ok {
							name = n
						}
					}
				} else {
					name = resolveKfunc(opts.Kfuncs, in.Imm, in.Off)
				}
				key := fmt.Sprintf("%d/%d/%s", in.Imm, in.Off, name)
				k := kfuncs[key]
				if k == nil {
					k = &KfuncUse{BTFID: in.Imm, Name: name}
					kfuncs[key] = k
					kfuncOrder = append(kfuncOrder, key)
				}
				k.Count++
				k.At = append(k.At, in.Index)
			}
		case in.Wide && in.Code == insn.OpLdImm64:
			switch in.Src {
			case insn.PseudoFunc:
				if !translated { // translated: imm holds an address
					subprogs[in.Index+int(in.Imm)+1] = true
				}
			case insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue:
				mu := idx.use(p, in)
				key := mapKey{name: mu.Name}
				if key.name == "" {
					key.src, key.imm = in.Src, in.Imm
				}
				if m, ok := maps[key]; ok {
					r.Maps[m].At = append(r.Maps[m].At, in.Index)
				} else {
					mu.At = []int{in.Index}
					maps[key] = len(r.Maps)
					r.Maps = append(r.Maps, mu)
				}
			}
		}
	}

	for _, h := range helpers {
		r.Helpers = append(r.Helpers, *h)
	}
	sort.Slice(r.Helpers, func(i, j int) bool { return r.Helpers[i].ID < r.Helpers[j].ID })
	for _, k := range kfuncOrder {
		r.Kfuncs = append(r.Kfuncs, *kfuncs[k])
	}
	for _, e := range externs {
		r.Externs = append(r.Externs, *e)
	}
	sort.Slice(r.Externs, func(i, j int) bool { return r.Externs[i].At[0] < r.Externs[j].At[0] })
	for s := range subprogs {
		r.Subprogs = append(r.Subprogs, s)
	}
	sort.Ints(r.Subprogs)
	r.Strings = Strings(p, ins, opts.MinString)
	return r
}

// mapIndex finds a program's maps by name and by fd in constant time, so
// that a program referencing many distinct maps costs linear time.
type mapIndex struct {
	byName map[string]program.Map // first map of each name
	byFD   map[int32]program.Map  // first map of each fd that has a name or type
}

func newMapIndex(p *program.Program) *mapIndex {
	x := &mapIndex{byName: map[string]program.Map{}, byFD: map[int32]program.Map{}}
	for _, m := range p.Maps {
		if _, ok := x.byName[m.Name]; !ok {
			x.byName[m.Name] = m
		}
		if m.Name != "" || m.Type != 0 {
			if _, ok := x.byFD[m.FD]; !ok {
				x.byFD[m.FD] = m
			}
		}
	}
	return x
}

// use describes the map an ld_imm64 refers to: by name and type from ELF
// relocations, else by the fd (or fd_array index) in its imm.
func (x *mapIndex) use(p *program.Program, in insn.Instruction) MapUse {
	if ref, ok := p.Refs[in.Index]; ok && (ref.Kind == program.RefMap || ref.Kind == program.RefData) {
		mu := MapUse{Name: ref.Name}
		if m, ok := x.byName[ref.Name]; ok {
			mu.Type = MapTypeName(m.Type)
			mu.TailCalls = m.TailCalls
		}
		return mu
	}
	mu := MapUse{FD: in.Imm}
	if in.Src == insn.PseudoMapIdx || in.Src == insn.PseudoMapIdxValue {
		mu.FD = 0
		mu.Index = in.Imm
		mu.ByIndex = true
	}
	if m, ok := x.byFD[in.Imm]; ok {
		mu.Name = m.Name
		if m.Type != 0 {
			mu.Type = MapTypeName(m.Type)
		}
		mu.TailCalls = m.TailCalls
	}
	return mu
}

// tailCallSite finds the prog-array map a bpf_tail_call at ins[i] uses by
// walking back from the call to the last write of r2 (following register
// copies). It looks at straight-line code only, so a map chosen on another
// path is not seen.
func tailCallSite(p *program.Program, idx *mapIndex, ins []insn.Instruction, i int) TailCall {
	tc := TailCall{At: ins[i].Index}
	reg := uint8(2)
	for j := i - 1; j >= 0 && j >= i-64; j-- {
		in := ins[j]
		if isJumpOrExit(in.Code) {
			if in.Code&0xf0 == insn.JmpCALL && insn.Class(in.Code) == insn.ClassJMP && reg > 5 {
				continue // calls clobber r0-r5 only
			}
			return tc
		}
		if !writesReg(in, reg) {
			continue
		}
		if in.Wide && in.Code == insn.OpLdImm64 && in.Src == insn.PseudoMapFD {
			mu := idx.use(p, in)
			tc.Map = mu.Name
			tc.MapFD = mu.FD
			tc.MapAt = in.Index
			tc.Known = true
			return tc
		}
		if in.Code == insn.ClassALU64|insn.AluMOV|insn.SrcX && in.Off == 0 {
			reg = in.Src
			continue
		}
		return tc
	}
	return tc
}

func isJumpOrExit(code uint8) bool {
	c := insn.Class(code)
	return c == insn.ClassJMP || c == insn.ClassJMP32
}

// writesReg reports whether in writes register reg (conservatively: loads,
// ALU ops and calls, which clobber r0-r5).
func writesReg(in insn.Instruction, reg uint8) bool {
	switch insn.Class(in.Code) {
	case insn.ClassALU, insn.ClassALU64, insn.ClassLDX:
		return in.Dst == reg
	case insn.ClassLD:
		if in.Code == insn.OpLdImm64 {
			return in.Dst == reg
		}
		return reg == 0 // ld_abs/ld_ind write r0
	case insn.ClassSTX:
		// Atomic fetch variants write back to src (or r0 for cmpxchg).
		if in.Code&0xe0 == insn.ModeATOMIC && in.Imm&insn.AtomicFETCH != 0 {
			if in.Imm == insn.AtomicCMPXCHG {
				return reg == 0
			}
			return in.Src == reg
		}
		if in.Code&0xe0 == insn.ModeATOMIC && in.Imm == insn.AtomicLoadAcq {
			return in.Dst == reg
		}
	case insn.ClassJMP:
		if in.Code&0xf0 == insn.JmpCALL {
			return reg <= 5
		}
	}
	return false
}

func isExtern(k program.RefKind) bool {
	return k == program.RefKconfig || k == program.RefKsym || k == program.RefExtern
}
