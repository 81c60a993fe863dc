package program

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// Unresolved is something a program refers to that the object does not
// resolve offline: a map without a readable definition, an extern the loader
// supplies, a section whose program type is unknown. The program is still
// analysed; these are reported beside its verdict.
type Unresolved struct {
	Kind   string `json:"kind"`           // map, extern, kconfig, ksym, section, btf, license, reloc
	Name   string `json:"name,omitempty"` // the symbol, map or section concerned
	At     int    `json:"at"`             // instruction slot, -1 for the whole object
	Reason string `json:"reason"`
}

func (u Unresolved) String() string {
	at := "object"
	if u.At >= 0 {
		at = fmt.Sprintf("insn %d", u.At)
	}
	if u.Name == "" {
		return fmt.Sprintf("%s (%s): %s", u.Kind, at, u.Reason)
	}
	return fmt.Sprintf("%s %s (%s): %s", u.Kind, u.Name, at, u.Reason)
}

// StructOps places a struct_ops program in its ops struct: variable Ops of
// kernel type Type (sched_ext_ops, tcp_congestion_ops, …), member Member.
type StructOps struct {
	Ops    string `json:"ops"`
	Type   string `json:"type,omitempty"`
	Member string `json:"member"`
}

// directObject is an ELF object read with debug/elf alone.
type directObject struct {
	origin string
	f      *elf.File
	syms   []elf.Symbol // index i is symbol i+1 of .symtab
	data   [][]byte     // section contents by index (nil when not read)
	relocs map[int]map[uint64]elf.Symbol
	relIdx map[int]map[uint64]uint32
	spec   *btf.Spec
	btfErr error

	license    string
	objProblem []Unresolved // reported on every program
	maps       map[string]Map
	mapProblem map[string]string // map name → why its definition is unreadable
	kconfig    map[string]bool
	ksyms      map[string]bool
	funcs      map[int][]elf.Symbol // section index → STT_FUNC symbols by offset
	structOps  map[string]*StructOps
	// details say precisely where the object is malformed; they complete
	// the object loader's error when it was vaguer.
	details []string
}

// ReadELFDirect reads every program of the ELF object r with debug/elf
// alone, never with cilium/ebpf's loader: what FromELFReader falls back to
// when that loader refuses an object. Programs come out in object order.
func ReadELFDirect(origin string, r io.ReaderAt) (progs []*Program, err error) {
	defer func() {
		if v := recover(); v != nil {
			progs, err = nil, fmt.Errorf("%s: malformed ELF object (parser failed: %v)", origin, v)
		}
	}()
	if _, err := checkELF(r); err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	progs, err = fromELFDirect(origin, r, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", origin, err)
	}
	return progs, nil
}

// fromELFDirect reads every program of an object with debug/elf, for when
// cilium/ebpf's loader refuses the object; loaderErr says why it did, and
// every program carries it.
func fromELFDirect(origin string, r io.ReaderAt, loaderErr error) ([]*Program, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("truncated or corrupt ELF: %w", err)
	}
	o := &directObject{
		origin:     origin,
		f:          f,
		data:       make([][]byte, len(f.Sections)),
		relocs:     map[int]map[uint64]elf.Symbol{},
		relIdx:     map[int]map[uint64]uint32{},
		maps:       map[string]Map{},
		mapProblem: map[string]string{},
		kconfig:    map[string]bool{},
		ksyms:      map[string]bool{},
		funcs:      map[int][]elf.Symbol{},
		structOps:  map[string]*StructOps{},
	}
	if o.syms, err = f.Symbols(); err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return nil, fmt.Errorf("symbol table: %w", err)
	}
	for i, s := range f.Sections {
		if s.Type == elf.SHT_NOBITS || s.Type == elf.SHT_NULL {
			continue
		}
		if s.Flags&elf.SHF_EXECINSTR != 0 || s.Type == elf.SHT_REL || isDataSection(s.Name) ||
			s.Name == "license" || s.Name == "maps" || s.Name == ".maps" || strings.HasPrefix(s.Name, ".struct_ops") {
			if o.data[i], err = s.Data(); err != nil {
				return nil, fmt.Errorf("section %s (index %d, offset %d): %w", s.Name, i, s.Offset, err)
			}
		}
	}
	if err := o.readRelocs(); err != nil {
		return nil, err
	}
	o.checkSymbols()
	o.readLicense()
	o.readBTF(r)
	o.readMaps()
	o.readStructOps()
	for _, s := range o.syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && int(s.Section) > 0 && int(s.Section) < len(f.Sections) {
			o.funcs[int(s.Section)] = append(o.funcs[int(s.Section)], s)
		}
	}
	for _, fs := range o.funcs {
		sort.SliceStable(fs, func(i, j int) bool { return fs[i].Value < fs[j].Value })
	}

	var progs []*Program
	for i, s := range f.Sections {
		if s.Type != elf.SHT_PROGBITS || s.Flags&elf.SHF_EXECINSTR == 0 || s.Name == ".text" {
			continue
		}
		for _, sym := range o.funcs[i] {
			p, err := o.program(i, sym, loaderErr)
			if err != nil {
				return nil, fmt.Errorf("section %s: program %s: %w", s.Name, sym.Name, err)
			}
			progs = append(progs, p)
		}
	}
	return progs, nil
}

