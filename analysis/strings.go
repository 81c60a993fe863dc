package analysis

import (
	"encoding/binary"
	"sort"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Escape renders untrusted bytes as valid, harmless UTF-8: printable ASCII
// as is, every other byte (and the backslash, so that the output is
// unambiguous) as \xNN.
func Escape(b []byte) string {
	var s strings.Builder
	s.Grow(len(b))
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			s.WriteByte(c)
			continue
		}
		s.WriteString(`\x`)
		s.WriteByte("0123456789abcdef"[c>>4])
		s.WriteByte("0123456789abcdef"[c&0xf])
	}
	return s.String()
}

// stringy is the byte set a string is made of: printable ASCII and the
// whitespace that format strings end with.
func stringy(c byte) bool {
	return c >= 0x20 && c < 0x7f || c == '\t' || c == '\n' || c == '\r'
}

const stackSize = 512 // MAX_BPF_STACK

type regKind uint8

const (
	regUnknown regKind = iota
	regConst           // val holds the value
	regStack           // val holds the offset from r10
	regData            // section + val: an address in global data
)

type reg struct {
	kind    regKind
	val     int64
	section string
	at      int // slot of the ld_imm64 that produced a regData
}

type stackByte struct {
	b     byte
	valid bool
	at    int // slot of the store that wrote it
}

// load remembers that a register holds bytes loaded from memory, for
// byte-compare chains.
type load struct {
	ok   bool
	base baseKey
	addr int64
	size int
	at   int
}

// baseKey identifies the memory a compare chain reads: the stack frame, or a
// pointer register as defined by one particular instruction.
type baseKey struct {
	stack bool
	frame int
	reg   uint8
	def   int
}

type seenKey struct {
	at   int
	text string
}

type compared struct {
	b  byte
	at int
}

// chain is one byte-compare chain: the bytes compared at each address of
// its base, until the chain ends (an address compared again begins another
// chain; a store into the compared bytes ends the buffer's lifetime).
type chain struct {
	bytes  map[int64]compared
	closed bool
}

func (c *chain) has(addr int64, size int) bool {
	for k := int64(0); k < int64(size); k++ {
		if _, ok := c.bytes[addr+k]; ok {
			return true
		}
	}
	return false
}

type extractor struct {
	p     *program.Program
	min   int
	regs  [11]reg
	def   [11]int // slot of the last write of each register
	loads [11]load
	stack [stackSize]stackByte
	dirty bool
	frame int

	// chains holds, per base, its compare chains in the order they began:
	// one per string compared (issue 16: two names compared against one
	// buffer were merged into one string and the hidden file's name lost).
	chains map[baseKey][]*chain
	// spills remembers loaded bytes spilled whole to a stack slot, so a
	// compare after the compiler reloads them still counts (stack offset →
	// the load), for the current frame.
	spills map[int64]load
	out    []String
	seen   map[seenKey]int // (insn, text) → index in out
}

// Strings extracts the strings of p (see StringKind) from its decoded
// instructions ins. minLen is the shortest stack, compare or data string
// reported (0 means 4); format strings are reported at any length.
func Strings(p *program.Program, ins []insn.Instruction, minLen int) []String {
	if minLen <= 0 {
		minLen = 4
	}
	e := &extractor{p: p, min: minLen, chains: map[baseKey][]*chain{}, seen: map[seenKey]int{}}
	// Slots where a sub-program (a new stack frame) starts.
	starts := make([]bool, len(p.Insns)/insn.Size)
	for _, in := range ins {
		if in.Code == insn.ClassJMP|insn.JmpCALL && in.Src == insn.PseudoCall ||
			in.Wide && in.Code == insn.OpLdImm64 && in.Src == insn.PseudoFunc && !Translated(p) {
			t := in.Index + int(in.Imm) + 1
			if in.Src == insn.PseudoCall && in.Code != insn.OpLdImm64 {
				t = callTarget(in, Translated(p))
			}
			if t >= 0 && t < len(starts) {
				starts[t] = true
			}
		}
	}
	e.reset()
	for _, in := range ins {
		if starts[in.Index] {
			e.flush()
			e.frame++
			e.reset()
		}
		e.step(in)
	}
	e.flush()
	e.flushChains()
	sort.Slice(e.out, func(i, j int) bool {
		a, b := e.out[i], e.out[j]
		if a.Insn != b.Insn {
			return a.Insn < b.Insn
		}
		if a.Text != b.Text {
			return a.Text < b.Text
		}
		return a.Kind < b.Kind
	})
	return e.out
}

