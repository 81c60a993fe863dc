package cbpf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// MaxInsns is the kernel's limit on a classic program (BPF_MAXINSNS).
const MaxInsns = 4096

// InsnSize is the size of one struct sock_filter.
const InsnSize = 8

// Instruction is one struct sock_filter.
type Instruction struct {
	Code uint16
	Jt   uint8
	Jf   uint8
	K    uint32
}

// Decode reads sock_filter structs (native byte order, 8 bytes each).
func Decode(raw []byte) ([]Instruction, error) {
	if len(raw)%InsnSize != 0 {
		return nil, fmt.Errorf("classic BPF: %d bytes is not a whole number of 8-byte instructions", len(raw))
	}
	n := len(raw) / InsnSize
	if n == 0 {
		return nil, fmt.Errorf("classic BPF: empty program")
	}
	if n > MaxInsns {
		return nil, fmt.Errorf("classic BPF: %d instructions, the kernel accepts at most %d", n, MaxInsns)
	}
	out := make([]Instruction, n)
	for i := range out {
		b := raw[i*InsnSize:]
		out[i] = Instruction{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	return out, nil
}

// ParseDDD reads the output of "tcpdump -ddd": a count line, then one
// "code jt jf k" line per instruction, in decimal.
func ParseDDD(r io.Reader) ([]Instruction, error) {
	sc := bufio.NewScanner(r)
	if !sc.Scan() {
		return nil, fmt.Errorf("tcpdump -ddd: no count line")
	}
	n, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || n < 0 || n > MaxInsns {
		return nil, fmt.Errorf("tcpdump -ddd line 1: bad count %q", sc.Text())
	}
	out := make([]Instruction, 0, n)
	for line := 2; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("tcpdump -ddd line %d: want 4 numbers, got %q", line, sc.Text())
		}
		var v [4]uint64
		for i, bits := range []int{16, 8, 8, 32} {
			if v[i], err = strconv.ParseUint(f[i], 10, bits); err != nil {
				return nil, fmt.Errorf("tcpdump -ddd line %d field %d: %w", line, i+1, err)
			}
		}
		out = append(out, Instruction{uint16(v[0]), uint8(v[1]), uint8(v[2]), uint32(v[3])})
	}
	if len(out) != n {
		return nil, fmt.Errorf("tcpdump -ddd: count line says %d instructions, %d follow", n, len(out))
	}
	return out, sc.Err()
}

// Instruction classes and fields (linux/filter.h, the classic subset).
const (
	classLD   = 0x00
	classLDX  = 0x01
	classST   = 0x02
	classSTX  = 0x03
	classALU  = 0x04
	classJMP  = 0x05
	classRET  = 0x06
	classMISC = 0x07

	sizeW = 0x00
	sizeH = 0x08
	sizeB = 0x10

	modeIMM = 0x00
	modeABS = 0x20
	modeIND = 0x40
	modeMEM = 0x60
	modeLEN = 0x80
	modeMSH = 0xa0

	srcK = 0x00
	srcX = 0x08
)

// Format renders one instruction at index n as tcpdump -d does.
func (in Instruction) Format(n int) string {
	op, operand := in.opOperand(n)
	if in.Code&0x07 == classJMP && in.Code&0xf0 != 0x00 { // conditional jumps
		return fmt.Sprintf("(%03d) %-8s %-16s jt %d\tjf %d", n, op, operand, n+1+int(in.Jt), n+1+int(in.Jf))
	}
	return fmt.Sprintf("(%03d) %-8s %s", n, op, operand)
}

