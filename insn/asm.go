package insn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/internal/suggest"
)

// AsmError is one thing wrong in macro text, at a 1-based line and byte column.
type AsmError struct {
	Line, Col int
	Msg       string
}

func (e *AsmError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// AsmErrors lists every error found in one text (up to a limit), in order.
type AsmErrors []*AsmError

func (es AsmErrors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// asmMaxErrors stops reporting after this many errors; the rest are usually
// consequences of the first ones.
const asmMaxErrors = 20

// Assembler turns filter.h macro text (as MacroFormatter prints it, or as
// written by hand in C) back into instructions.
//
// The text is a sequence of macro calls separated by commas, semicolons or
// whitespace, with C comments allowed. Arguments are constant expressions of
// numbers (decimal, 0x hex, 0 octal), the names filter.h and bpf.h define
// (BPF_REG_1, BPF_ADD, BPF_PSEUDO_MAP_FD, BPF_FUNC_map_lookup_elem, …) and the
// operators |, &, ^, <<, >>, +, -, ~ and parentheses, with C's precedence.
type Assembler struct {
	// Helpers resolves BPF_FUNC_ names; nil means helper.Default().
	Helpers *helper.Table
}

// Assemble assembles macro text into raw little-endian instruction bytes
// using the default helper table.
func Assemble(text string) ([]byte, error) {
	var a Assembler
	return a.Assemble(text)
}

// ParseMacros assembles macro text and decodes the result into instructions.
func ParseMacros(text string) ([]Instruction, error) {
	var a Assembler
	return a.Parse(text)
}

// Parse assembles text and decodes the bytes. Decoding problems (say, an
// invalid opcode written with BPF_RAW_INSN) are not errors: the text said
// exactly those bytes.
func (a *Assembler) Parse(text string) ([]Instruction, error) {
	raw, err := a.Assemble(text)
	if err != nil {
		return nil, err
	}
	insns, _ := Decode(raw)
	return insns, nil
}

// Assemble turns text into raw instruction bytes. On error it returns an
// AsmErrors naming line:column and what is wrong there.
func (a *Assembler) Assemble(text string) ([]byte, error) {
	p := asmParser{lex: asmLexer{src: text, line: 1, col: 1}, helpers: a.Helpers}
	if p.helpers == nil {
		p.helpers = helper.Default()
	}
	out := make([]byte, 0, len(text)/4)
	for !p.full() {
		tok := p.lex.next()
		switch tok.kind {
		case asmEOF:
			return out, p.result()
		case asmPunct:
			if tok.text == "," || tok.text == ";" {
				continue
			}
			p.errorf(tok.pos, "expected a BPF_ macro, found %q", tok.text)
			return out, p.result()
		case asmNumber:
			p.errorf(tok.pos, "expected a BPF_ macro, found the number %s", tok.text)
			return out, p.result()
		case asmBad:
			p.errorf(tok.pos, "%s", tok.text)
			return out, p.result()
		}
		var ok bool
		out, ok = p.macro(out, tok)
		if !ok {
			return out, p.result()
		}
	}
	return out, p.result()
}

type asmPos struct{ line, col int }

type asmTokKind uint8

const (
	asmEOF asmTokKind = iota
	asmIdent
	asmNumber
	asmPunct
	asmBad // text is the error message
)

type asmToken struct {
	kind asmTokKind
	text string
	pos  asmPos
}

type asmLexer struct {
	src       string
	off       int
	line, col int
	peeked    asmToken
	hasPeeked bool
}

// advance moves past n bytes, counting lines and (byte) columns.
func (l *asmLexer) advance(n int) {
	for i := l.off; i < l.off+n; i++ {
		if l.src[i] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
	}
	l.off += n
}

func (l *asmLexer) peek() asmToken {
	if !l.hasPeeked {
		l.peeked, l.hasPeeked = l.scan(), true
	}
	return l.peeked
}

func (l *asmLexer) next() asmToken {
	t := l.peek()
	l.hasPeeked = false
	return t
}

func (l *asmLexer) scan() asmToken {
	// Skip white space and comments.
	for l.off < len(l.src) {
		rest := l.src[l.off:]
		switch {
		case rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\n' || rest[0] == '\r':
			l.advance(1)
		case strings.HasPrefix(rest, "//"):
			n := strings.IndexByte(rest, '\n')
			if n < 0 {
				n = len(rest)
			}
			l.advance(n)
		case strings.HasPrefix(rest, "/*"):
			n := strings.Index(rest[2:], "*/")
			if n < 0 {
				pos := asmPos{l.line, l.col}
				l.advance(len(rest))
				return asmToken{kind: asmBad, text: "comment opened here is never closed", pos: pos}
			}
			l.advance(n + 4)
		default:
			goto token
		}
	}
	return asmToken{kind: asmEOF, pos: asmPos{l.line, l.col}}
token:
	pos := asmPos{l.line, l.col}
	rest := l.src[l.off:]
	c := rest[0]
	switch {
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		n := 1
		for n < len(rest) && asmIdentByte(rest[n]) {
			n++
		}
		l.advance(n)
		return asmToken{kind: asmIdent, text: rest[:n], pos: pos}
	case c >= '0' && c <= '9':
		n := 1
		for n < len(rest) && asmIdentByte(rest[n]) {
			n++
		}
		l.advance(n)
		return asmToken{kind: asmNumber, text: rest[:n], pos: pos}
	case strings.HasPrefix(rest, "<<") || strings.HasPrefix(rest, ">>"):
		l.advance(2)
		return asmToken{kind: asmPunct, text: rest[:2], pos: pos}
	case strings.IndexByte("(),;|&^+-~", c) >= 0:
		l.advance(1)
		return asmToken{kind: asmPunct, text: rest[:1], pos: pos}
	}
	l.advance(1)
	return asmToken{kind: asmBad, text: fmt.Sprintf("unexpected character %q", c), pos: pos}
}

func asmIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

type asmParser struct {
	lex     asmLexer
	helpers *helper.Table
	errs    AsmErrors
	// Reused for every macro: assembling allocates nothing per instruction.
	argBuf  [6]asmArg
	builder asmBuilder
	depth   int // nesting of the expression being parsed
}

func (p *asmParser) errorf(pos asmPos, format string, args ...any) {
	if len(p.errs) < asmMaxErrors {
		p.errs = append(p.errs, &AsmError{Line: pos.line, Col: pos.col, Msg: fmt.Sprintf(format, args...)})
	}
}

func (p *asmParser) full() bool { return len(p.errs) >= asmMaxErrors }

func (p *asmParser) result() error {
	if len(p.errs) == 0 {
		return nil
	}
	return p.errs
}

// asmArg is one evaluated macro argument and where it began.
type asmArg struct {
	val int64 // two's complement bits of the value (wraps like C's unsigned arithmetic)
	pos asmPos
}

// errAsmSyntax marks a syntax error already reported; the rest of the text
// cannot be trusted to line up, so assembly stops.
var errAsmSyntax = errors.New("syntax error")

// macro parses NAME(args…) whose name token was just read, appends its bytes
// to out and reports whether parsing can go on.
func (p *asmParser) macro(out []byte, name asmToken) ([]byte, bool) {
	def, known := asmMacros[name.text]
	open := p.lex.next()
	if open.text != "(" || open.kind != asmPunct {
		if !known {
			p.errorf(name.pos, "unknown macro %s%s", name.text, asmSuggest(name.text))
		} else {
			p.errorf(open.pos, "expected ( after %s", name.text)
		}
		return out, false
	}
	args := p.argBuf[:0]
	if t := p.lex.peek(); t.kind == asmPunct && t.text == ")" {
		p.lex.next()
	} else {
		for {
			start := p.lex.peek().pos
			v, err := p.expr()
			if err != nil {
				// Skip to this macro's closing parenthesis so that the
				// following lines still get checked.
				return out, p.skipArgs()
			}
			args = append(args, asmArg{val: v, pos: start})
			t := p.lex.next()
			if t.kind == asmPunct && t.text == ")" {
				break
			}
			if t.kind != asmPunct || t.text != "," {
				p.errorf(t.pos, "expected , or ) in the arguments of %s, found %s", name.text, asmDescribe(t))
				return out, false
			}
		}
	}
	if !known {
		p.errorf(name.pos, "unknown macro %s%s", name.text, asmSuggest(name.text))
		return out, true
	}
	if len(args) != len(def.params) {
		p.errorf(name.pos, "%s takes %d arguments (%s), got %d", name.text, len(def.params), asmParamList(def.params), len(args))
		return out, true
	}
	b := &p.builder
	*b = asmBuilder{p: p, name: name.text, def: def, args: args}
	slots := def.build(b)
	if b.failed {
		return out, true
	}
	for _, s := range slots.s[:slots.n] {
		out = s.Append(out)
	}
	return out, true
}

// skipArgs consumes tokens up to the parenthesis closing the current macro
// call, after an error inside it, and reports whether one was found.
func (p *asmParser) skipArgs() bool {
	depth := 1
	for {
		t := p.lex.peek()
		switch {
		case t.kind == asmEOF:
			return false
		case t.kind == asmPunct && t.text == "(":
			depth++
		case t.kind == asmPunct && t.text == ")":
			depth--
			if depth == 0 {
				p.lex.next()
				return true
			}
		}
		p.lex.next()
	}
}

func asmDescribe(t asmToken) string {
	switch t.kind {
	case asmEOF:
		return "end of text"
	case asmBad:
		return t.text
	}
	return strconv.Quote(t.text)
}

// Expression grammar, C precedence from loosest: | ^ & (<< >>) (+ -) unary.
var asmBinaryLevels = [][]string{{"|"}, {"^"}, {"&"}, {"<<", ">>"}, {"+", "-"}}

func (p *asmParser) expr() (int64, error) { return p.binary(0) }

func (p *asmParser) binary(level int) (int64, error) {
	if level == len(asmBinaryLevels) {
		return p.unary()
	}
	v, err := p.binary(level + 1)
	if err != nil {
		return 0, err
	}
	for {
		t := p.lex.peek()
		if t.kind != asmPunct || !asmIn(t.text, asmBinaryLevels[level]) {
			return v, nil
		}
		p.lex.next()
		w, err := p.binary(level + 1)
		if err != nil {
			return 0, err
		}
		switch t.text {
		case "|":
			v |= w
		case "^":
			v ^= w
		case "&":
			v &= w
		case "+":
			v += w
		case "-":
			v -= w
		case "<<", ">>":
			if w < 0 || w > 63 {
				p.errorf(t.pos, "shift count %d out of range 0..63", w)
				return 0, errAsmSyntax
			}
			if t.text == "<<" {
				v <<= uint(w)
			} else {
				v = int64(uint64(v) >> uint(w))
			}
		}
	}
}

func asmIn(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// asmMaxDepth bounds parentheses and unary operators nested in one argument,
// so that hostile text cannot exhaust the stack.
const asmMaxDepth = 100

func (p *asmParser) unary() (int64, error) {
	t := p.lex.next()
	if t.kind == asmPunct && strings.Contains("-+~(", t.text) {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > asmMaxDepth {
			p.errorf(t.pos, "expression nested more than %d deep", asmMaxDepth)
			return 0, errAsmSyntax
		}
	}
	switch t.kind {
	case asmPunct:
		switch t.text {
		case "-", "+", "~":
			v, err := p.unary()
			switch t.text {
			case "-":
				v = -v
			case "~":
				v = ^v
			}
			return v, err
		case "(":
			v, err := p.expr()
			if err != nil {
				return 0, err
			}
			if c := p.lex.next(); c.kind != asmPunct || c.text != ")" {
				p.errorf(c.pos, "expected ), found %s", asmDescribe(c))
				return 0, errAsmSyntax
			}
			return v, nil
		}
	case asmNumber:
		u, err := strconv.ParseUint(t.text, 0, 64)
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				p.errorf(t.pos, "number %s does not fit in 64 bits", t.text)
			} else {
				p.errorf(t.pos, "malformed number %s", t.text)
			}
			return 0, errAsmSyntax
		}
		return int64(u), nil
	case asmIdent:
		if v, ok := asmConstants[t.text]; ok {
			return v, nil
		}
		if strings.HasPrefix(t.text, "BPF_FUNC_") {
			if id, ok := p.helpers.ID(t.text); ok {
				return int64(id), nil
			}
			hint := ""
			if n, ok := p.helpers.Nearest(t.text); ok {
				hint = ", did you mean BPF_FUNC_" + strings.TrimPrefix(n, "bpf_") + "?"
			}
			p.errorf(t.pos, "unknown helper %s (helper table: %s)%s", t.text, p.helpers.Source(), hint)
			return 0, errAsmSyntax
		}
		if _, ok := asmMacros[t.text]; ok {
			p.errorf(t.pos, "macro %s used as an argument (missing ) before it?)", t.text)
			return 0, errAsmSyntax
		}
		p.errorf(t.pos, "unknown name %s%s", t.text, asmSuggestConst(t.text))
		return 0, errAsmSyntax
	}
	p.errorf(t.pos, "expected a number or a name, found %s", asmDescribe(t))
	return 0, errAsmSyntax
}

// Parameter kinds: what an argument must be and how it is range-checked.
type asmParam uint8

const (
	asmReg     asmParam = iota // register 0..15 (BPF_REG_n; the field has 4 bits)
	asmSize                    // BPF_W, BPF_H, BPF_B, BPF_DW
	asmAluOp                   // BPF_ADD … (high nibble of an ALU opcode)
	asmJmpOp                   // BPF_JEQ …
	asmSrcType                 // BPF_K / BPF_X (also BPF_TO_LE / BPF_TO_BE)
	asmOff                     // 16-bit offset
	asmImm                     // 32-bit immediate
	asmImm64                   // 64-bit immediate
	asmCode                    // 8-bit opcode
	asmPseudo                  // src_reg of ld_imm64 or call: 0..15
)

var asmParamNames = [...]string{
	asmReg: "register", asmSize: "size", asmAluOp: "ALU operation", asmJmpOp: "jump operation",
	asmSrcType: "source type", asmOff: "offset", asmImm: "immediate", asmImm64: "64-bit immediate",
	asmCode: "opcode", asmPseudo: "source register",
}

type asmMacro struct {
	params []asmParam
	names  []string // parameter names as filter.h writes them, for messages
	build  func(b *asmBuilder) asmSlots
}

func asmParamList(ps []asmParam) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = asmParamNames[p]
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// asmBuilder hands a macro's checked arguments to its build function.
type asmBuilder struct {
	p      *asmParser
	name   string
	def    asmMacro
	args   []asmArg
	failed bool
}

func (b *asmBuilder) bad(i int, format string, args ...any) {
	b.failed = true
	b.p.errorf(b.args[i].pos, "%s argument %d (%s): %s", b.name, i+1, b.def.names[i], fmt.Sprintf(format, args...))
}

// reg, u8, off, imm and imm64 return argument i checked against its field.
func (b *asmBuilder) reg(i int) uint8 {
	v := b.args[i].val
	if v < 0 || v > 15 {
		b.bad(i, "%d is not a register (BPF_REG_0..BPF_REG_10; the field holds 0..15)", v)
		return 0
	}
	return uint8(v)
}

func (b *asmBuilder) code(i int) uint8 {
	v := b.args[i].val
	if v < 0 || v > 0xff {
		b.bad(i, "%d does not fit in the 8-bit opcode", v)
		return 0
	}
	return uint8(v)
}

func (b *asmBuilder) off(i int) int16 {
	v := b.args[i].val
	if v < -1<<15 || v > 1<<16-1 {
		b.bad(i, "%d does not fit in the 16-bit offset", v)
		return 0
	}
	return int16(v)
}

func (b *asmBuilder) imm(i int) int32 {
	v := b.args[i].val
	if v < -1<<31 || v > 1<<32-1 {
		b.bad(i, "%d does not fit in the 32-bit immediate", v)
		return 0
	}
	return int32(v)
}

func (b *asmBuilder) imm64(i int) int64 { return b.args[i].val }

func (b *asmBuilder) size(i int) uint8 {
	v := b.args[i].val
	if v != SizeW && v != SizeH && v != SizeB && v != SizeDW {
		b.bad(i, "%d is not a size (BPF_W, BPF_H, BPF_B or BPF_DW)", v)
		return 0
	}
	return uint8(v)
}

func (b *asmBuilder) op(i int) uint8 {
	v := b.args[i].val
	if v < 0 || v > 0xf0 || v&0x0f != 0 {
		b.bad(i, "%#x is not an operation (BPF_ADD, BPF_JEQ, …: a multiple of 0x10 up to 0xf0)", v)
		return 0
	}
	return uint8(v)
}

func (b *asmBuilder) srcType(i int) uint8 {
	v := b.args[i].val
	if v != SrcK && v != SrcX {
		b.bad(i, "%d is not a source type (BPF_K or BPF_X, BPF_TO_LE or BPF_TO_BE)", v)
		return 0
	}
	return uint8(v)
}

// asmLdImm64 builds the two slots of an ld_imm64.
func asmLdImm64(dst, src uint8, off1, off2 int16, imm1, imm2 int32) asmSlots {
	return asmSlots{n: 2, s: [2]Slot{
		{Code: OpLdImm64, Dst: dst, Src: src, Off: off1, Imm: imm1},
		{Off: off2, Imm: imm2},
	}}
}

func asmOne(s Slot) asmSlots { return asmSlots{n: 1, s: [2]Slot{s}} }

// asmSlots is what one macro builds: one slot, or two for an ld_imm64 (a
// value, not a slice, to spare an allocation per instruction).
type asmSlots struct {
	s [2]Slot
	n int
}

func asmMacroDef(names string, build func(b *asmBuilder) asmSlots, params ...asmParam) asmMacro {
	var ns []string
	if names != "" {
		ns = strings.Split(names, ",")
	}
	if len(ns) != len(params) {
		panic("insn: macro table: names and params differ for " + names)
	}
	return asmMacro{params: params, names: ns, build: build}
}

// asmMacros is every macro the assembler knows, from include/linux/filter.h
// and tools/include/linux/filter.h.
var asmMacros = map[string]asmMacro{}

func init() {
	alu := func(cls uint8, src uint8, withOff bool) func(b *asmBuilder) asmSlots {
		return func(b *asmBuilder) asmSlots {
			s := Slot{Code: cls | b.op(0) | src, Dst: b.reg(1)}
			if src == SrcX {
				s.Src = b.reg(2)
			} else {
				s.Imm = b.imm(2)
			}
			if withOff {
				s.Off = b.off(3)
			}
			return asmOne(s)
		}
	}
	for _, w := range []struct {
		width string
		cls   uint8
	}{{"64", ClassALU64}, {"32", ClassALU}} {
		cls := w.cls
		asmMacros["BPF_ALU"+w.width+"_REG"] = asmMacroDef("OP,DST,SRC", alu(cls, SrcX, false), asmAluOp, asmReg, asmReg)
		asmMacros["BPF_ALU"+w.width+"_REG_OFF"] = asmMacroDef("OP,DST,SRC,OFF", alu(cls, SrcX, true), asmAluOp, asmReg, asmReg, asmOff)
		asmMacros["BPF_ALU"+w.width+"_IMM"] = asmMacroDef("OP,DST,IMM", alu(cls, SrcK, false), asmAluOp, asmReg, asmImm)
		asmMacros["BPF_ALU"+w.width+"_IMM_OFF"] = asmMacroDef("OP,DST,IMM,OFF", alu(cls, SrcK, true), asmAluOp, asmReg, asmImm, asmOff)
		asmMacros["BPF_MOV"+w.width+"_REG"] = asmMacroDef("DST,SRC", func(b *asmBuilder) asmSlots {
			return asmOne(Slot{Code: cls | AluMOV | SrcX, Dst: b.reg(0), Src: b.reg(1)})
		}, asmReg, asmReg)
		asmMacros["BPF_MOV"+w.width+"_IMM"] = asmMacroDef("DST,IMM", func(b *asmBuilder) asmSlots {
			return asmOne(Slot{Code: cls | AluMOV | SrcK, Dst: b.reg(0), Imm: b.imm(1)})
		}, asmReg, asmImm)
		asmMacros["BPF_MOVSX"+w.width+"_REG"] = asmMacroDef("DST,SRC,OFF", func(b *asmBuilder) asmSlots {
			return asmOne(Slot{Code: cls | AluMOV | SrcX, Dst: b.reg(0), Src: b.reg(1), Off: b.off(2)})
		}, asmReg, asmReg, asmOff)
		asmMacros["BPF_MOV"+w.width+"_RAW"] = asmMacroDef("TYPE,DST,SRC,IMM", func(b *asmBuilder) asmSlots {
			return asmOne(Slot{Code: cls | AluMOV | b.srcType(0), Dst: b.reg(1), Src: b.reg(2), Imm: b.imm(3)})
		}, asmSrcType, asmReg, asmReg, asmImm)
	}
	asmMacros["BPF_ENDIAN"] = asmMacroDef("TYPE,DST,LEN", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassALU | AluEND | b.srcType(0), Dst: b.reg(1), Imm: b.imm(2)})
	}, asmSrcType, asmReg, asmImm)
	asmMacros["BPF_BSWAP"] = asmMacroDef("DST,LEN", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassALU64 | AluEND | SrcK, Dst: b.reg(0), Imm: b.imm(1)})
	}, asmReg, asmImm)
	asmMacros["BPF_ZEXT_REG"] = asmMacroDef("DST", func(b *asmBuilder) asmSlots {
		r := b.reg(0)
		return asmOne(Slot{Code: ClassALU | AluMOV | SrcX, Dst: r, Src: r, Imm: 1})
	}, asmReg)

	asmMacros["BPF_LD_IMM64"] = asmMacroDef("DST,IMM", func(b *asmBuilder) asmSlots {
		v := b.imm64(1)
		return asmLdImm64(b.reg(0), 0, 0, 0, int32(v), int32(uint64(v)>>32))
	}, asmReg, asmImm64)
	asmMacros["BPF_LD_IMM64_RAW"] = asmMacroDef("DST,SRC,IMM", func(b *asmBuilder) asmSlots {
		v := b.imm64(2)
		return asmLdImm64(b.reg(0), b.reg(1), 0, 0, int32(v), int32(uint64(v)>>32))
	}, asmReg, asmPseudo, asmImm64)
	asmMacros["BPF_LD_IMM64_RAW_FULL"] = asmMacroDef("DST,SRC,OFF1,OFF2,IMM1,IMM2", func(b *asmBuilder) asmSlots {
		return asmLdImm64(b.reg(0), b.reg(1), b.off(2), b.off(3), b.imm(4), b.imm(5))
	}, asmReg, asmPseudo, asmOff, asmOff, asmImm, asmImm)
	asmMacros["BPF_LD_MAP_FD"] = asmMacroDef("DST,MAP_FD", func(b *asmBuilder) asmSlots {
		return asmLdImm64(b.reg(0), PseudoMapFD, 0, 0, b.imm(1), 0)
	}, asmReg, asmImm)
	asmMacros["BPF_LD_MAP_VALUE"] = asmMacroDef("DST,MAP_FD,VALUE_OFF", func(b *asmBuilder) asmSlots {
		return asmLdImm64(b.reg(0), PseudoMapValue, 0, 0, b.imm(1), b.imm(2))
	}, asmReg, asmImm, asmImm)
	asmMacros["BPF_LD_ABS"] = asmMacroDef("SIZE,IMM", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassLD | b.size(0) | ModeABS, Imm: b.imm(1)})
	}, asmSize, asmImm)
	asmMacros["BPF_LD_IND"] = asmMacroDef("SIZE,SRC,IMM", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassLD | b.size(0) | ModeIND, Src: b.reg(1), Imm: b.imm(2)})
	}, asmSize, asmReg, asmImm)
	mem := func(cls, mode uint8) func(b *asmBuilder) asmSlots {
		return func(b *asmBuilder) asmSlots {
			return asmOne(Slot{Code: cls | b.size(0) | mode, Dst: b.reg(1), Src: b.reg(2), Off: b.off(3)})
		}
	}
	asmMacros["BPF_LDX_MEM"] = asmMacroDef("SIZE,DST,SRC,OFF", mem(ClassLDX, ModeMEM), asmSize, asmReg, asmReg, asmOff)
	asmMacros["BPF_LDX_MEMSX"] = asmMacroDef("SIZE,DST,SRC,OFF", mem(ClassLDX, ModeMEMSX), asmSize, asmReg, asmReg, asmOff)
	asmMacros["BPF_STX_MEM"] = asmMacroDef("SIZE,DST,SRC,OFF", mem(ClassSTX, ModeMEM), asmSize, asmReg, asmReg, asmOff)
	asmMacros["BPF_STX_XADD"] = asmMacroDef("SIZE,DST,SRC,OFF", mem(ClassSTX, ModeATOMIC), asmSize, asmReg, asmReg, asmOff)
	asmMacros["BPF_ATOMIC_OP"] = asmMacroDef("SIZE,OP,DST,SRC,OFF", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassSTX | b.size(0) | ModeATOMIC, Imm: b.imm(1), Dst: b.reg(2), Src: b.reg(3), Off: b.off(4)})
	}, asmSize, asmImm, asmReg, asmReg, asmOff)
	asmMacros["BPF_ST_MEM"] = asmMacroDef("SIZE,DST,OFF,IMM", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassST | b.size(0) | ModeMEM, Dst: b.reg(1), Off: b.off(2), Imm: b.imm(3)})
	}, asmSize, asmReg, asmOff, asmImm)
	asmMacros["BPF_ST_NOSPEC"] = asmMacroDef("", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassST | ModeATOMIC})
	})

	jmp := func(cls, src uint8) func(b *asmBuilder) asmSlots {
		return func(b *asmBuilder) asmSlots {
			s := Slot{Code: cls | b.op(0) | src, Dst: b.reg(1), Off: b.off(3)}
			if src == SrcX {
				s.Src = b.reg(2)
			} else {
				s.Imm = b.imm(2)
			}
			return asmOne(s)
		}
	}
	asmMacros["BPF_JMP_REG"] = asmMacroDef("OP,DST,SRC,OFF", jmp(ClassJMP, SrcX), asmJmpOp, asmReg, asmReg, asmOff)
	asmMacros["BPF_JMP_IMM"] = asmMacroDef("OP,DST,IMM,OFF", jmp(ClassJMP, SrcK), asmJmpOp, asmReg, asmImm, asmOff)
	asmMacros["BPF_JMP32_REG"] = asmMacroDef("OP,DST,SRC,OFF", jmp(ClassJMP32, SrcX), asmJmpOp, asmReg, asmReg, asmOff)
	asmMacros["BPF_JMP32_IMM"] = asmMacroDef("OP,DST,IMM,OFF", jmp(ClassJMP32, SrcK), asmJmpOp, asmReg, asmImm, asmOff)
	asmMacros["BPF_JMP_A"] = asmMacroDef("OFF", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassJMP | JmpJA, Off: b.off(0)})
	}, asmOff)
	asmMacros["BPF_JMP32_A"] = asmMacroDef("IMM", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassJMP32 | JmpJA, Imm: b.imm(0)})
	}, asmImm)
	asmMacros["BPF_CALL_REL"] = asmMacroDef("TGT", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassJMP | JmpCALL, Src: PseudoCall, Imm: b.imm(0)})
	}, asmImm)
	asmMacros["BPF_EMIT_CALL"] = asmMacroDef("FUNC", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassJMP | JmpCALL, Imm: b.imm(0)})
	}, asmImm)
	asmMacros["BPF_EXIT_INSN"] = asmMacroDef("", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: ClassJMP | JmpEXIT})
	})
	asmMacros["BPF_RAW_INSN"] = asmMacroDef("CODE,DST,SRC,OFF,IMM", func(b *asmBuilder) asmSlots {
		return asmOne(Slot{Code: b.code(0), Dst: b.reg(1), Src: b.reg(2), Off: b.off(3), Imm: b.imm(4)})
	}, asmCode, asmReg, asmPseudo, asmOff, asmImm)
}