func (e *extractor) reset() {
	for i := range e.regs {
		e.regs[i] = reg{}
		e.def[i] = -1
		e.loads[i] = load{}
	}
	e.regs[insn.R10] = reg{kind: regStack}
	e.stack = [stackSize]stackByte{}
	e.dirty = false
	e.spills = map[int64]load{}
}

func (e *extractor) set(r uint8, v reg, at int) {
	if r > insn.R10 {
		return
	}
	e.regs[r] = v
	e.def[r] = at
	e.loads[r] = load{}
}

func (e *extractor) step(in insn.Instruction) {
	code := in.Code
	switch insn.Class(code) {
	case insn.ClassALU, insn.ClassALU64:
		e.alu(in)
	case insn.ClassLD:
		if in.Wide && code == insn.OpLdImm64 {
			e.ldImm64(in)
		} else {
			e.set(insn.R0, reg{}, in.Index) // ld_abs / ld_ind
		}
	case insn.ClassLDX:
		e.ldx(in)
	case insn.ClassST:
		if code&0xe0 == insn.ModeMEM {
			e.store(in.Dst, in.Off, sizeOf(code), reg{kind: regConst, val: int64(in.Imm)}, in.Index)
		}
	case insn.ClassSTX:
		if code&0xe0 == insn.ModeMEM {
			v := reg{}
			if in.Src <= insn.R10 {
				v = e.regs[in.Src]
			}
			e.store(in.Dst, in.Off, sizeOf(code), v, in.Index)
			if in.Src <= insn.R10 && in.Dst <= insn.R10 && e.regs[in.Dst].kind == regStack && sizeOf(code) == 8 {
				e.storeLoad(e.regs[in.Dst].val+int64(in.Off), 8, e.loads[in.Src])
			}
			return
		}
		if code&0xe0 == insn.ModeATOMIC {
			e.store(in.Dst, in.Off, sizeOf(code), reg{}, in.Index)
			if in.Imm&insn.AtomicFETCH != 0 {
				if in.Imm == insn.AtomicCMPXCHG {
					e.set(insn.R0, reg{}, in.Index)
				} else {
					e.set(in.Src, reg{}, in.Index)
				}
			} else if in.Imm == insn.AtomicLoadAcq {
				e.set(in.Dst, reg{}, in.Index)
			}
		}
	case insn.ClassJMP, insn.ClassJMP32:
		e.jump(in)
	}
}

func sizeOf(code uint8) int {
	switch code & 0x18 {
	case insn.SizeB:
		return 1
	case insn.SizeH:
		return 2
	case insn.SizeW:
		return 4
	}
	return 8
}

