package embedded

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
)

// Object is one BPF ELF object found inside a file.
type Object struct {
	Offset int64 `json:"offset"` // byte offset of its ELF header in the file
	Size   int64 `json:"size"`   // bytes up to the end of its last section or header table
	// Section and Symbol say where the host file keeps it, when the host
	// is an ELF file with section headers (and a symbol covering it).
	Section string `json:"section,omitempty"`
	Symbol  string `json:"symbol,omitempty"`
}

// Where is "offset 0x1234 (section .rodata, symbol x)" for messages.
func (o Object) Where() string {
	s := fmt.Sprintf("offset %#x", o.Offset)
	switch {
	case o.Section != "" && o.Symbol != "":
		s += fmt.Sprintf(" (section %s, symbol %s)", o.Section, o.Symbol)
	case o.Section != "":
		s += fmt.Sprintf(" (section %s)", o.Section)
	}
	return s
}

// MaxObject bounds the size an embedded object may claim: far above real
// objects (the largest BPF objects are tens of MiB) and below what a
// hostile header could make a reader allocate.
const MaxObject = 256 << 20

const chunk = 1 << 20

var magic = []byte(elf.ELFMAG)

// bufs recycles read buffers: a scan of many small files would otherwise
// spend its time clearing fresh megabytes.
var bufs = sync.Pool{New: func() any { b := make([]byte, chunk+64); return &b }}

// Find returns every BPF ELF object inside r (size bytes), in file order.
// An object at offset 0 is r itself. Headers that are not a BPF
// relocatable object, or whose tables lie outside the file, are skipped.
// Objects found inside another found object are not reported twice.
func Find(r io.ReaderAt, size int64) ([]Object, error) {
	objs, _, err := FindAll(r, size)
	return objs, err
}

// FindAll is Find, and also returns the offsets of light-skeleton loader
// programs (see DecodeLightSkeleton), found in the same pass.
func FindAll(r io.ReaderAt, size int64) (found []Object, loaders []int64, err error) {
	bp := bufs.Get().(*[]byte)
	defer bufs.Put(bp)
	buf := *bp
	for base := int64(0); base < size; base += chunk {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if err != nil && !errors.Is(err, io.EOF) {
			return found, loaders, fmt.Errorf("read at byte %d: %w", base, err)
		}
		b := buf[:n]
		for i := 0; i < n && i < chunk; {
			j := bytes.Index(b[i:], loaderPrologue)
			if j < 0 || i+j >= chunk {
				break
			}
			loaders = append(loaders, base+int64(i+j))
			i += j + 1
		}
		for i := 0; i < n && i < chunk; {
			j := bytes.Index(b[i:], magic)
			if j < 0 || i+j >= chunk {
				break
			}
			off := base + int64(i+j)
			i += j + 1
			if len(found) > 0 && off < found[len(found)-1].Offset+found[len(found)-1].Size {
				continue // inside the previous object
			}
			if o, ok := objectAt(r, size, off); ok {
				found = append(found, o)
			}
		}
	}
	if len(found) > 0 {
		locate(r, found)
	}
	return found, loaders, nil
}

// objectAt checks the ELF header at off and computes the object's extent.
func objectAt(r io.ReaderAt, size, off int64) (Object, bool) {
	var h [64]byte
	if size-off < int64(len(h)) {
		return Object{}, false
	}
	if _, err := r.ReadAt(h[:], off); err != nil {
		return Object{}, false
	}
	if elf.Class(h[elf.EI_CLASS]) != elf.ELFCLASS64 || h[elf.EI_VERSION] != byte(elf.EV_CURRENT) {
		return Object{}, false
	}
	var bo binary.ByteOrder
	switch elf.Data(h[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		bo = binary.LittleEndian
	case elf.ELFDATA2MSB:
		bo = binary.BigEndian
	default:
		return Object{}, false
	}
	if elf.Machine(bo.Uint16(h[18:])) != elf.EM_BPF || elf.Type(bo.Uint16(h[16:])) != elf.ET_REL {
		return Object{}, false
	}
	shoff := bo.Uint64(h[0x28:])
	shentsize, shnum := uint64(bo.Uint16(h[0x3a:])), uint64(bo.Uint16(h[0x3c:]))
	left := uint64(size - off)
	if shentsize != 64 || shnum == 0 || shoff > left || shnum*64 > left-shoff {
		return Object{}, false
	}
	end := shoff + shnum*64
	sh := make([]byte, shnum*64)
	if _, err := r.ReadAt(sh, off+int64(shoff)); err != nil {
		return Object{}, false
	}
	for i := uint64(0); i < shnum; i++ {
		e := sh[i*64:]
		if elf.SectionType(bo.Uint32(e[4:])) == elf.SHT_NOBITS {
			continue
		}
		so, ss := bo.Uint64(e[0x18:]), bo.Uint64(e[0x20:])
		if so > left || ss > left-so {
			return Object{}, false
		}
		end = max(end, so+ss)
	}
	if end > MaxObject {
		return Object{}, false
	}
	return Object{Offset: off, Size: int64(end)}, true
}

// locate names the section and symbol of the host ELF holding each object.
func locate(r io.ReaderAt, objs []Object) {
	if objs[0].Offset == 0 {
		return // the file is the object
	}
	f, err := elf.NewFile(r)
	if err != nil {
		return
	}
	syms, _ := f.Symbols()
	sort.Slice(syms, func(i, j int) bool { return syms[i].Value < syms[j].Value })
	for i := range objs {
		o := &objs[i]
		for _, s := range f.Sections {
			if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL || uint64(o.Offset) < s.Offset || uint64(o.Offset) >= s.Offset+s.Size {
				continue
			}
			o.Section = s.Name
			if s.Addr == 0 {
				break
			}
			addr := s.Addr + uint64(o.Offset) - s.Offset
			for _, sym := range syms {
				if sym.Value <= addr && addr < sym.Value+max(sym.Size, 1) && elf.ST_TYPE(sym.Info) != elf.STT_SECTION && sym.Name != "" {
					o.Symbol = sym.Name
				}
			}
			break
		}
	}
}
