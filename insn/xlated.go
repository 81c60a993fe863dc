package insn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// Kallsyms maps kernel addresses to symbol names, read from /proc/kallsyms.
// Translated (xlated) programs call helpers and kfuncs by address, relative
// to the kernel symbol __bpf_call_base, and sub-programs through their JITed
// images; bpftool names all three from kallsyms.
type Kallsyms struct {
	byAddr   map[uint64]string
	callBase uint64
}

// ReadKallsyms parses /proc/kallsyms text ("ffffffff81000000 T _stext
// [module]"). The first symbol listed at an address wins. Addresses read as
// zero (kptr_restrict) are kept but useless; CallBase then reports false.
func ReadKallsyms(r io.Reader) (*Kallsyms, error) {
	ks := &Kallsyms{byAddr: make(map[uint64]string, 1<<16)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		f := bytes.Fields(sc.Bytes())
		if len(f) < 3 {
			continue
		}
		addr, err := strconv.ParseUint(string(f[0]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms line %d: address %q: %w", line, f[0], err)
		}
		name := string(f[2])
		if _, dup := ks.byAddr[addr]; !dup {
			ks.byAddr[addr] = name
		}
		if name == "__bpf_call_base" {
			ks.callBase = addr
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kallsyms line %d: %w", line+1, err)
	}
	return ks, nil
}

// Name returns the symbol at exactly addr.
func (k *Kallsyms) Name(addr uint64) (string, bool) {
	if k == nil || addr == 0 {
		return "", false
	}
	s, ok := k.byAddr[addr]
	return s, ok
}

// CallBase returns the address of __bpf_call_base, the origin of helper and
// kfunc call immediates in translated programs.
func (k *Kallsyms) CallBase() (uint64, bool) {
	if k == nil || k.callBase == 0 {
		return 0, false
	}
	return k.callBase, true
}

// BpftoolXlated returns a formatter that prints translated instructions
// (BPF_OBJ_GET_INFO_BY_FD's xlated_prog_insns) exactly as
// "bpftool prog dump xlated" does: helpers and kfuncs named from ks by
// address, sub-program calls as "pc+N#<symbol of the JITed sub-program>"
// (jitedKsyms are the program's jited_ksyms; without them "pc+N"), and
// map references as "map[id:N]" and "map[id:N][0]+OFF". helperName, when not
// nil, is consulted first, as bpftool's own compiled-in helper table is.
func BpftoolXlated(ks *Kallsyms, jitedKsyms []uint64, helperName func(int32) string, d Dialect) *KernelFormatter {
	base, _ := ks.CallBase()
	return &KernelFormatter{
		Dialect:    d,
		HelperName: helperName,
		CallName: func(ins Instruction) string {
			addr := base + uint64(int64(ins.Imm))
			if ins.Src == PseudoCall && ins.Imm >= 0 && int(ins.Imm) < len(jitedKsyms) {
				addr = jitedKsyms[ins.Imm]
			}
			name, found := ks.Name(addr)
			if ins.Src == PseudoCall {
				// The translated form keeps the relative offset in off and
				// the sub-program number in imm.
				s := string(appendSigned(nil, int64(ins.Off)))
				switch {
				case len(jitedKsyms) == 0:
					return s
				case found:
					return s + "#" + name
				default:
					return s + "#0x" + strconv.FormatUint(addr, 16)
				}
			}
			if found {
				return name
			}
			return "0x" + strconv.FormatUint(addr, 16)
		},
		Imm64Text: func(ins Instruction, imm uint64) string {
			switch ins.Src {
			case PseudoMapFD:
				return "map[id:" + strconv.FormatUint(uint64(uint32(ins.Imm)), 10) + "]"
			case PseudoMapValue:
				return "map[id:" + strconv.FormatUint(uint64(uint32(ins.Imm)), 10) + "][0]+" + strconv.FormatUint(uint64(uint32(ins.Next.Imm)), 10)
			case PseudoMapIdxValue:
				return "map[idx:" + strconv.FormatUint(uint64(uint32(ins.Imm)), 10) + "]+" + strconv.FormatUint(uint64(uint32(ins.Next.Imm)), 10)
			case PseudoFunc:
				return "subprog[" + string(appendSigned(nil, int64(ins.Imm))) + "]"
			}
			return ""
		},
	}
}