func (e *extractor) alu(in insn.Instruction) {
	if in.Dst > insn.R10 {
		return
	}
	op := in.Code & 0xf0
	is64 := insn.Class(in.Code) == insn.ClassALU64
	d := e.regs[in.Dst]
	var src reg
	if in.Code&insn.SrcX != 0 {
		if in.Src <= insn.R10 {
			src = e.regs[in.Src]
		}
	} else {
		src = reg{kind: regConst, val: int64(in.Imm)}
		if !is64 {
			src.val = int64(uint32(in.Imm))
		}
	}
	// A byte loaded for a compare often goes through a sign- or
	// zero-extension (<<= 56; s>>= 56, &= 0xff) before the jump: keep it.
	if e.loads[in.Dst].ok && in.Code&insn.SrcX == 0 && (op == insn.AluLSH || op == insn.AluRSH || op == insn.AluARSH || op == insn.AluAND) {
		return
	}
	if op == insn.AluMOV && in.Off == 0 {
		v := src
		if !is64 && v.kind == regConst {
			v.val = int64(uint32(v.val))
		} else if !is64 {
			v = reg{}
		}
		e.set(in.Dst, v, in.Index)
		return
	}
	var out reg
	switch {
	case d.kind == regConst && src.kind == regConst && in.Off == 0:
		a, b := d.val, src.val
		ok := true
		switch op {
		case insn.AluADD:
			a += b
		case insn.AluSUB:
			a -= b
		case insn.AluOR:
			a |= b
		case insn.AluAND:
			a &= b
		case insn.AluXOR:
			a ^= b
		case insn.AluLSH:
			a <<= uint64(b) & 63
		case insn.AluRSH:
			a = int64(uint64(a) >> (uint64(b) & 63))
		case insn.AluMUL:
			a *= b
		default:
			ok = false
		}
		if ok {
			if !is64 {
				a = int64(uint32(a))
			}
			out = reg{kind: regConst, val: a}
		}
	case (d.kind == regStack || d.kind == regData) && src.kind == regConst && is64:
		switch op {
		case insn.AluADD:
			out = d
			out.val += src.val
		case insn.AluSUB:
			out = d
			out.val -= src.val
		}
	}
	e.set(in.Dst, out, in.Index)
}

func (e *extractor) ldImm64(in insn.Instruction) {
	v := reg{}
	switch in.Src {
	case 0:
		v = reg{kind: regConst, val: in.Imm64()}
	case insn.PseudoMapValue, insn.PseudoMapIdxValue:
		if ref, ok := e.p.Refs[in.Index]; ok && ref.Kind == program.RefData {
			v = reg{kind: regData, section: ref.Section, val: ref.Offset, at: in.Index}
			// An explicitly referenced NUL-terminated value is strong evidence
			// of a string, so short ones ("/a") count too.
			if s := e.cString(ref.Section, ref.Offset); len(s) >= min(2, e.min) && allStringy(s) {
				e.add(in.Index, s, StringData)
			}
		}
	}
	e.set(in.Dst, v, in.Index)
}

func (e *extractor) ldx(in insn.Instruction) {
	if in.Dst > insn.R10 {
		return
	}
	if in.Src > insn.R10 {
		e.set(in.Dst, reg{}, in.Index)
		return
	}
	base := e.regs[in.Src]
	l := load{ok: true, addr: int64(in.Off), size: sizeOf(in.Code), at: in.Index}
	if base.kind == regStack {
		l.base = baseKey{stack: true, frame: e.frame}
		l.addr += base.val
	} else {
		l.base = baseKey{reg: in.Src, def: e.def[in.Src]}
	}
	e.set(in.Dst, reg{}, in.Index)
	if in.Code&0xe0 == insn.ModeMEM || in.Code&0xe0 == insn.ModeMEMSX {
		e.loads[in.Dst] = l
		if sp, ok := e.spills[l.addr]; ok && l.base.stack && l.size == 8 {
			e.loads[in.Dst] = sp // a fill of a spilled load
		}
	}
}

// store records a store of size bytes of v at dst+off when dst points into
// the stack; a value that is not a known constant makes those bytes unknown.
func (e *extractor) store(dst uint8, off int16, size int, v reg, at int) {
	if dst > insn.R10 || e.regs[dst].kind != regStack {
		return
	}
	addr := e.regs[dst].val + int64(off)
	e.storeLoad(addr, size, load{})
	for _, c := range e.chains[baseKey{stack: true, frame: e.frame}] {
		if !c.closed && c.has(addr, size) {
			c.closed = true // the compared buffer is overwritten
		}
	}
	b := e.bytes(v.val, size)
	for k := 0; k < size; k++ {
		i := addr + int64(k) + stackSize
		if i < 0 || i >= stackSize {
			continue
		}
		e.stack[i] = stackByte{b: b[k], valid: v.kind == regConst, at: at}
	}
	e.dirty = true
}

