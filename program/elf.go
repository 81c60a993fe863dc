package program

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// ErrNotELF is returned when the input does not start with the ELF magic.
var ErrNotELF = errors.New("not an ELF file")

// FromELF reads every program in the ELF object at path.
func FromELF(path string) ([]*Program, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return FromELFReader(path, f)
}

// FromELFReader reads every program in the ELF object r; origin names it in
// errors and in Program.Origin. Programs come out in object order (by section,
// then by offset in the section). Bad input is an error naming origin and what
// is wrong; FromELFReader never panics.
func FromELFReader(origin string, r io.ReaderAt) (progs []*Program, err error) {
	// cilium/ebpf and debug/elf are not hardened against every hostile
	// object; a panic there must not take the caller down.
	defer func() {
		if v := recover(); v != nil {
			progs, err = nil, fmt.Errorf("%s: malformed ELF object (parser failed: %v)", origin, v)
		}
	}()

	layout, err := checkELF(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(r)
	if err != nil {
		// The loader refuses the whole object for one thing it does not
		// support (a weak map, an extern function, struct_ops): read it
		// directly and report what stays unresolved beside the analysis.
		return direct(origin, r, err)
	}

	data := make(map[string][]byte)
	for name, ms := range spec.Maps {
		if !isDataSection(name) || len(ms.Contents) != 1 {
			continue
		}
		if b, ok := ms.Contents[0].Value.([]byte); ok {
			data[name] = b
		}
	}

	for _, ps := range spec.Programs {
		p, err := fromSpec(origin, spec, ps, data)
		if err != nil {
			return direct(origin, r, fmt.Errorf("section %s: program %s: %w", ps.SectionName, ps.Name, err))
		}
		progs = append(progs, p)
	}
	sort.Slice(progs, func(i, j int) bool {
		a, b := layout.order(progs[i]), layout.order(progs[j])
		if a != b {
			return a[0] < b[0] || a[0] == b[0] && a[1] < b[1]
		}
		return progs[i].Name < progs[j].Name
	})
	return progs, nil
}

// direct reads the object with debug/elf after cilium/ebpf refused it.
func direct(origin string, r io.ReaderAt, loaderErr error) ([]*Program, error) {
	progs, err := fromELFDirect(origin, r, loaderErr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the object loader refused it too: %v)", origin, err, loaderErr)
	}
	return progs, nil
}

// elfLayout remembers where each program symbol sits so programs can be
// listed in object order (cilium/ebpf returns them in a map).
type elfLayout struct {
	sym map[string][2]uint64 // name → (section index, value)
}

func (l elfLayout) order(p *Program) [2]uint64 {
	if v, ok := l.sym[p.Name]; ok {
		return v
	}
	return [2]uint64{^uint64(0), 0}
}

// checkELF validates what cilium/ebpf's errors would leave vague: the magic,
// the byte order, and that headers and sections lie inside the file.
func checkELF(r io.ReaderAt) (elfLayout, error) {
	var ident [elf.EI_NIDENT]byte
	n, err := r.ReadAt(ident[:], 0)
	if n < 4 || !bytes.Equal(ident[:4], []byte(elf.ELFMAG)) {
		if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
			return elfLayout{}, fmt.Errorf("%w (empty file)", ErrNotELF)
		}
		return elfLayout{}, fmt.Errorf("%w (no ELF magic at byte 0)", ErrNotELF)
	}
	if n < len(ident) {
		return elfLayout{}, fmt.Errorf("truncated ELF: identification ends at byte %d, need %d", n, len(ident))
	}
	if elf.Class(ident[elf.EI_CLASS]) != elf.ELFCLASS64 {
		return elfLayout{}, fmt.Errorf("ELF class %v at byte %d: eBPF objects are 64-bit", elf.Class(ident[elf.EI_CLASS]), elf.EI_CLASS)
	}
	if err := checkELFHeaders(r, ident); err != nil {
		return elfLayout{}, err
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return elfLayout{}, fmt.Errorf("corrupt ELF: %w", err)
	}
	if f.Machine != elf.EM_BPF && f.Machine != elf.EM_NONE {
		return elfLayout{}, fmt.Errorf("ELF machine is %v, not BPF", f.Machine)
	}
	size := readerSize(r)
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_COMPRESSED != 0 {
			// Decompression would allocate the size the header claims.
			return elfLayout{}, fmt.Errorf("section %s is compressed (not supported)", s.Name)
		}
		if s.Type == elf.SHT_NOBITS && s.Size > maxNoBits {
			// cilium/ebpf allocates NOBITS sections (.bss) in full.
			return elfLayout{}, fmt.Errorf("section %s claims %d bytes of zeroes (more than %d)", s.Name, s.Size, maxNoBits)
		}
		if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL {
			continue
		}
		if size >= 0 && (s.Offset > uint64(size) || s.Size > uint64(size)-s.Offset) {
			return elfLayout{}, fmt.Errorf("truncated ELF: section %s spans bytes %d..%d but the file has %d bytes", s.Name, s.Offset, s.Offset+s.Size, size)
		}
	}
	l := elfLayout{sym: map[string][2]uint64{}}
	syms, err := f.Symbols()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return elfLayout{}, fmt.Errorf("symbol table: %w", err)
	}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			l.sym[s.Name] = [2]uint64{uint64(s.Section), s.Value}
		}
	}
	return l, nil
}