// checkSymbols reports symbols whose section index is out of range: by
// symbol index, since such symbols often have no name.
func (o *directObject) checkSymbols() {
	for i, s := range o.syms {
		sec := s.Section
		if sec == elf.SHN_UNDEF || sec >= elf.SHN_LORESERVE && (sec == elf.SHN_ABS || sec == elf.SHN_COMMON || sec == elf.SHN_XINDEX) {
			continue
		}
		if int(sec) < len(o.f.Sections) {
			continue
		}
		name := strconvQuote(s.Name)
		if s.Name == "" {
			name = "(no name)"
		}
		detail := fmt.Sprintf("symbol index %d %s (%v, %v): section index %d out of range (%d sections)",
			i+1, name, elf.ST_TYPE(s.Info), elf.ST_BIND(s.Info), sec, len(o.f.Sections))
		o.details = append(o.details, detail)
		o.objProblem = append(o.objProblem, Unresolved{Kind: "symbol", Name: s.Name, At: -1, Reason: detail})
	}
}

func (o *directObject) symbol(idx uint32) (elf.Symbol, bool) {
	if idx == 0 || int(idx) > len(o.syms) {
		return elf.Symbol{}, false
	}
	return o.syms[idx-1], true
}

// readRelocs reads every SHT_REL section (BPF objects use REL, no addends).
func (o *directObject) readRelocs() error {
	for i, s := range o.f.Sections {
		if s.Type != elf.SHT_REL {
			continue
		}
		if int(s.Info) >= len(o.f.Sections) {
			return fmt.Errorf("relocation section %s (index %d): target section index %d out of range (%d sections)", s.Name, i, s.Info, len(o.f.Sections))
		}
		data := o.data[i]
		if len(data)%16 != 0 {
			return fmt.Errorf("relocation section %s (index %d): size %d is not a multiple of 16", s.Name, i, len(data))
		}
		m, mi := map[uint64]elf.Symbol{}, map[uint64]uint32{}
		for off := 0; off+16 <= len(data); off += 16 {
			at := o.f.ByteOrder.Uint64(data[off:])
			idx := uint32(o.f.ByteOrder.Uint64(data[off+8:]) >> 32)
			sym, ok := o.symbol(idx)
			if !ok {
				return fmt.Errorf("relocation section %s entry %d (byte %d): symbol index %d out of range (%d symbols)", s.Name, off/16, off, idx, len(o.syms))
			}
			m[at], mi[at] = sym, idx
		}
		o.relocs[int(s.Info)], o.relIdx[int(s.Info)] = m, mi
	}
	return nil
}

// readLicense reads the license section as libbpf does: the string up to
// the first NUL is what the kernel gets.
func (o *directObject) readLicense() {
	n := 0
	for i, s := range o.f.Sections {
		if s.Name != "license" {
			continue
		}
		n++
		lic, rest, _ := bytes.Cut(o.data[i], []byte{0})
		if n == 1 {
			o.license = string(lic)
		} else {
			o.objProblem = append(o.objProblem, Unresolved{Kind: "license", Name: string(lic), At: -1,
				Reason: fmt.Sprintf("section license (index %d) is not the first license section; the loader reads only the first (%q)", i, o.license)})
		}
		if extra := strings.Trim(string(rest), "\x00"); extra != "" && n == 1 {
			o.objProblem = append(o.objProblem, Unresolved{Kind: "license", Name: extra, At: -1,
				Reason: fmt.Sprintf("the license section holds more strings after %q; the loader reads only the first", o.license)})
		}
	}
}