// storeLoad records what a store of size bytes at stack offset addr spills:
// l when a whole loaded register is stored, nothing otherwise; any spill it
// overlaps is gone.
func (e *extractor) storeLoad(addr int64, size int, l load) {
	for a := range e.spills {
		if a < addr+int64(size) && addr < a+8 {
			delete(e.spills, a)
		}
	}
	if l.ok {
		e.spills[addr] = l
	}
}

// bytes lays out the low size bytes of v as the target's memory holds them.
func (e *extractor) bytes(v int64, size int) [8]byte {
	var b [8]byte
	if e.p.BigEndian {
		binary.BigEndian.PutUint64(b[:], uint64(v)<<(64-8*size))
	} else {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
	}
	return b
}

func (e *extractor) jump(in insn.Instruction) {
	op := in.Code & 0xf0
	switch op {
	case insn.JmpCALL:
		e.call(in)
		return
	case insn.JmpEXIT:
		e.flush()
		return
	case insn.JmpJEQ, insn.JmpJNE:
	default:
		return
	}
	if in.Dst > insn.R10 || in.Src > insn.R10 {
		return
	}
	var l load
	var c reg
	if in.Code&insn.SrcX == 0 {
		l, c = e.loads[in.Dst], reg{kind: regConst, val: int64(in.Imm)}
	} else if e.loads[in.Dst].ok && e.regs[in.Src].kind == regConst {
		l, c = e.loads[in.Dst], e.regs[in.Src]
	} else if e.loads[in.Src].ok && e.regs[in.Dst].kind == regConst {
		l, c = e.loads[in.Src], e.regs[in.Dst]
	}
	if !l.ok || c.kind != regConst {
		return
	}
	ch := e.chainFor(l)
	b := e.bytes(c.val, l.size)
	for k := 0; k < l.size; k++ {
		ch.bytes[l.addr+int64(k)] = compared{b: b[k], at: l.at}
	}
}

// chainFor picks the chain a compare of l's bytes continues: the latest open
// chain that has not compared these addresses yet and compared a neighbour,
// else the latest open chain if it has not compared them (chains compared
// out of order), else a new chain.
func (e *extractor) chainFor(l load) *chain {
	list := e.chains[l.base]
	for i := len(list) - 1; i >= 0; i-- {
		c := list[i]
		if c.closed || c.has(l.addr, l.size) {
			continue
		}
		if c.has(l.addr-1, 1) || c.has(l.addr+int64(l.size), 1) {
			return c
		}
	}
	if n := len(list); n > 0 && !list[n-1].closed && !list[n-1].has(l.addr, l.size) {
		return list[n-1]
	}
	c := &chain{bytes: map[int64]compared{}}
	e.chains[l.base] = append(list, c)
	return c
}

func (e *extractor) call(in insn.Instruction) {
	if in.Src == 0 {
		fmtReg := uint8(0)
		switch in.Imm {
		case helperTracePrintk, helperTraceVprint:
			fmtReg = 1
		case helperSeqPrintf:
			fmtReg = 2
		case helperSnprintf:
			fmtReg = 3
		}
		e.flush()
		if fmtReg != 0 {
			e.format(e.regs[fmtReg])
		}
		// A helper writing into a stack buffer (r1 = buffer, r2 = size)
		// invalidates what was built there.
		if r1, r2 := e.regs[1], e.regs[2]; r1.kind == regStack && r2.kind == regConst && r2.val > 0 && r2.val <= stackSize {
			for k := int64(0); k < r2.val; k++ {
				if i := r1.val + k + stackSize; i >= 0 && i < stackSize {
					e.stack[i].valid = false
				}
			}
		}
	} else {
		e.flush()
	}
	for r := uint8(0); r <= 5; r++ {
		e.set(r, reg{}, in.Index)
	}
}