// asmConstants are the names filter.h, bpf_common.h and bpf.h give the
// fields of an instruction.
var asmConstants = map[string]int64{
	"BPF_LD": ClassLD, "BPF_LDX": ClassLDX, "BPF_ST": ClassST, "BPF_STX": ClassSTX,
	"BPF_ALU": ClassALU, "BPF_JMP": ClassJMP, "BPF_JMP32": ClassJMP32, "BPF_ALU64": ClassALU64,

	"BPF_W": SizeW, "BPF_H": SizeH, "BPF_B": SizeB, "BPF_DW": SizeDW,

	"BPF_IMM": ModeIMM, "BPF_ABS": ModeABS, "BPF_IND": ModeIND, "BPF_MEM": ModeMEM,
	"BPF_MEMSX": ModeMEMSX, "BPF_ATOMIC": ModeATOMIC, "BPF_XADD": ModeATOMIC,

	"BPF_K": SrcK, "BPF_X": SrcX,
	"BPF_TO_LE": SrcK, "BPF_TO_BE": SrcX, "BPF_FROM_LE": SrcK, "BPF_FROM_BE": SrcX,

	"BPF_ADD": AluADD, "BPF_SUB": AluSUB, "BPF_MUL": AluMUL, "BPF_DIV": AluDIV,
	"BPF_OR": AluOR, "BPF_AND": AluAND, "BPF_LSH": AluLSH, "BPF_RSH": AluRSH,
	"BPF_NEG": AluNEG, "BPF_MOD": AluMOD, "BPF_XOR": AluXOR, "BPF_MOV": AluMOV,
	"BPF_ARSH": AluARSH, "BPF_END": AluEND,

	"BPF_JA": JmpJA, "BPF_JEQ": JmpJEQ, "BPF_JGT": JmpJGT, "BPF_JGE": JmpJGE,
	"BPF_JSET": JmpJSET, "BPF_JNE": JmpJNE, "BPF_JSGT": JmpJSGT, "BPF_JSGE": JmpJSGE,
	"BPF_CALL": JmpCALL, "BPF_EXIT": JmpEXIT, "BPF_JLT": JmpJLT, "BPF_JLE": JmpJLE,
	"BPF_JSLT": JmpJSLT, "BPF_JSLE": JmpJSLE, "BPF_JCOND": JmpJCOND,

	"BPF_FETCH": AtomicFETCH, "BPF_XCHG": AtomicXCHG, "BPF_CMPXCHG": AtomicCMPXCHG,
	"BPF_LOAD_ACQ": AtomicLoadAcq, "BPF_STORE_REL": AtomicStoreRel,

	"BPF_PSEUDO_MAP_FD": PseudoMapFD, "BPF_PSEUDO_MAP_VALUE": PseudoMapValue,
	"BPF_PSEUDO_BTF_ID": PseudoBTFID, "BPF_PSEUDO_FUNC": PseudoFunc,
	"BPF_PSEUDO_MAP_IDX": PseudoMapIdx, "BPF_PSEUDO_MAP_IDX_VALUE": PseudoMapIdxValue,
	"BPF_PSEUDO_CALL": PseudoCall, "BPF_PSEUDO_KFUNC_CALL": PseudoKfuncCall,
	"BPF_MAY_GOTO": MayGoto,

	"BPF_REG_0": 0, "BPF_REG_1": 1, "BPF_REG_2": 2, "BPF_REG_3": 3, "BPF_REG_4": 4, "BPF_REG_5": 5,
	"BPF_REG_6": 6, "BPF_REG_7": 7, "BPF_REG_8": 8, "BPF_REG_9": 9, "BPF_REG_10": 10,
	"BPF_REG_ARG1": 1, "BPF_REG_ARG2": 2, "BPF_REG_ARG3": 3, "BPF_REG_ARG4": 4, "BPF_REG_ARG5": 5,
	"BPF_REG_CTX": 6, "BPF_REG_FP": 10,
}

// asmSuggest proposes the nearest macro name for a misspelled one.
func asmSuggest(name string) string {
	return asmNearest(name, func(yield func(string)) {
		for n := range asmMacros {
			yield(n)
		}
	})
}

func asmSuggestConst(name string) string {
	return asmNearest(name, func(yield func(string)) {
		for n := range asmConstants {
			yield(n)
		}
	})
}

func asmNearest(name string, each func(yield func(string))) string {
	best, ok := suggest.Closest(strings.ToUpper(name), func(yield func(string) bool) {
		each(func(n string) { yield(n) })
	})
	if !ok {
		return ""
	}
	return ", did you mean " + best + "?"
}