func (o *directObject) readBTF(r io.ReaderAt) {
	if o.f.Section(".BTF") == nil {
		return
	}
	if sec := o.f.Section(".BTF"); sec != nil && sec.Type != elf.SHT_NOBITS {
		if data, err := sec.Data(); err == nil {
			if err := checkBTF(data, sec.Offset, o.f.ByteOrder); err != nil {
				o.btfErr = err
				o.details = append(o.details, err.Error())
				o.objProblem = append(o.objProblem, Unresolved{Kind: "btf", Name: ".BTF", At: -1, Reason: "unreadable, so map definitions and extern kinds are unknown: " + err.Error()})
				return
			}
		}
	}
	spec, err := btf.LoadSpecFromReader(r)
	if err != nil {
		o.btfErr = err
		o.objProblem = append(o.objProblem, Unresolved{Kind: "btf", Name: ".BTF", At: -1, Reason: "unreadable, so map definitions and extern kinds are unknown: " + err.Error()})
		return
	}
	o.spec = spec
	for _, ds := range []string{".kconfig", ".ksyms"} {
		var sec *btf.Datasec
		if err := spec.TypeByName(ds, &sec); err != nil {
			continue
		}
		for _, v := range sec.Vars {
			if v.Type == nil {
				continue
			}
			if ds == ".kconfig" {
				o.kconfig[v.Type.TypeName()] = true
			} else {
				o.ksyms[v.Type.TypeName()] = true
			}
		}
	}
}

// readMaps reads BTF map definitions (.maps) and legacy ones (maps), and
// the global-data sections as the array maps the loader makes of them.
func (o *directObject) readMaps() {
	for i, s := range o.f.Sections {
		switch {
		case isDataSection(s.Name) && s.Name != ".kconfig":
			size := s.Size
			o.maps[s.Name] = Map{Name: s.Name, Type: mapTypeArray, KeySize: 4, ValueSize: uint32(size), MaxEntries: 1}
		case s.Name == "maps":
			o.readLegacyMaps(i)
		case s.Name == ".maps":
			o.readBTFMaps(i)
		}
	}
}

const (
	mapTypeArray       = 2
	mapTypeProgArray   = 3
	mapTypeArrayOfMaps = 12
	mapTypeHashOfMaps  = 13
	mapTypeStructOps   = 26
)

func (o *directObject) readLegacyMaps(sec int) {
	data := o.data[sec]
	for _, s := range o.syms {
		if int(s.Section) != sec || elf.ST_TYPE(s.Info) == elf.STT_SECTION {
			continue
		}
		if s.Size < 16 || s.Value > uint64(len(data)) || s.Size > uint64(len(data))-s.Value {
			o.mapProblem[s.Name] = fmt.Sprintf("legacy definition at byte %d, size %d, does not fit section maps (%d bytes)", s.Value, s.Size, len(data))
			continue
		}
		d := data[s.Value:]
		bo := o.f.ByteOrder
		o.maps[s.Name] = Map{Name: s.Name, Type: bo.Uint32(d), KeySize: bo.Uint32(d[4:]), ValueSize: bo.Uint32(d[8:]), MaxEntries: bo.Uint32(d[12:])}
	}
}