func (in Instruction) opOperand(n int) (string, string) {
	k := in.K
	switch in.Code {
	case classRET: // ret #k
		return "ret", fmt.Sprintf("#%d", k)
	case classRET | 0x10: // BPF_A
		return "ret", ""
	case classLD | sizeW | modeABS:
		return "ld", absOperand(k)
	case classLD | sizeH | modeABS:
		return "ldh", absOperand(k)
	case classLD | sizeB | modeABS:
		return "ldb", absOperand(k)
	case classLD | sizeW | modeLEN:
		return "ld", "#pktlen"
	case classLD | sizeW | modeIND:
		return "ld", fmt.Sprintf("[x + %d]", k)
	case classLD | sizeH | modeIND:
		return "ldh", fmt.Sprintf("[x + %d]", k)
	case classLD | sizeB | modeIND:
		return "ldb", fmt.Sprintf("[x + %d]", k)
	case classLD | modeIMM:
		return "ld", fmt.Sprintf("#0x%x", k)
	case classLDX | modeIMM:
		return "ldx", fmt.Sprintf("#0x%x", k)
	case classLDX | sizeB | modeMSH:
		return "ldxb", fmt.Sprintf("4*([%d]&0xf)", k)
	case classLD | modeMEM:
		return "ld", fmt.Sprintf("M[%d]", k)
	case classLDX | modeMEM:
		return "ldx", fmt.Sprintf("M[%d]", k)
	case classLDX | sizeW | modeLEN:
		return "ldx", "#pktlen"
	case classST:
		return "st", fmt.Sprintf("M[%d]", k)
	case classSTX:
		return "stx", fmt.Sprintf("M[%d]", k)
	case classJMP: // ja
		return "ja", fmt.Sprintf("%d", n+1+int(k))
	case classMISC: // tax
		return "tax", ""
	case classMISC | 0x80:
		return "txa", ""
	}
	if in.Code&0x07 == classJMP {
		name, ok := jumpNames[in.Code&0xf0]
		if ok {
			if in.Code&srcX != 0 {
				return name, "x"
			}
			return name, fmt.Sprintf("#0x%x", k)
		}
	}
	if in.Code&0x07 == classALU {
		a, ok := aluOps[in.Code&0xf0]
		if ok {
			if a.name == "neg" {
				return "neg", ""
			}
			if in.Code&srcX != 0 {
				return a.name, "x"
			}
			if a.hex {
				return a.name, fmt.Sprintf("#0x%x", k)
			}
			return a.name, fmt.Sprintf("#%d", k)
		}
	}
	return "unimp", fmt.Sprintf("0x%x", in.Code)
}

var jumpNames = map[uint16]string{0x10: "jeq", 0x20: "jgt", 0x30: "jge", 0x40: "jset"}

var aluOps = map[uint16]struct {
	name string
	hex  bool
}{
	0x00: {"add", false}, 0x10: {"sub", false}, 0x20: {"mul", false}, 0x30: {"div", false},
	0x40: {"or", true}, 0x50: {"and", true}, 0x60: {"lsh", false}, 0x70: {"rsh", false},
	0x80: {"neg", false}, 0x90: {"mod", false}, 0xa0: {"xor", true},
}

// Disassemble renders a program as tcpdump -d does: one line per
// instruction, each ending in a newline.
func Disassemble(ins []Instruction) string {
	var b strings.Builder
	for i, in := range ins {
		b.WriteString(in.Format(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// Encode lays instructions out as the kernel reads them (native order).
func Encode(ins []Instruction) []byte {
	out := make([]byte, len(ins)*InsnSize)
	for i, in := range ins {
		b := out[i*InsnSize:]
		binary.NativeEndian.PutUint16(b, in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.NativeEndian.PutUint32(b[4:], in.K)
	}
	return out
}

// skfAdOff is SKF_AD_OFF: absolute loads at this negative offset read the
// kernel's ancillary data, which tcpdump names.
const skfAdOff = 0xfffff000

var ancillary = map[uint32]string{
	0: "proto", 4: "type", 8: "ifidx", 12: "nla", 16: "nlan", 20: "mark", 24: "queue", 28: "hatype",
	32: "rxhash", 36: "cpu", 44: "vlan_tci", 48: "vlanp", 52: "poff", 56: "random", 60: "vlan_tpid",
}

func absOperand(k uint32) string {
	if k >= skfAdOff {
		if name, ok := ancillary[k-skfAdOff]; ok {
			return "[" + name + "]"
		}
	}
	return fmt.Sprintf("[%d]", k)
}