// checkELFHeaders checks that the ELF header, the section and program
// header tables and the section-name table lie inside the file, so that a
// truncated object is reported by structure and offset rather than as EOF.
func checkELFHeaders(r io.ReaderAt, ident [elf.EI_NIDENT]byte) error {
	var bo binary.ByteOrder = binary.LittleEndian
	if elf.Data(ident[elf.EI_DATA]) == elf.ELFDATA2MSB {
		bo = binary.BigEndian
	}
	size := readerSize(r)
	var h [64]byte
	if n, _ := r.ReadAt(h[:], 0); n < len(h) {
		return fmt.Errorf("truncated ELF: the ELF header needs bytes 0..64, the file has %d bytes", n)
	}
	phoff, shoff := bo.Uint64(h[0x20:]), bo.Uint64(h[0x28:])
	phentsize, phnum := uint64(bo.Uint16(h[0x36:])), uint64(bo.Uint16(h[0x38:]))
	shentsize, shnum, shstrndx := uint64(bo.Uint16(h[0x3a:])), uint64(bo.Uint16(h[0x3c:])), uint64(bo.Uint16(h[0x3e:]))
	if size < 0 {
		return nil
	}
	fits := func(off, n, ent uint64) bool {
		return ent == 0 || n == 0 || off <= uint64(size) && n <= (uint64(size)-off)/ent
	}
	if phnum > 0 && !fits(phoff, phnum, phentsize) {
		return fmt.Errorf("truncated ELF: program header table at byte %d (e_phoff) holds %d entries of %d bytes, past the end of the %d-byte file", phoff, phnum, phentsize, size)
	}
	if shnum == 0 {
		return nil
	}
	if shentsize != 64 {
		return fmt.Errorf("corrupt ELF: section header size (e_shentsize, byte 0x3a) is %d, want 64", shentsize)
	}
	if !fits(shoff, shnum, shentsize) {
		return fmt.Errorf("truncated ELF: section header table at byte %d (e_shoff) holds %d entries of 64 bytes (to byte %d), past the end of the %d-byte file", shoff, shnum, shoff+shnum*64, size)
	}
	if shstrndx >= shnum && shstrndx != uint64(elf.SHN_UNDEF) {
		return fmt.Errorf("corrupt ELF: section-name table index %d (e_shstrndx, byte 0x3e) but there are %d sections", shstrndx, shnum)
	}
	var sh [64]byte
	if _, err := r.ReadAt(sh[:], int64(shoff+shstrndx*64)); err != nil {
		return fmt.Errorf("truncated ELF: section header %d at byte %d: %v", shstrndx, shoff+shstrndx*64, err)
	}
	if typ := elf.SectionType(bo.Uint32(sh[4:])); typ != elf.SHT_NOBITS && shstrndx != 0 {
		off, n := bo.Uint64(sh[0x18:]), bo.Uint64(sh[0x20:])
		if off > uint64(size) || n > uint64(size)-off {
			return fmt.Errorf("truncated ELF: section-name table (section %d, header at byte %d) spans bytes %d..%d but the file has %d bytes", shstrndx, shoff+shstrndx*64, off, off+n, size)
		}
	}
	return nil
}

// maxNoBits bounds zero-filled sections: far above any real .bss (the kernel
// caps an array map's value at a few MiB) yet small enough that a hostile
// header cannot make us allocate gigabytes.
const maxNoBits = 64 << 20

