package insn

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// ReadKallsymsFor is ReadKallsyms keeping only the symbols that translated
// call immediates in imms point at (__bpf_call_base + imm), plus
// __bpf_call_base itself. It reads the whole table once and allocates a name
// only for the symbols it keeps: naming the calls of a thousand programs
// then costs one read of /proc/kallsyms, not a map of every kernel symbol.
func ReadKallsymsFor(r io.Reader, imms map[int32]bool) (*Kallsyms, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	ks := &Kallsyms{byAddr: map[uint64]string{}}
	// First pass: __bpf_call_base, which any line may hold.
	for line, rest := 0, buf; len(rest) > 0; line++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		f := bytes.Fields(l)
		if len(f) >= 3 && string(f[2]) == "__bpf_call_base" {
			addr, err := strconv.ParseUint(string(f[0]), 16, 64)
			if err != nil {
				return nil, fmt.Errorf("kallsyms line %d: address %q: %w", line+1, f[0], err)
			}
			ks.callBase = addr
			ks.byAddr[addr] = "__bpf_call_base"
			break
		}
	}
	if ks.callBase == 0 {
		return ks, nil
	}
	want := make(map[uint64]bool, len(imms))
	for imm := range imms {
		want[ks.callBase+uint64(int64(imm))] = true
	}
	for line, rest := 0, buf; len(rest) > 0; line++ {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte{'\n'})
		sp := bytes.IndexByte(l, ' ')
		if sp <= 0 {
			continue
		}
		addr, err := strconv.ParseUint(string(l[:sp]), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms line %d: address %q: %w", line+1, l[:sp], err)
		}
		if !want[addr] {
			continue
		}
		f := bytes.Fields(l)
		if len(f) < 3 {
			continue
		}
		if _, dup := ks.byAddr[addr]; !dup {
			ks.byAddr[addr] = string(f[2])
		}
	}
	return ks, nil
}