func (o *directObject) readBTFMaps(sec int) {
	var ds *btf.Datasec
	if o.spec != nil {
		_ = o.spec.TypeByName(".maps", &ds)
	}
	defs := map[string]*btf.Struct{}
	if ds != nil {
		for _, v := range ds.Vars {
			vr, ok := v.Type.(*btf.Var)
			if !ok {
				continue
			}
			if st, ok := btf.UnderlyingType(vr.Type).(*btf.Struct); ok {
				defs[vr.Name] = st
			}
		}
	}
	for _, s := range o.syms {
		if int(s.Section) != sec || elf.ST_TYPE(s.Info) == elf.STT_SECTION {
			continue
		}
		st := defs[s.Name]
		if st == nil {
			why := "no BTF definition (the object has no .BTF)"
			if o.btfErr != nil {
				why = "no BTF definition (.BTF unreadable)"
			} else if o.spec != nil {
				why = "no BTF definition in DATASEC .maps"
			}
			o.maps[s.Name] = Map{Name: s.Name}
			o.mapProblem[s.Name] = why
			continue
		}
		if nz := firstNonZero(o.data[sec], s.Value, s.Size); nz >= 0 {
			field := "no field"
			for _, mem := range st.Members {
				start := uint64(mem.Offset.Bytes())
				size, _ := btf.Sizeof(mem.Type)
				if uint64(nz) >= start && uint64(nz) < start+uint64(size) {
					field = "field " + mem.Name
				}
			}
			detail := fmt.Sprintf("map %s: byte %d of its definition (%s; section .maps byte %d) is %#02x, but a BTF map definition holds only zeroes (values are in its BTF type)",
				s.Name, nz, field, s.Value+uint64(nz), o.data[sec][s.Value+uint64(nz)])
			o.details = append(o.details, detail)
		}
		m, problem := btfMapDef(s.Name, st)
		o.maps[s.Name] = m
		if problem != "" {
			o.mapProblem[s.Name] = problem
		}
	}
}

// btfMapDef reads a BTF-defined map: __uint(name, v) is a pointer to an
// array of v elements, __type(name, T) a pointer to T. Fields it does not
// know are reported, the rest is kept.
func btfMapDef(name string, st *btf.Struct) (Map, string) {
	m := Map{Name: name}
	var unknown []string
	for _, mem := range st.Members {
		ptr, _ := btf.UnderlyingType(mem.Type).(*btf.Pointer)
		uintVal := func() (uint32, bool) {
			if ptr == nil {
				return 0, false
			}
			a, ok := btf.UnderlyingType(ptr.Target).(*btf.Array)
			if !ok {
				return 0, false
			}
			return a.Nelems, true
		}
		size := func() uint32 {
			if ptr == nil {
				return 0
			}
			n, err := btf.Sizeof(ptr.Target)
			if err != nil {
				return 0
			}
			return uint32(n)
		}
		switch mem.Name {
		case "type":
			m.Type, _ = uintVal()
		case "max_entries":
			m.MaxEntries, _ = uintVal()
		case "key_size":
			m.KeySize, _ = uintVal()
		case "value_size":
			m.ValueSize, _ = uintVal()
		case "key":
			m.KeySize = size()
		case "value":
			m.ValueSize = size()
		case "values":
			// map-in-map or prog array initial values: any inner definition
			// is accepted; the outer map is what the program references.
		case "map_flags", "map_extra", "numa_node", "pinning":
		default:
			unknown = append(unknown, mem.Name)
		}
	}
	if m.ValueSize == 0 && (m.Type == mapTypeProgArray || m.Type == mapTypeArrayOfMaps || m.Type == mapTypeHashOfMaps) {
		m.ValueSize = 4 // a program or map fd
	}
	if len(unknown) > 0 {
		return m, fmt.Sprintf("BTF map definition has fields the loader may not know: %s", strings.Join(unknown, ", "))
	}
	return m, ""
}

// readStructOps maps the programs referenced from .struct_ops sections to
// their ops variable and member.
func (o *directObject) readStructOps() {
	for i, s := range o.f.Sections {
		if !strings.HasPrefix(s.Name, ".struct_ops") {
			continue
		}
		var vars []elf.Symbol
		for _, sym := range o.syms {
			if int(sym.Section) == i && elf.ST_TYPE(sym.Info) == elf.STT_OBJECT {
				vars = append(vars, sym)
			}
		}
		for at, target := range o.relocs[i] {
			so := &StructOps{Member: fmt.Sprintf("+%d", at)}
			for _, v := range vars {
				if at >= v.Value && at < v.Value+v.Size {
					so.Ops = v.Name
					so.Member = fmt.Sprintf("+%d", at-v.Value)
					o.maps[v.Name] = Map{Name: v.Name, Type: mapTypeStructOps, ValueSize: uint32(v.Size), MaxEntries: 1}
					if st := o.structType(s.Name, v.Name); st != nil {
						so.Type = st.Name
						for _, mem := range st.Members {
							if uint64(mem.Offset.Bytes()) == at-v.Value {
								so.Member = mem.Name
							}
						}
					}
				}
			}
			o.structOps[target.Name] = so
		}
	}
}

