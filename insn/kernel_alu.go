package insn

import "strconv"

// Tables as in disasm.c; a missing entry prints "(null)" there because the
// kernel's vsnprintf renders a NULL %s that way.
var aluStrings = [16]string{"+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=", "neg", "%=", "^=", "=", "s>>=", "endian", "(null)", "(null)"}

// appendALU formats the ALU and ALU64 classes: arithmetic, moves (with the
// sign-extending and address-space casts), negation and byte swaps.
func appendALU(dst []byte, ins Instruction, modern bool) []byte {
	code := ins.Code
	cls := Class(code)
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
}
