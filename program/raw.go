package program

import (
	"errors"
	"fmt"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// ErrEmpty is returned for a raw dump with no bytes.
var ErrEmpty = errors.New("empty file (no instructions)")

// ErrTrailingBytes is returned, wrapped, together with a usable Program when a
// raw dump's size is not a multiple of 8: the whole slots are kept.
var ErrTrailingBytes = errors.New("size is not a multiple of 8")

// FromRaw makes a Program from a raw instruction dump (8-byte little-endian
// slots, e.g. `bpftool prog dump xlated id N file F`, or stdin); origin names
// the input in errors. An empty dump is an error with no Program. A dump with
// a trailing partial slot returns the Program of its whole slots AND an error
// wrapping ErrTrailingBytes that gives the byte offset, so callers can report
// the problem and still analyse what decodes.
//
// Raw dumps carry no metadata: maps are known only by the fd (or index) their
// ld_imm64 holds, and the name is empty.
func FromRaw(origin string, data []byte) (*Program, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%s: %w", origin, ErrEmpty)
	}
	whole := len(data) / insn.Size * insn.Size
	p := &Program{
		Source:  SourceRaw,
		Origin:  origin,
		Insns:   data[:whole:whole],
		InsnCnt: uint32(whole / insn.Size),
	}
	// Scan the slots as insn.Decode splits them, without building the
	// decoded program: the caller decodes it once for analysis and output.
	n := whole / insn.Size
	refs := 0 // an upper bound of the distinct maps, to size what follows
	for i := 0; i < n; i++ {
		if p.Insns[i*insn.Size] == insn.OpLdImm64 && i+1 < n {
			refs++
			i++
		}
	}
	seen := make(map[int32]bool, refs)
	p.Maps = make([]Map, 0, refs)
	for i := 0; i < n; i++ {
		if p.Insns[i*insn.Size] != insn.OpLdImm64 || i+1 >= n {
			continue
		}
		in := insn.DecodeSlot(p.Insns[i*insn.Size:])
		i++
		switch in.Src {
		case insn.PseudoMapFD, insn.PseudoMapValue, insn.PseudoMapIdx, insn.PseudoMapIdxValue:
			if !seen[in.Imm] {
				seen[in.Imm] = true
				p.Maps = append(p.Maps, Map{FD: in.Imm})
			}
		}
	}
	switch {
	case whole == 0:
		return p, fmt.Errorf("%s: %w: %d bytes at byte offset 0, less than one instruction (no whole instruction to analyse)",
			origin, ErrTrailingBytes, len(data))
	case whole != len(data):
		return p, fmt.Errorf("%s: %w: %d trailing bytes at byte offset %d (after instruction %d)",
			origin, ErrTrailingBytes, len(data)-whole, whole, whole/insn.Size-1)
	}
	return p, nil
}