func (o *directObject) structType(section, variable string) *btf.Struct {
	if o.spec == nil {
		return nil
	}
	var ds *btf.Datasec
	if o.spec.TypeByName(section, &ds) != nil {
		return nil
	}
	for _, v := range ds.Vars {
		if vr, ok := v.Type.(*btf.Var); ok && vr.Name == variable {
			st, _ := btf.UnderlyingType(vr.Type).(*btf.Struct)
			return st
		}
	}
	return nil
}

// patch is a call or function address whose offset is known once the
// callee is placed.
type patch struct {
	slot int
	key  [2]uint64 // callee section index, byte offset
}

// function is one function symbol's place in a linked program.
type function struct {
	sec   int
	start uint64 // byte offset in its section
	size  uint64
	name  string
	at    int // first slot in the linked program
}

func (o *directObject) funcAt(sec int, off uint64) (function, bool) {
	for _, s := range o.funcs[sec] {
		if off == s.Value {
			return function{sec: sec, start: s.Value, size: s.Size, name: s.Name}, true
		}
	}
	return function{}, false
}

func (o *directObject) program(sec int, sym elf.Symbol, loaderErr error) (*Program, error) {
	section := o.f.Sections[sec].Name
	p := &Program{
		Source:    SourceELF,
		Origin:    o.origin,
		Name:      sym.Name,
		Section:   section,
		License:   o.license,
		BigEndian: o.f.ByteOrder == binary.BigEndian,
		Refs:      map[int]Ref{},
		Data:      map[string][]byte{},
		StructOps: o.structOps[sym.Name],
	}
	if loaderErr != nil {
		p.ObjectLoaderError = loaderErr.Error()
		if len(o.details) > 0 {
			p.ObjectLoaderError += " (" + strings.Join(o.details, "; ") + ")"
		}
	}
	if st, ok := sectionType(section); ok {
		p.Type, p.ExpectedAttachType, p.Flags, p.AttachTo = st.progType, st.attachType, st.flags, st.attachTo
	} else {
		p.Unresolved = append(p.Unresolved, Unresolved{Kind: "section", Name: section, At: -1, Reason: "the section name names no program type the loader knows"})
	}
	p.Unresolved = append(p.Unresolved, o.objProblem...)
	for i, s := range o.f.Sections {
		if isDataSection(s.Name) && s.Name != ".kconfig" {
			if s.Type == elf.SHT_NOBITS {
				p.Data[s.Name] = make([]byte, s.Size)
			} else {
				p.Data[s.Name] = o.data[i]
			}
		}
	}

	funcs := []function{{sec: sec, start: sym.Value, size: sym.Size, name: sym.Name}}
	placed := map[[2]uint64]int{{uint64(sec), sym.Value}: 0}
	var (
		out     []byte
		pending []patch
		callees []function
	)
	seenMap := map[string]bool{}
	addMap := func(name string) {
		if m, ok := o.maps[name]; ok && !seenMap[name] {
			seenMap[name] = true
			p.Maps = append(p.Maps, m)
		}
	}
	for fi := 0; fi < len(funcs); fi++ {
		fn := &funcs[fi]
		code := o.data[fn.sec]
		if fn.start > uint64(len(code)) || fn.size > uint64(len(code))-fn.start || fn.size%8 != 0 {
			return nil, fmt.Errorf("function %s spans bytes %d..%d of section %s (%d bytes, in 8-byte instructions)", fn.name, fn.start, fn.start+fn.size, o.f.Sections[fn.sec].Name, len(code))
		}
		fn.at = len(out) / 8
		out = append(out, code[fn.start:fn.start+fn.size]...)
		body := out[fn.at*8:]
		rel := o.relocs[fn.sec]
		for off := uint64(0); off+8 <= fn.size; off += 8 {
			slot := fn.at + int(off/8)
			ins := body[off:]
			code, regs := ins[0], ins[1]
			src := regs >> 4
			if o.f.ByteOrder == binary.BigEndian {
				src = regs & 0xf
			}
			imm := int32(o.f.ByteOrder.Uint32(ins[4:]))
			isCall := code == 0x85
			isLd := code == 0x18
			target, hasRel := rel[fn.start+off]
			var calleeOff uint64
			callee := -1
			switch {
			case hasRel && target.Section == elf.SHN_UNDEF:
				o.external(p, slot, ins, isCall, isLd, target.Name)
				continue
			case hasRel && isCall && src == 1, hasRel && isLd && src == 4,
				hasRel && isLd && int(target.Section) < len(o.f.Sections) && o.f.Sections[target.Section].Flags&elf.SHF_EXECINSTR != 0:
				callee = int(target.Section)
				if isCall {
					calleeOff = uint64(int64(target.Value) + (int64(imm)+1)*8)
				} else {
					calleeOff = uint64(int64(target.Value) + int64(imm))
				}
			case hasRel:
				o.dataRef(p, slot, ins, isLd, target, imm, addMap)
				continue
			case isCall && src == 1:
				callee = fn.sec
				calleeOff = uint64(int64(fn.start+off) + (int64(imm)+1)*8)
			default:
				continue
			}
			cf, ok := o.funcAt(callee, calleeOff)
			if !ok {
				p.Refs[slot] = Ref{Kind: RefUnknown}
				p.Unresolved = append(p.Unresolved, Unresolved{Kind: "reloc", At: slot, Reason: fmt.Sprintf("call or function address targets byte %d of section index %d, where no function starts", calleeOff, callee)})
				continue
			}
			if isLd {
				o.setSrc(ins, 4) // BPF_PSEUDO_FUNC
			}
			p.Refs[slot] = Ref{Kind: RefFunc, Name: cf.name}
			// The callee's slot is known once placed: patch below.
			pending = append(pending, patch{slot: slot, key: [2]uint64{uint64(callee), calleeOff}})
			callees = append(callees, cf)
		}
		// Callees are appended breadth first, each function's in name
		// order, as cilium/ebpf links them, so both readers give the same
		// instructions and so the same fingerprint.
		sort.SliceStable(callees, func(i, j int) bool { return callees[i].name < callees[j].name })
		for _, cf := range callees {
			key := [2]uint64{uint64(cf.sec), cf.start}
			if _, ok := placed[key]; !ok {
				placed[key] = len(funcs)
				funcs = append(funcs, cf)
			}
		}
		callees = callees[:0]
	}
	for _, pt := range pending {
		at := funcs[placed[pt.key]].at
		o.f.ByteOrder.PutUint32(out[pt.slot*8+4:], uint32(int32(at-(pt.slot+1))))
	}
	if !o.littleEndian() {
		out = toLittleEndian(out)
	}
	p.Insns = out
	p.InsnCnt = uint32(len(out) / 8)
	for name, why := range o.mapProblem {
		if seenMap[name] {
			p.Unresolved = append(p.Unresolved, Unresolved{Kind: "map", Name: name, At: -1, Reason: why})
		}
	}
	sort.SliceStable(p.Unresolved, func(i, j int) bool { return p.Unresolved[i].At < p.Unresolved[j].At })
	return p, nil
}

