package insn

import (
	"io"
	"strconv"
)

// Dialect selects which revision of the kernel's disasm.c the kernel text
// follows. The kernel and bpftool each compile their own copy, and they
// differ for instructions added after the older copy was taken.
type Dialect uint8

const (
	// DialectKernel is the text of current kernels (Linux 6.18 on the CI host):
	// the verifier log and bpftool builds from the same tree. It knows sdiv,
	// smod, movsx, sign-extending loads, bswap, gotol, may_goto,
	// addr_space_cast, per-CPU address moves, nospec and
	// load-acquire/store-release.
	DialectKernel Dialect = iota
	// DialectBpftool7 is the text of bpftool v7.1.0 (the Debian package on the
	// CI host), whose disasm.c predates the instructions listed above; it
	// prints them the way that older code falls through (e.g. "BUG_ldx_91",
	// "r1 = r2" for movsx). Use it to reproduce that bpftool's output.
	DialectBpftool7
)

// KernelFormatter renders instructions in the kernel's own text form, as
// print_bpf_insn in kernel/bpf/disasm.c prints it into the verifier log and
// bpftool prints it for "prog dump xlated":
//
//	(85) call bpf_get_current_pid_tgid#14
//	(18) r1 = map[id:42]
//	(bf) r1 = (s8)r2
//
// The zero value prints what disasm.c prints with no callbacks at all
// ("call unknown#14", "r1 = 0x5"). The three name hooks mirror disasm.c's
// struct bpf_insn_cbs; each may be nil, and each returns "" to fall back to
// the default text, so names can come from anywhere (the helper table, the
// kernel's BTF, an ELF's symbols, /proc/kallsyms).
type KernelFormatter struct {
	Dialect Dialect

	// HidePointers prints 0 for map-pointer ld_imm64 (pseudo sources 1 and
	// 2) like the kernel does for callers without CAP_PERFMON.
	HidePointers bool

	// HelperName names helper id (a call with src_reg 0), e.g.
	// "bpf_map_lookup_elem" for 1; "" if unknown. disasm.c consults its
	// compiled-in helper table before the Call hook.
	HelperName func(id int32) string

	// CallName names the target of a call HelperName did not name: kfunc
	// calls (src_reg 2, imm = BTF id), sub-program calls (src_reg 1; the
	// text follows "call pc", so it should begin with the sign of the
	// offset, e.g. "+5" or "+5#bpf_prog_…_f"), and helper calls in
	// translated programs whose imm is an address offset. "" falls back to
	// "unknown", "kernel-function" or the signed offset.
	CallName func(ins Instruction) string

	// Imm64Text renders the operand of an ld_imm64 (imm is the full 64-bit
	// constant, already zeroed when HidePointers applies), e.g.
	// "map[id:42]" for map references; "" falls back to "0x%x" of imm.
	Imm64Text func(ins Instruction, imm uint64) string
}

// Listing selects the line prefix of AppendListing.
type Listing uint8

const (
	// ListingVerifier prefixes "N: " like the verifier log.
	ListingVerifier Listing = iota
	// ListingBpftool prefixes the index right-aligned in four columns,
	// "   N: ", like "bpftool prog dump xlated".
	ListingBpftool
)

// FormatKernel renders one instruction in kernel form with no name hooks.
func FormatKernel(ins Instruction) string {
	var f KernelFormatter
	return f.Format(ins)
}

// String renders the instruction in kernel form with no name hooks, so
// that %v of an Instruction reads like the verifier log.
func (i Instruction) String() string { return FormatKernel(i) }

// Format renders one instruction, without index prefix or newline.
func (f *KernelFormatter) Format(ins Instruction) string {
	var buf [96]byte
	return string(f.Append(buf[:0], ins))
}

// AppendListing appends one line per instruction, each prefixed with its
// slot index as the Listing says and ending in a newline. The second slot of
// an ld_imm64 gets no line of its own, so indexes skip it, as in the kernel.
func (f *KernelFormatter) AppendListing(dst []byte, insns []Instruction, l Listing) []byte {
	for _, ins := range insns {
		if l == ListingBpftool {
			// printf("% 4d: "): the space flag puts a blank where a minus
			// sign would go, and the whole is right-aligned in 4 columns.
			dst = append(dst, "    "[:max(1, 4-digits(ins.Index))]...)
		}
		dst = strconv.AppendInt(dst, int64(ins.Index), 10)
		dst = append(dst, ':', ' ')
		dst = f.Append(dst, ins)
		dst = append(dst, '\n')
	}
	return dst
}

