package program

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func FuzzFromELF(f *testing.F) {
	objs, _ := filepath.Glob("../testdata/*.o")
	for _, o := range objs {
		// Small seeds only: the fuzzer minimises every input that finds new
		// coverage, which takes minutes for a 16 KiB object.
		if b, err := os.ReadFile(o); err == nil && len(b) < 9*1024 {
			f.Add(b)
		}
	}
	// The objects only the direct reader reads, whatever their size.
	for _, o := range []string{"externs", "externfunc", "mapinmap", "structops", "staticprogs", "nobtfweak"} {
		if b, err := os.ReadFile("../testdata/" + o + ".bpf.o"); err == nil && len(b) >= 9*1024 {
			f.Add(b)
		}
	}
	for _, b := range crafted(f) {
		f.Add(b)
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tm := time.AfterFunc(10*time.Second, func() { panic("FromELFReader hangs: more than 10s on one input") })
		defer tm.Stop()
		progs, err := FromELFReader("fuzz.o", bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.o: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, p := range progs {
			if len(p.Insns)%8 != 0 || int(p.InsnCnt) != len(p.Insns)/8 {
				t.Fatalf("%s: %d bytes, InsnCnt %d", p.Name, len(p.Insns), p.InsnCnt)
			}
			p.Decode()
		}
	})
}

func FuzzFromRaw(f *testing.F) {
	f.Add([]byte{0x18, 0x11, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x18, 0x11, 0, 0, 7})
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := FromRaw("fuzz.bin", data)
		switch {
		case len(data) == 0:
			if p != nil || !errors.Is(err, ErrEmpty) {
				t.Fatalf("empty: %v %v", p, err)
			}
			return
		case len(data)%8 != 0:
			if !errors.Is(err, ErrTrailingBytes) {
				t.Fatalf("%d bytes: %v", len(data), err)
			}
		case err != nil:
			t.Fatal(err)
		}
		if len(p.Insns) != len(data)/8*8 {
			t.Fatalf("%d bytes kept of %d", len(p.Insns), len(data))
		}
	})
}