// readerSize returns the size of r when it can tell, else -1.
func readerSize(r io.ReaderAt) int64 {
	switch v := r.(type) {
	case interface{ Size() int64 }:
		return v.Size()
	case *os.File:
		if fi, err := v.Stat(); err == nil {
			return fi.Size()
		}
	}
	return -1
}

// firstString is the license as the kernel gets it: up to the first NUL.
func firstString(s string) string {
	s, _, _ = strings.Cut(s, "\x00")
	return s
}

func isDataSection(name string) bool {
	return name == ".bss" || name == ".data" || name == ".rodata" || name == ".kconfig" ||
		strings.HasPrefix(name, ".data.") || strings.HasPrefix(name, ".rodata.") || strings.HasPrefix(name, ".bss.")
}

func fromSpec(origin string, spec *ebpf.CollectionSpec, ps *ebpf.ProgramSpec, data map[string][]byte) (*Program, error) {
	p := &Program{
		Source:             SourceELF,
		Origin:             origin,
		Name:               ps.Name,
		Section:            ps.SectionName,
		Type:               uint32(ps.Type),
		ExpectedAttachType: uint32(ps.AttachType),
		AttachTo:           ps.AttachTo,
		Flags:              ps.Flags,
		License:            firstString(ps.License),
		BigEndian:          ps.ByteOrder == binary.BigEndian,
		Refs:               map[int]Ref{},
		Data:               data,
	}
	// Marshal always little-endian: cilium/ebpf decoded the object in its own
	// byte order, so a bpfeb object's instructions come out in the encoding
	// everything downstream reads (BigEndian records the memory layout).
	var buf bytes.Buffer
	if err := ps.Instructions.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encode instructions: %w", err)
	}
	p.Insns = buf.Bytes()
	p.InsnCnt = uint32(len(p.Insns) / 8)
	if _, extra, ok := strings.Cut(ps.License, "\x00"); ok && strings.Trim(extra, "\x00") != "" {
		p.Unresolved = append(p.Unresolved, Unresolved{Kind: "license", Name: strings.Trim(extra, "\x00"), At: -1,
			Reason: fmt.Sprintf("the license section holds more strings after %q; the loader reads only the first", p.License)})
	}

	seenMap := map[string]bool{}
	iter := ps.Instructions.Iterate()
	for iter.Next() {
		ins := iter.Ins
		ref := ins.Reference()
		if ref == "" {
			continue
		}
		slot := int(iter.Offset)
		switch {
		case ins.IsLoadFromMap():
			ms := spec.Maps[ref]
			if isDataSection(ref) {
				p.Refs[slot] = Ref{Kind: RefData, Name: ref, Section: ref, Offset: int64(uint32(uint64(ins.Constant) >> 32))}
			} else {
				p.Refs[slot] = Ref{Kind: RefMap, Name: ref}
			}
			if ms != nil && !seenMap[ref] {
				seenMap[ref] = true
				p.Maps = append(p.Maps, Map{Name: ref, Type: uint32(ms.Type), KeySize: ms.KeySize, ValueSize: ms.ValueSize, MaxEntries: ms.MaxEntries,
					TailCalls: initialTailCalls(ms)})
			}
		case ins.IsKfuncCall():
			p.Refs[slot] = Ref{Kind: RefKfunc, Name: ref}
		case ins.IsFunctionReference():
			p.Refs[slot] = Ref{Kind: RefFunc, Name: ref}
		case ins.OpCode.IsDWordLoad() && ins.Src == asm.R3: // BPF_PSEUDO_BTF_ID
			p.Refs[slot] = Ref{Kind: RefKsym, Name: ref}
		case ins.OpCode.Class().IsJump():
			// Jumps to labels inside the program; nothing external.
		default:
			p.Refs[slot] = Ref{Kind: RefUnknown, Name: ref}
		}
	}
	return p, nil
}

// initialTailCalls is what the object initialises a prog_array with (BTF
// map definitions with values = { [i] = &prog }): the slot and the
// program's name.
func initialTailCalls(ms *ebpf.MapSpec) []TailCall {
	if ms.Type != ebpf.ProgramArray {
		return nil
	}
	var out []TailCall
	for _, kv := range ms.Contents {
		key, ok1 := kv.Key.(uint32)
		name, ok2 := kv.Value.(string)
		if ok1 && ok2 {
			out = append(out, TailCall{Key: key, Prog: name})
		}
	}
	return out
}