func (o *directObject) littleEndian() bool { return o.f.ByteOrder != binary.BigEndian }

// setSrc sets an instruction's src register in the object's byte order.
func (o *directObject) setSrc(ins []byte, src byte) {
	if o.littleEndian() {
		ins[1] = ins[1]&0x0f | src<<4
	} else {
		ins[1] = ins[1]&0xf0 | src
	}
}

// external classifies a relocation against an undefined symbol: a kfunc, a
// kconfig value or kernel symbol the loader patches in, or an extern the
// loader must link in before loading.
func (o *directObject) external(p *Program, slot int, ins []byte, isCall, isLd bool, name string) {
	switch {
	case isCall && o.ksyms[name]:
		o.setSrc(ins, 2) // BPF_PSEUDO_KFUNC_CALL, as the loader submits it
		o.f.ByteOrder.PutUint32(ins[4:], ^uint32(0))
		p.Refs[slot] = Ref{Kind: RefKfunc, Name: name}
	case isLd && o.kconfig[name]:
		p.Refs[slot] = Ref{Kind: RefKconfig, Name: name}
	case isLd && o.ksyms[name]:
		p.Refs[slot] = Ref{Kind: RefKsym, Name: name}
	default:
		p.Refs[slot] = Ref{Kind: RefExtern, Name: name}
		what := "extern variable"
		if isCall {
			what = "extern function"
		}
		why := what + " defined neither in the object nor as a kernel symbol (__ksym) or kconfig value: the loader must link it in before loading"
		if o.spec == nil {
			why = what + " not defined in the object, and without BTF its kind (kfunc, kconfig, linked function) is unknown"
		}
		p.Unresolved = append(p.Unresolved, Unresolved{Kind: "extern", Name: name, At: slot, Reason: why})
	}
}