// WriteListing writes AppendListing's text to w in chunks, so that a
// million-instruction program needs no single giant buffer.
func (f *KernelFormatter) WriteListing(w io.Writer, insns []Instruction, l Listing) error {
	const chunk = 4096
	// Sized for the program: many small programs must not each cost 64 KiB.
	buf := make([]byte, 0, min(64*1024, 64*len(insns)))
	for len(insns) > 0 {
		n := min(chunk, len(insns))
		buf = f.AppendListing(buf[:0], insns[:n], l)
		if _, err := w.Write(buf); err != nil {
			return err
		}
		insns = insns[n:]
	}
	return nil
}

func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// Tables as in disasm.c; a missing entry prints "(null)" there because the
// kernel's vsnprintf renders a NULL %s that way.
var (
	aluStrings = [16]string{"+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=", "endian", "(null)", "(null)"}
	jmpStrings = [16]string{"jmp", "==", ">", ">=", "&", "!=", "s>", "s>=", "call", "exit", "<", "<=", "s<", "s<=", "(null)", "(null)"}
	ldstString = [4]string{"u32", "u16", "u8", "u64"}
	ldsxString = [4]string{"s32", "s16", "s8", "(null)"}
)

// Append appends the text of one instruction, without index or newline.
func (f *KernelFormatter) Append(dst []byte, ins Instruction) []byte {
	code := ins.Code
	dst = append(dst, '(', hexDigit(code>>4), hexDigit(code&15), ')', ' ')
	cls := Class(code)
	modern := f.Dialect == DialectKernel
	switch cls {
	case ClassALU, ClassALU64:
		r := byte('r')
		if cls == ClassALU {
			r = 'w'
		}
		op := Op(code)
		switch {
		case op == AluEND:
			if cls == ClassALU64 {
				if !modern {
					dst = append(dst[:len(dst)-5], "BUG_alu64_"...)
					return appendHex2(dst, code)
				}
				dst = appendReg(dst, 'r', ins.Dst)
				dst = append(dst, " = bswap"...)
				dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
				dst = append(dst, ' ')
				return appendReg(dst, 'r', ins.Dst)
			}
			dst = appendReg(dst, 'r', ins.Dst)
			if Source(code) == SrcX {
				dst = append(dst, " = be"...)
			} else {
				dst = append(dst, " = le"...)
			}
			dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			dst = append(dst, ' ')
			return appendReg(dst, 'r', ins.Dst)
		case op == AluNEG:
			dst = appendReg(dst, r, ins.Dst)
			dst = append(dst, " = -"...)
			return appendReg(dst, r, ins.Dst)
		case modern && code == ClassALU64|AluMOV|SrcX && ins.Off == 1:
			dst = appendReg(dst, 'r', ins.Dst)
			dst = append(dst, " = addr_space_cast("...)
			dst = appendReg(dst, 'r', ins.Src)
			dst = append(dst, ", "...)
			dst = strconv.AppendUint(dst, uint64(uint32(ins.Imm)>>16), 10)
			dst = append(dst, ", "...)
			dst = strconv.AppendUint(dst, uint64(uint16(ins.Imm)), 10)
			return append(dst, ')')
		case modern && code == ClassALU64|AluMOV|SrcX && ins.Off == -1:
			dst = appendReg(dst, 'r', ins.Dst)
			dst = append(dst, " = &(void __percpu *)("...)
			dst = appendReg(dst, 'r', ins.Src)
			return append(dst, ')')
		}
		dst = appendReg(dst, r, ins.Dst)
		dst = append(dst, ' ')
		switch {
		case modern && (op == AluDIV || op == AluMOD) && ins.Off == 1:
			if op == AluDIV {
				dst = append(dst, "s/="...)
			} else {
				dst = append(dst, "s%="...)
			}
		default:
			dst = append(dst, aluStrings[op>>4]...)
		}
		dst = append(dst, ' ')
		if Source(code) == SrcX {
			if modern && op == AluMOV {
				switch ins.Off {
				case 8:
					dst = append(dst, "(s8)"...)
				case 16:
					dst = append(dst, "(s16)"...)
				case 32:
					dst = append(dst, "(s32)"...)
				}
			}
			return appendReg(dst, r, ins.Src)
		}
		return strconv.AppendInt(dst, int64(ins.Imm), 10)

	case ClassSTX:
		size := ldstString[SizeOf(code)>>3]
		mode := Mode(code)
		switch {
		case mode == ModeMEM:
			dst = appendMem(dst, size, ins.Dst, ins.Off)
			dst = append(dst, " = "...)
			return appendReg(dst, 'r', ins.Src)
		case mode == ModeATOMIC && (ins.Imm == AtomicADD || ins.Imm == AtomicAND || ins.Imm == AtomicOR || ins.Imm == AtomicXOR):
			dst = append(dst, "lock "...)
			dst = appendMem(dst, size, ins.Dst, ins.Off)
			dst = append(dst, ' ')
			dst = append(dst, aluStrings[(ins.Imm&0xf0)>>4]...)
			dst = append(dst, ' ')
			return appendReg(dst, 'r', ins.Src)
		case mode == ModeATOMIC && (ins.Imm == AtomicADD|AtomicFETCH || ins.Imm == AtomicAND|AtomicFETCH ||
			ins.Imm == AtomicOR|AtomicFETCH || ins.Imm == AtomicXOR|AtomicFETCH):
			dst = appendReg(dst, 'r', ins.Src)
			dst = append(dst, " = atomic"...)
			if SizeOf(code) == SizeDW {
				dst = append(dst, "64"...)
			}
			dst = append(dst, "_fetch_"...)
			switch ins.Imm &^ AtomicFETCH {
			case AtomicADD:
				dst = append(dst, "add"...)
			case AtomicAND:
				dst = append(dst, "and"...)
			case AtomicOR:
				dst = append(dst, "or"...)
			default:
				dst = append(dst, "xor"...)
			}
			dst = append(dst, "(("...)
			dst = appendMemInner(dst, size, ins.Dst, ins.Off)
			dst = append(dst, ", "...)
			dst = appendReg(dst, 'r', ins.Src)
			return append(dst, ')')
		case mode == ModeATOMIC && ins.Imm == AtomicCMPXCHG:
			dst = append(dst, "r0 = atomic"...)
			if SizeOf(code) == SizeDW {
				dst = append(dst, "64"...)
			}
			dst = append(dst, "_cmpxchg(("...)
			dst = appendMemInner(dst, size, ins.Dst, ins.Off)
			dst = append(dst, ", r0, "...)
			dst = appendReg(dst, 'r', ins.Src)
			return append(dst, ')')
		case mode == ModeATOMIC && ins.Imm == AtomicXCHG:
			dst = appendReg(dst, 'r', ins.Src)
			dst = append(dst, " = atomic"...)
			if SizeOf(code) == SizeDW {
				dst = append(dst, "64"...)
			}
			dst = append(dst, "_xchg(("...)
			dst = appendMemInner(dst, size, ins.Dst, ins.Off)
			dst = append(dst, ", "...)
			dst = appendReg(dst, 'r', ins.Src)
			return append(dst, ')')
		case modern && mode == ModeATOMIC && ins.Imm == AtomicLoadAcq:
			dst = appendReg(dst, 'r', ins.Dst)
			dst = append(dst, " = load_acquire(("...)
			dst = appendMemInner(dst, size, ins.Src, ins.Off)
			return append(dst, ')')
		case modern && mode == ModeATOMIC && ins.Imm == AtomicStoreRel:
			dst = append(dst, "store_release(("...)
			dst = appendMemInner(dst, size, ins.Dst, ins.Off)
			dst = append(dst, ", "...)
			dst = appendReg(dst, 'r', ins.Src)
			return append(dst, ')')
		}
		dst = append(dst[:len(dst)-5], "BUG_"...)
		return appendHex2(dst, code)

	case ClassST:
		switch {
		case Mode(code) == ModeMEM:
			dst = appendMem(dst, ldstString[SizeOf(code)>>3], ins.Dst, ins.Off)
			dst = append(dst, " = "...)
			return strconv.AppendInt(dst, int64(ins.Imm), 10)
		case modern && Mode(code) == ModeATOMIC:
			return append(dst, "nospec"...)
		}
		dst = append(dst[:len(dst)-5], "BUG_st_"...)
		return appendHex2(dst, code)

	case ClassLDX:
		var size string
		switch {
		case Mode(code) == ModeMEM:
			size = ldstString[SizeOf(code)>>3]
		case modern && Mode(code) == ModeMEMSX:
			size = ldsxString[SizeOf(code)>>3]
		default:
			dst = append(dst[:len(dst)-5], "BUG_ldx_"...)
			return appendHex2(dst, code)
		}
		dst = appendReg(dst, 'r', ins.Dst)
		dst = append(dst, " = "...)
		return appendMem(dst, size, ins.Src, ins.Off)

	case ClassLD:
		size := ldstString[SizeOf(code)>>3]
		switch {
		case Mode(code) == ModeABS:
			dst = append(dst, "r0 = *("...)
			dst = append(dst, size...)
			dst = append(dst, " *)skb["...)
			dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			return append(dst, ']')
		case Mode(code) == ModeIND:
			dst = append(dst, "r0 = *("...)
			dst = append(dst, size...)
			dst = append(dst, " *)skb["...)
			dst = appendReg(dst, 'r', ins.Src)
			dst = append(dst, " + "...)
			dst = strconv.AppendInt(dst, int64(ins.Imm), 10)
			return append(dst, ']')
		case code == OpLdImm64:
			imm := uint64(ins.Imm64())
			if f.HidePointers && (ins.Src == PseudoMapFD || ins.Src == PseudoMapValue) {
				imm = 0
			}
			dst = appendReg(dst, 'r', ins.Dst)
			dst = append(dst, " = "...)
			if f.Imm64Text != nil {
				if s := f.Imm64Text(ins, imm); s != "" {
					return append(dst, s...)
				}
			}
			dst = append(dst, "0x"...)
			return strconv.AppendUint(dst, imm, 16)
		}
		dst = append(dst[:len(dst)-5], "BUG_ld_"...)
		return appendHex2(dst, code)

	default: // ClassJMP, ClassJMP32
		op := Op(code)
		switch {
		case op == JmpCALL:
			if ins.Src == PseudoCall {
				dst = append(dst, "call pc"...)
				return f.appendCallName(dst, ins)
			}
			dst = append(dst, "call "...)
			dst = f.appendCallName(dst, ins)
			dst = append(dst, '#')
			return strconv.AppendInt(dst, int64(ins.Imm), 10)
		case code == ClassJMP|JmpJA:
			dst = append(dst, "goto pc"...)
			return appendSigned(dst, int64(ins.Off))
		case modern && code == ClassJMP|JmpJCOND && ins.Src == MayGoto:
			dst = append(dst, "may_goto pc"...)
			return appendSigned(dst, int64(ins.Off))
		case modern && code == ClassJMP32|JmpJA:
			dst = append(dst, "gotol pc"...)
			return appendSigned(dst, int64(ins.Imm))
		case code == ClassJMP|JmpEXIT:
			return append(dst, "exit"...)
		}
		r := byte('r')
		if cls == ClassJMP32 {
			r = 'w'
		}
		dst = append(dst, "if "...)
		dst = appendReg(dst, r, ins.Dst)
		dst = append(dst, ' ')
		dst = append(dst, jmpStrings[op>>4]...)
		dst = append(dst, ' ')
		if Source(code) == SrcX {
			dst = appendReg(dst, r, ins.Src)
		} else {
			dst = append(dst, "0x"...)
			dst = strconv.AppendUint(dst, uint64(uint32(ins.Imm)), 16)
		}
		dst = append(dst, " goto pc"...)
		return appendSigned(dst, int64(ins.Off))
	}
}

