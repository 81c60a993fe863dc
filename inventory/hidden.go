package inventory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Views in which a program can be seen.
const (
	ViewGetNextID = "get_next_id" // BPF_PROG_GET_NEXT_ID, what bpftool and every tool use
	ViewIter      = "bpf_iter"    // iter/bpf_prog: the kernel's own walk of its program idr
	ViewKallsyms  = "kallsyms"    // bpf_prog_<tag>_<name> symbols of JITed programs
)

// Hidden is a program present in one view of the kernel and missing from
// another: what a rootkit that filters GET_NEXT_ID (ebpfkit) leaves behind.
type Hidden struct {
	ID          uint32   `json:"id,omitempty"`   // 0 when only kallsyms knows it
	Tag         string   `json:"tag,omitempty"`  // from kallsyms
	Name        string   `json:"name,omitempty"` // from kallsyms
	SeenBy      []string `json:"seen_by"`
	MissingFrom []string `json:"missing_from"`
}

// KsymProg is one bpf_prog_<tag>_<name> symbol of /proc/kallsyms.
type KsymProg struct {
	Addr uint64
	Tag  string
	Name string
}

// ReadKallsymsPrograms lists the BPF program symbols in a kallsyms table.
func ReadKallsymsPrograms(r io.Reader) ([]KsymProg, error) {
	var out []KsymProg
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 3 || !bytes.HasPrefix(f[2], []byte("bpf_prog_")) {
			continue
		}
		addr, err := strconv.ParseUint(string(f[0]), 16, 64)
		if err != nil {
			continue
		}
		rest := string(f[2][len("bpf_prog_"):])
		tag, name, ok := strings.Cut(rest, "_")
		if !ok || len(tag) != 16 || strings.Trim(tag, "0123456789abcdef") != "" {
			continue
		}
		out = append(out, KsymProg{Addr: addr, Tag: tag, Name: name})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("kallsyms: %w", err)
	}
	return out, nil
}

// ProgIterator keeps an iter/bpf_prog program loaded, so that a caller
// that compares the views again and again (run's reconciliation) pays for
// the verification once, and each walk costs a link and a read. Without
// it every walk loaded, and reported, a new iterator program.
type ProgIterator struct {
	objs IterObjects
}

// NewProgIterator loads the iterator program.
func NewProgIterator() (*ProgIterator, error) {
	it := &ProgIterator{}
	if err := LoadIterObjects(&it.objs, nil); err != nil {
		return nil, fmt.Errorf("load the bpf_prog iterator: %w", err)
	}
	return it, nil
}

// ID is the kernel's id of the loaded iterator program.
func (it *ProgIterator) ID() (uint32, error) {
	info, err := it.objs.ListProgIds.Info()
	if err != nil {
		return 0, err
	}
	id, _ := info.ID()
	return uint32(id), nil
}

// Close unloads the iterator program.
func (it *ProgIterator) Close() error { return it.objs.Close() }

// IDs walks the kernel's program idr once.
func (it *ProgIterator) IDs() ([]uint32, error) {
	l, err := link.AttachIter(link.IterOptions{Program: it.objs.ListProgIds})
	if err != nil {
		return nil, fmt.Errorf("attach the bpf_prog iterator: %w", err)
	}
	defer l.Close()
	rd, err := l.Open()
	if err != nil {
		return nil, fmt.Errorf("open the bpf_prog iterator: %w", err)
	}
	defer rd.Close()
	b, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("read the bpf_prog iterator: %w", err)
	}
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("the bpf_prog iterator wrote %d bytes, not a whole number of ids", len(b))
	}
	ids := make([]uint32, len(b)/4)
	for i := range ids {
		ids[i] = binary.NativeEndian.Uint32(b[4*i:])
	}
	return ids, nil
}

// IterProgramIDs lists program ids through an iterator loaded for this
// one walk.
func IterProgramIDs() ([]uint32, error) {
	it, err := NewProgIterator()
	if err != nil {
		return nil, err
	}
	defer it.Close()
	return it.IDs()
}

// Views is one snapshot of every view, taken in this order: GET_NEXT_ID
// (Before), the iterator, kallsyms, GET_NEXT_ID again (After). Programs
// loaded or unloaded while it is taken appear in Before or After.
type Views struct {
	Before, After []uint32
	Iter          []uint32
	IterErr       error
	Ksyms         []KsymProg
	KsymsErr      error
	// Tags are the tags of the programs GET_NEXT_ID listed, by id, and
	// Funcs the addresses of their JITed functions (sub-programs have
	// symbols of their own, with their own tag).
	Tags  map[uint32]string
	Funcs map[uint64]bool
}

