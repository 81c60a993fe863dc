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

// Append appends the text of one instruction, without index or newline:
// the opcode byte, then the form of its family (kernel_alu.go,
// kernel_jump.go, kernel_ldst.go), as the kernel's disasm.c prints it.
// A form that has to say "BUG" replaces the "(xx) " prefix.
func (f *KernelFormatter) Append(dst []byte, ins Instruction) []byte {
	code := ins.Code
	dst = append(dst, '(', hexDigit(code>>4), hexDigit(code&15), ')', ' ')
	modern := f.Dialect == DialectKernel
	switch Class(code) {
	case ClassALU, ClassALU64:
		return appendALU(dst, ins, modern)
	case ClassSTX:
		return appendSTX(dst, ins, modern)
	case ClassST:
		return appendST(dst, ins, modern)
	case ClassLDX:
		return appendLDX(dst, ins, modern)
	case ClassLD:
		return f.appendLD(dst, ins)
	default: // ClassJMP, ClassJMP32
		return f.appendJump(dst, ins, modern)
	}
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
