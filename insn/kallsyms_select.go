package insn

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// ReadKallsymsFor is ReadKallsyms keeping only the symbols that translated
// call immediates in imms point at (__bpf_call_base + imm), plus
// __bpf_call_base itself. It reads the table twice from memory (the base
// first, then the calls); a reader of /proc/kallsyms that knows the base
// already streams the table once with ReadKallsymsAt instead.
func ReadKallsymsFor(r io.Reader, imms map[int32]bool) (*Kallsyms, error) {
	buf, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	base, err := FindCallBase(bytes.NewReader(buf))
	if err != nil {
		return nil, err
	}
	if base == 0 {
		return &Kallsyms{byAddr: map[uint64]string{}}, nil
	}
	return ReadKallsymsAt(bytes.NewReader(buf), base, imms)
}

// kallsymsLines calls line for each line of r (without its newline) and its
// 1-based number, reading through a fixed buffer: /proc/kallsyms is tens of
// megabytes, and reading it whole left that much garbage in the agent's heap
// after every read (idle RSS, docs/PERFORMANCE.md). line returns false to
// stop.
func kallsymsLines(r io.Reader, line func(n int, l []byte) (bool, error)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		more, err := line(n, sc.Bytes())
		if err != nil || !more {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("kallsyms line %d: %w", n+1, err)
	}
	return nil
}

// FindCallBase returns the address of __bpf_call_base in the kallsyms table
// r, or 0 when the table does not list it (addresses hidden read as 0).
// The address is fixed for the kernel's boot: a long-lived reader finds it
// once.
func FindCallBase(r io.Reader) (uint64, error) {
	var base uint64
	err := kallsymsLines(r, func(n int, l []byte) (bool, error) {
		if !bytes.HasSuffix(l, []byte(" __bpf_call_base")) {
			return true, nil
		}
		f := bytes.Fields(l)
		if len(f) < 3 || string(f[2]) != "__bpf_call_base" {
			return true, nil
		}
		addr, err := strconv.ParseUint(string(f[0]), 16, 64)
		if err != nil {
			return false, fmt.Errorf("kallsyms line %d: address %q: %w", n, f[0], err)
		}
		base = addr
		return false, nil
	})
	return base, err
}

// ReadKallsymsAt is ReadKallsymsFor for a table whose __bpf_call_base is
// base, in one streamed pass: it allocates a name only for the symbols it
// keeps, so naming the calls of a thousand programs costs one read of
// /proc/kallsyms and a few kilobytes, not a map of every kernel symbol.
func ReadKallsymsAt(r io.Reader, base uint64, imms map[int32]bool) (*Kallsyms, error) {
	ks := &Kallsyms{byAddr: map[uint64]string{base: "__bpf_call_base"}, callBase: base}
	want := make(map[uint64]bool, len(imms))
	for imm := range imms {
		want[base+uint64(int64(imm))] = true
	}
	err := kallsymsLines(r, func(n int, l []byte) (bool, error) {
		sp := bytes.IndexByte(l, ' ')
		if sp <= 0 {
			return true, nil
		}
		addr, ok := parseHex(l[:sp])
		if !ok {
			_, err := strconv.ParseUint(string(l[:sp]), 16, 64)
			return false, fmt.Errorf("kallsyms line %d: address %q: %w", n, l[:sp], err)
		}
		if !want[addr] {
			return true, nil
		}
		f := bytes.Fields(l)
		if len(f) < 3 {
			return true, nil
		}
		if _, dup := ks.byAddr[addr]; !dup {
			ks.byAddr[addr] = string(f[2])
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// parseHex parses a kallsyms address (hex digits, at most 64 bits) as
// strconv.ParseUint(s, 16, 64) does, without allocating: the table has a
// few hundred thousand lines.
func parseHex(b []byte) (uint64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		if v>>60 != 0 {
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}