// Compare returns the programs one view shows and another misses. An id
// only counts as listed by GET_NEXT_ID if either enumeration had it, and as
// missing from the iterator only if both had it, so a load or unload during
// the snapshot is not a finding.
func (v *Views) Compare() []Hidden {
	var out []Hidden
	listed := map[uint32]bool{}
	for _, id := range v.Before {
		listed[id] = true
	}
	for _, id := range v.After {
		listed[id] = true
	}
	if v.IterErr == nil {
		iter := map[uint32]bool{}
		for _, id := range v.Iter {
			iter[id] = true
			if !listed[id] {
				out = append(out, Hidden{ID: id, SeenBy: []string{ViewIter}, MissingFrom: []string{ViewGetNextID}})
			}
		}
		for _, id := range v.Before {
			if !iter[id] && slices.Contains(v.After, id) {
				out = append(out, Hidden{ID: id, SeenBy: []string{ViewGetNextID}, MissingFrom: []string{ViewIter}})
			}
		}
	}
	if v.KsymsErr == nil {
		tags := map[string]bool{}
		for _, t := range v.Tags {
			tags[t] = true
		}
		seen := map[KsymProg]bool{}
		for _, k := range v.Ksyms {
			if tags[k.Tag] || v.Funcs[k.Addr] || seen[k] {
				continue
			}
			seen[k] = true
			out = append(out, Hidden{Tag: k.Tag, Name: k.Name, SeenBy: []string{ViewKallsyms}, MissingFrom: []string{ViewGetNextID}})
		}
	}
	return out
}

// CrossView takes the views of the running kernel and compares them,
// twice: a finding is reported only when both snapshots make it, so a
// program that came and went while one was taken is not reported.
func CrossView() (*Views, []Hidden, error) {
	return CrossViewWith(nil)
}

// CrossViewWith is CrossView walking with a kept iterator; nil loads one
// for each walk.
func CrossViewWith(it *ProgIterator) (*Views, []Hidden, error) {
	v1, first, err := snapshot(it)
	if err != nil || len(first) == 0 {
		return v1, nil, err
	}
	v2, second, err := snapshot(it)
	if err != nil {
		return nil, nil, err
	}
	return v2, confirmed(first, second), nil
}

// confirmed keeps the findings of a that b makes too.
func confirmed(a, b []Hidden) []Hidden {
	key := func(h Hidden) string {
		return fmt.Sprint(h.ID, h.Tag, h.Name, h.SeenBy, h.MissingFrom)
	}
	inB := map[string]bool{}
	for _, h := range b {
		inB[key(h)] = true
	}
	var out []Hidden
	for _, h := range a {
		if inB[key(h)] {
			out = append(out, h)
		}
	}
	return out
}

func snapshot(it *ProgIterator) (*Views, []Hidden, error) {
	v := &Views{Tags: map[uint32]string{}, Funcs: map[uint64]bool{}}
	var err error
	if v.Before, err = ProgramIDs(); err != nil {
		return nil, nil, err
	}
	if it != nil {
		v.Iter, v.IterErr = it.IDs()
	} else {
		v.Iter, v.IterErr = IterProgramIDs()
	}
	if f, err := os.Open("/proc/kallsyms"); err != nil {
		v.KsymsErr = err
	} else {
		v.Ksyms, v.KsymsErr = ReadKallsymsPrograms(f)
		f.Close()
	}
	if v.After, err = ProgramIDs(); err != nil {
		return nil, nil, err
	}
	for _, id := range append(slices.Clone(v.Before), v.After...) {
		if tag, ksyms, err := tagAndKsyms(id); err == nil {
			v.Tags[id] = tag
			for _, a := range ksyms {
				v.Funcs[a] = true
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			v.Tags[id] = "" // unreadable: its kallsyms symbol cannot be matched
		}
	}
	return v, v.Compare(), nil
}

// tagAndKsyms reads only what the kallsyms view needs of a program: its tag
// and the addresses of its JITed functions.
func tagAndKsyms(id uint32) (string, []uint64, error) {
	fd, err := fdByID(cmdProgGetFDByID, id)
	if err != nil {
		return "", nil, err
	}
	defer unix.Close(fd)
	var info progInfo
	if err := objInfo(fd, unsafe.Pointer(&info), uint32(unsafe.Sizeof(info))); err != nil {
		return "", nil, err
	}
	tag := fmt.Sprintf("%x", info.Tag[:])
	if info.NrJitedKsyms == 0 {
		return tag, nil, nil
	}
	ksyms := make([]uint64, info.NrJitedKsyms)
	var info2 progInfo
	info2.NrJitedKsyms = info.NrJitedKsyms
	info2.JitedKsyms = uint64(uintptr(unsafe.Pointer(&ksyms[0])))
	err = objInfo(fd, unsafe.Pointer(&info2), uint32(unsafe.Sizeof(info2)))
	runtime.KeepAlive(ksyms)
	if err != nil || info2.JitedKsyms == 0 {
		return tag, nil, err
	}
	return tag, ksyms, nil
}