// dataRef classifies a relocation against a defined symbol outside code:
// a map, or an address inside a global-data section. Instructions are set
// as cilium/ebpf submits them: map fd 0, a data offset in the second slot.
func (o *directObject) dataRef(p *Program, slot int, ins []byte, isLd bool, target elf.Symbol, imm int32, addMap func(string)) {
	sec := ""
	if int(target.Section) < len(o.f.Sections) {
		sec = o.f.Sections[target.Section].Name
	}
	if !isLd || len(ins) < 16 {
		p.Refs[slot] = Ref{Kind: RefUnknown, Name: target.Name}
		p.Unresolved = append(p.Unresolved, Unresolved{Kind: "reloc", Name: target.Name, At: slot, Reason: fmt.Sprintf("relocation against section %q on an instruction that is not ld_imm64", sec)})
		return
	}
	switch {
	case sec == "maps" || sec == ".maps":
		o.setSrc(ins, 1) // BPF_PSEUDO_MAP_FD
		o.f.ByteOrder.PutUint32(ins[4:], 0)
		p.Refs[slot] = Ref{Kind: RefMap, Name: target.Name}
		addMap(target.Name)
		if _, ok := o.maps[target.Name]; !ok {
			p.Unresolved = append(p.Unresolved, Unresolved{Kind: "map", Name: target.Name, At: slot, Reason: "no definition"})
		}
	case isDataSection(sec):
		off := int64(imm)
		if elf.ST_TYPE(target.Info) != elf.STT_SECTION {
			off += int64(target.Value)
		}
		o.setSrc(ins, 2) // BPF_PSEUDO_MAP_VALUE
		o.f.ByteOrder.PutUint32(ins[4:], 0)
		o.f.ByteOrder.PutUint32(ins[12:], uint32(off))
		p.Refs[slot] = Ref{Kind: RefData, Name: sec, Section: sec, Offset: off}
		addMap(sec)
	default:
		p.Refs[slot] = Ref{Kind: RefUnknown, Name: target.Name}
		p.Unresolved = append(p.Unresolved, Unresolved{Kind: "reloc", Name: target.Name, At: slot, Reason: fmt.Sprintf("ld_imm64 of a symbol in section %q, which is neither maps nor global data", sec)})
	}
}

// toLittleEndian re-encodes big-endian instructions (bpfeb) the way every
// consumer reads them.
func toLittleEndian(b []byte) []byte {
	out := make([]byte, len(b))
	for i := 0; i+8 <= len(b); i += 8 {
		out[i] = b[i]
		out[i+1] = b[i+1]>>4 | b[i+1]<<4
		binary.LittleEndian.PutUint16(out[i+2:], binary.BigEndian.Uint16(b[i+2:]))
		binary.LittleEndian.PutUint32(out[i+4:], binary.BigEndian.Uint32(b[i+4:]))
	}
	return out
}

// firstNonZero returns the offset from off of the first non-zero byte of
// data[off:off+n], or -1.
func firstNonZero(data []byte, off, n uint64) int {
	if off > uint64(len(data)) {
		return -1
	}
	end := min(off+n, uint64(len(data)))
	for i := off; i < end; i++ {
		if data[i] != 0 {
			return int(i - off)
		}
	}
	return -1
}

func strconvQuote(s string) string { return strconv.Quote(s) }
