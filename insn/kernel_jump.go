package insn

import "strconv"

// Tables as in disasm.c; a missing entry prints "(null)" there because the
// kernel's vsnprintf renders a NULL %s that way.
var jmpStrings = [16]string{"jmp", "==", ">", ">=", "&", "!=", "s>", "s>=", "call", "exit", "<", "<=", "s<", "s<=", "(null)", "(null)"}

// appendJump formats the JMP and JMP32 classes: calls, gotos, may_goto,
// exit and the conditional jumps.
func (f *KernelFormatter) appendJump(dst []byte, ins Instruction, modern bool) []byte {
	code := ins.Code
	cls := Class(code)
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