// format reports the format string a printk-like helper receives in r.
func (e *extractor) format(r reg) {
	switch r.kind {
	case regStack:
		var b []byte
		at := -1
		for i := r.val + stackSize; i >= 0 && i < stackSize; i++ {
			sb := e.stack[i]
			if !sb.valid || sb.b == 0 {
				break
			}
			b = append(b, sb.b)
			if at < 0 || sb.at < at {
				at = sb.at
			}
		}
		if len(b) > 0 {
			e.upgrade(at, b)
		}
	case regData:
		if b := e.cString(r.section, r.val); len(b) > 0 {
			e.upgrade(r.at, b)
		}
	}
}

// upgrade marks a string already found at (at, text) as a format string, or
// adds it as one.
func (e *extractor) upgrade(at int, b []byte) {
	text := Escape(b)
	if i, ok := e.seen[seenKey{at, text}]; ok {
		e.out[i].Kind = StringFormat
		return
	}
	e.add(at, b, StringFormat)
}

func (e *extractor) add(at int, b []byte, kind StringKind) {
	text := Escape(b)
	key := seenKey{at, text}
	if _, ok := e.seen[key]; ok {
		return
	}
	e.seen[key] = len(e.out)
	e.out = append(e.out, String{Insn: at, Text: text, Kind: kind})
}

// cString is the NUL-terminated string at off in a data section (at most
// 4 KiB), or nil.
func (e *extractor) cString(section string, off int64) []byte {
	d := e.p.Data[section]
	if off < 0 || off >= int64(len(d)) {
		return nil
	}
	d = d[off:]
	if len(d) > 4096 {
		d = d[:4096]
	}
	for i, c := range d {
		if c == 0 {
			return d[:i]
		}
	}
	return d
}

func allStringy(b []byte) bool {
	for _, c := range b {
		if !stringy(c) {
			return false
		}
	}
	return true
}

// flush reports the strings currently on the stack: runs of known string
// bytes, split at NUL and at non-string bytes, at least twice the minimum
// length or NUL-terminated.
func (e *extractor) flush() {
	if !e.dirty {
		return
	}
	e.dirty = false
	start := -1
	for i := 0; i <= stackSize; i++ {
		ok := i < stackSize && e.stack[i].valid && stringy(e.stack[i].b)
		if ok && start < 0 {
			start = i
		}
		if !ok && start >= 0 {
			// Short runs count only when a known NUL ends them, as C
			// strings do: random constants on the stack are often printable.
			terminated := i < stackSize && e.stack[i].valid && e.stack[i].b == 0
			if i-start >= e.min && (terminated || i-start >= 2*e.min) {
				b := make([]byte, 0, i-start)
				at := e.stack[start].at
				for k := start; k < i; k++ {
					b = append(b, e.stack[k].b)
					at = min(at, e.stack[k].at)
				}
				e.add(at, b, StringStack)
			}
			start = -1
		}
	}
}

// flushChains reports byte-compare chains: consecutive addresses of one base
// compared against constants.
func (e *extractor) flushChains() {
	for _, list := range e.chains {
		for _, c := range list {
			e.flushChain(c.bytes)
		}
	}
}

// flushChain reports the runs of consecutive string bytes of one chain.
func (e *extractor) flushChain(ch map[int64]compared) {
	addrs := make([]int64, 0, len(ch))
	for a := range ch {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i] < addrs[j] })
	var run []byte
	at := -1
	emit := func() {
		if len(run) >= e.min {
			e.add(at, run, StringCompare)
		}
		run, at = nil, -1
	}
	for i, a := range addrs {
		c := ch[a]
		if i > 0 && a != addrs[i-1]+1 || !stringy(c.b) {
			emit()
		}
		if !stringy(c.b) {
			continue
		}
		run = append(run, c.b)
		if at < 0 || c.at < at {
			at = c.at
		}
	}
	emit()
}
