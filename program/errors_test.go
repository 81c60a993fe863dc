package program

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strings"
	"testing"
)

// crafted are inputs that used to give errors saying nothing of where the
// object is broken, made from a committed object; FuzzFromELF seeds them.
func crafted(t testing.TB) map[string][]byte {
	t.Helper()
	good, err := os.ReadFile("../testdata/execsnoop.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	out := map[string][]byte{}
	shoff := le.Uint64(good[0x28:])
	out["section header table cut"] = bytes.Clone(good[:shoff+3*64+10])

	b := bytes.Clone(good)
	btfSec := f.Section(".BTF")
	hdrLen, typeOff := le.Uint32(good[btfSec.Offset+4:]), le.Uint32(good[btfSec.Offset+8:])
	first := btfSec.Offset + uint64(hdrLen+typeOff)
	b[first+7] = 0x1f // type 1: kind 31
	out["BTF unknown kind"] = b

	b = bytes.Clone(good)
	syms, _ := f.Symbols()
	symtab := f.Section(".symtab")
	for i, s := range syms {
		if s.Name == "LICENSE" {
			le.PutUint16(b[symtab.Offset+uint64(i+1)*24+6:], 0x8000)
		}
	}
	out["symbol section 32768"] = b

	b = bytes.Clone(good)
	maps := f.Section(".maps")
	for _, s := range syms {
		if int(s.Section) < len(f.Sections) && f.Sections[s.Section] == maps && elf.ST_TYPE(s.Info) == elf.STT_OBJECT {
			b[maps.Offset+s.Value+8] = 1
			break
		}
	}
	out["non-zero map definition"] = b
	return out
}

func TestErrorsSayWhere(t *testing.T) {
	c := crafted(t)
	t.Run("a cut section header table names the table, its offset and the file size", func(t *testing.T) {
		_, err := FromELFReader("x.o", bytes.NewReader(c["section header table cut"]))
		if err == nil || !strings.Contains(err.Error(), "truncated ELF: section header table at byte ") || !strings.Contains(err.Error(), "past the end of the") || strings.Contains(err.Error(), "EOF") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("an unknown BTF kind names the type id, its byte and the kind, and the programs are still read", func(t *testing.T) {
		progs, err := FromELFReader("x.o", bytes.NewReader(c["BTF unknown kind"]))
		if err != nil || len(progs) == 0 {
			t.Fatalf("%d programs, %v", len(progs), err)
		}
		le := progs[0].ObjectLoaderError
		if !strings.Contains(le, ".BTF type id 1 at byte 24 (file offset ") || !strings.Contains(le, "unknown kind 31") {
			t.Fatalf("loader error %q", le)
		}
		found := false
		for _, u := range progs[0].Unresolved {
			found = found || u.Kind == "btf" && strings.Contains(u.Reason, "type id 1")
		}
		if !found {
			t.Errorf("unresolved %v", progs[0].Unresolved)
		}
	})
	t.Run("a symbol with an invalid section is named by index", func(t *testing.T) {
		progs, err := FromELFReader("x.o", bytes.NewReader(c["symbol section 32768"]))
		if err != nil || len(progs) == 0 {
			t.Fatalf("%d programs, %v", len(progs), err)
		}
		le := progs[0].ObjectLoaderError
		if !strings.Contains(le, `symbol index `) || !strings.Contains(le, `"LICENSE" (STT_OBJECT, STB_GLOBAL): section index 32768 out of range`) {
			t.Fatalf("loader error %q", le)
		}
	})
	t.Run("a non-zero BTF map definition names the map, byte and field", func(t *testing.T) {
		progs, err := FromELFReader("x.o", bytes.NewReader(c["non-zero map definition"]))
		if err != nil || len(progs) == 0 {
			t.Fatalf("%d programs, %v", len(progs), err)
		}
		le := progs[0].ObjectLoaderError
		if !strings.Contains(le, "initializing BTF map definitions") || !strings.Contains(le, "byte 8 of its definition (field ") {
			t.Fatalf("loader error %q", le)
		}
	})
	t.Run("a raw dump shorter than one instruction says so", func(t *testing.T) {
		_, err := FromRaw("d.bin", []byte{1, 2, 3, 4, 5})
		if err == nil || strings.Contains(err.Error(), "-1") || !strings.Contains(err.Error(), "5 bytes at byte offset 0, less than one instruction") {
			t.Fatalf("error %v", err)
		}
	})
}
