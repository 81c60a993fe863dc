package embedded

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// loaderPrologue starts every light-skeleton loader program (bpftool gen
// skeleton -L, libbpf's gen_loader): r6 = r1 (the loader context), then r1 =
// r10 and r1 += -N to clear its stack.
var loaderPrologue = []byte{0xbf, 0x16, 0, 0, 0, 0, 0, 0, 0xbf, 0xa1, 0, 0, 0, 0, 0, 0, 0x07, 0x01}

// LightSkeleton is a light skeleton found in a file: the loader program and
// the data blob whose BPF_PROG_LOAD attributes hold the real programs.
type LightSkeleton struct {
	LoaderOffset int64          `json:"loader_offset"`     // file offset of the loader program
	LoaderInsns  int            `json:"loader_insns"`      // its instruction slots (up to the first undecodable one)
	DataOffset   int64          `json:"data_offset"`       // file offset of the data blob (-1 when not found)
	Section      string         `json:"section,omitempty"` // host ELF section holding the loader, when known
	Programs     []LightProgram `json:"programs"`
}

// LightProgram is one program a light-skeleton loader loads.
type LightProgram struct {
	Name               string `json:"name"`
	Type               uint32 `json:"type"`
	ExpectedAttachType uint32 `json:"expected_attach_type"`
	License            string `json:"license"`
	InsnsOffset        int64  `json:"insns_offset"` // file offset of its instructions
	Insns              []byte `json:"-"`
}

// Where is "offset 0x… (light skeleton loader, data at offset 0x…)".
func (l LightSkeleton) Where() string {
	if l.Section != "" {
		return fmt.Sprintf("offset %#x (light skeleton loader in section %s, data at offset %#x)", l.LoaderOffset, l.Section, l.DataOffset)
	}
	return fmt.Sprintf("offset %#x (light skeleton loader, data at offset %#x)", l.LoaderOffset, l.DataOffset)
}

const maxLoaderSlots = 1 << 17

// MaxLoaders bounds the light-skeleton loaders decoded per file: locating a
// blob reads the whole file once per loader, so a file stuffed with loader
// prologues must not cost quadratic time. Real binaries carry a few.
const MaxLoaders = 16

// relStore is one "*(u64 *)(blob + field) = blob + value" of the loader.
type relStore struct{ field, value uint32 }

// DecodeLightSkeleton decodes the light skeleton whose loader program starts
// at off in data. The loader fills pointers into its data blob with
// ld_imm64 pairs (BPF_PSEUDO_MAP_IDX_VALUE) and a store; a pair that stores
// into fields insns (+8) and license (+16) of one blob offset A marks a
// union bpf_attr for BPF_PROG_LOAD at A. The blob is then located in data as
// the place where every such attribute reads consistently.
func DecodeLightSkeleton(data []byte, off int64) (LightSkeleton, error) {
	l := LightSkeleton{LoaderOffset: off, DataOffset: -1}
	if off < 0 || off >= int64(len(data)) || !bytes.HasPrefix(data[off:], loaderPrologue) {
		return l, fmt.Errorf("no loader program at offset %#x", off)
	}
	win := data[off:]
	win = win[:min(len(win)/8*8, maxLoaderSlots*8)]
	ins, probs := insn.Decode(win)
	if len(probs) > 0 {
		cut := probs[0].Index
		n := 0
		for n < len(ins) && ins[n].Index < cut {
			n++
		}
		ins = ins[:n]
	}
	if len(ins) > 0 {
		last := ins[len(ins)-1]
		l.LoaderInsns = last.Index + 1
		if last.Wide {
			l.LoaderInsns++
		}
	}
	var stores []relStore
	for i := 0; i+2 < len(ins); i++ {
		a, b, c := ins[i], ins[i+1], ins[i+2]
		if a.Wide && a.Code == insn.OpLdImm64 && a.Src == insn.PseudoMapIdxValue && a.Dst == 0 &&
			b.Wide && b.Code == insn.OpLdImm64 && b.Src == insn.PseudoMapIdxValue && b.Dst == 1 &&
			c.Code == 0x7b && c.Dst == 1 && c.Src == 0 && c.Off == 0 {
			stores = append(stores, relStore{field: uint32(b.Next.Imm), value: uint32(a.Next.Imm)})
		}
	}
	fields := map[uint32]uint32{}
	for _, s := range stores {
		fields[s.field] = s.value
	}
	var attrs []uint32
	for _, s := range stores {
		if s.field >= 8 {
			if _, ok := fields[s.field+8]; ok {
				attrs = append(attrs, s.field-8)
			}
		}
	}
	if len(attrs) == 0 {
		return l, fmt.Errorf("light skeleton loader at offset %#x: no BPF_PROG_LOAD attributes found in its %d instructions", off, l.LoaderInsns)
	}
	base, attrs := findBlob(data, attrs, fields)
	if len(attrs) == 0 {
		return l, fmt.Errorf("light skeleton loader at offset %#x: no data blob in the file reads as its BPF_PROG_LOAD attributes", off)
	}
	l.DataOffset = base
	if off > 0 {
		at := []Object{{Offset: off, Size: 1}}
		locate(bytes.NewReader(data), at)
		l.Section = at[0].Section
	}
	for _, a := range attrs {
		p, _ := attrAt(data, base, a, fields)
		l.Programs = append(l.Programs, p)
	}
	return l, nil
}