// appendCallName follows disasm.c's __func_get_name.
func (f *KernelFormatter) appendCallName(dst []byte, ins Instruction) []byte {
	if ins.Src == 0 && ins.Imm >= 0 && f.HelperName != nil {
		if s := f.HelperName(ins.Imm); s != "" {
			return append(dst, s...)
		}
	}
	if f.CallName != nil {
		if s := f.CallName(ins); s != "" {
			return append(dst, s...)
		}
	}
	switch {
	case ins.Src == PseudoCall:
		return appendSigned(dst, int64(ins.Imm))
	case ins.Src == PseudoKfuncCall && f.Dialect == DialectKernel:
		return append(dst, "kernel-function"...)
	}
	return append(dst, "unknown"...)
}

func hexDigit(b uint8) byte { return "0123456789abcdef"[b&15] }

func appendHex2(dst []byte, b uint8) []byte { return append(dst, hexDigit(b>>4), hexDigit(b&15)) }

func appendReg(dst []byte, r byte, n uint8) []byte {
	if n < 10 {
		return append(dst, r, '0'+n)
	}
	// Decoded registers are nibbles; hand-built slots may hold anything.
	return strconv.AppendUint(append(dst, r), uint64(n), 10)
}

// appendSigned is C's "%+d".
func appendSigned(dst []byte, n int64) []byte {
	if n >= 0 {
		dst = append(dst, '+')
	}
	return strconv.AppendInt(dst, n, 10)
}

// appendMem appends "*(u32 *)(r1 -8)".
func appendMem(dst []byte, size string, reg uint8, off int16) []byte {
	dst = append(dst, "*("...)
	return appendMemInner(dst, size, reg, off)
}

// appendMemInner appends "u32 *)(r1 -8)", the part after the opening "(" of
// the cast, shared by plain accesses and atomics.
func appendMemInner(dst []byte, size string, reg uint8, off int16) []byte {
	dst = append(dst, size...)
	dst = append(dst, " *)("...)
	dst = appendReg(dst, 'r', reg)
	dst = append(dst, ' ')
	dst = appendSigned(dst, int64(off))
	return append(dst, ')')
}