// findBlob returns the file offset where the most attributes read as a
// plausible BPF_PROG_LOAD (other bpf_attr unions the loader fills also have
// pointers 8 bytes apart), and those attributes.
func findBlob(data []byte, attrs []uint32, fields map[uint32]uint32) (int64, []uint32) {
	best, bestAt := []uint32(nil), int64(0)
	for base := int64(0); base < int64(len(data)); base++ {
		var good []uint32
		for _, a := range attrs {
			if _, ok := attrAt(data, base, a, fields); ok {
				good = append(good, a)
			}
		}
		if len(good) > len(best) {
			best, bestAt = good, base
		}
	}
	return bestAt, best
}

func attrAt(data []byte, base int64, a uint32, fields map[uint32]uint32) (LightProgram, bool) {
	le := binary.LittleEndian
	at := base + int64(a)
	if at+72 > int64(len(data)) {
		return LightProgram{}, false
	}
	attr := data[at:]
	p := LightProgram{Type: le.Uint32(attr), ExpectedAttachType: le.Uint32(attr[68:])}
	cnt := int64(le.Uint32(attr[4:]))
	if p.Type == 0 || p.Type > 64 || cnt == 0 || cnt > 1_000_000 {
		return p, false
	}
	name, ok := cString(attr[48:64])
	if !ok || name == "" || strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") != "" {
		return p, false
	}
	p.Name = name
	insOff := base + int64(fields[a+8])
	licOff := base + int64(fields[a+16])
	if insOff+cnt*8 > int64(len(data)) || licOff >= int64(len(data)) {
		return p, false
	}
	lic, ok := cString(data[licOff:min(int64(len(data)), licOff+128)])
	if !ok || lic == "" {
		return p, false
	}
	// A program ends with exit (or a jump back), and decodes.
	if last := data[insOff+cnt*8-8]; last != 0x95 && last != 0x05 {
		return p, false
	}
	if _, probs := insn.Decode(data[insOff : insOff+cnt*8]); len(probs) > 0 {
		return p, false
	}
	p.License = lic
	p.InsnsOffset = insOff
	p.Insns = data[insOff : insOff+cnt*8]
	return p, true
}

// cString is the printable NUL-terminated string at the start of b.
func cString(b []byte) (string, bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", false
	}
	for _, c := range b[:i] {
		if c < 0x20 || c > 0x7e {
			return "", false
		}
	}
	return string(b[:i]), true
}

// FindLoaders returns the offsets of light-skeleton loader programs in data.
func FindLoaders(data []byte) []int64 {
	var out []int64
	for i := 0; ; {
		j := bytes.Index(data[i:], loaderPrologue)
		if j < 0 {
			return out
		}
		out = append(out, int64(i+j))
		i += j + 1
	}
}
