package insn

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/helper"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// roundTrip formats raw as a macro listing, assembles the listing and
// reports the first slot where the bytes differ.
func roundTrip(t *testing.T, what string, raw []byte) {
	t.Helper()
	insns, _ := Decode(raw)
	f := MacroFormatter{Helpers: helper.Static()}
	text := f.AppendListing(nil, insns)
	a := Assembler{Helpers: helper.Static()}
	got, err := a.Assemble(string(text))
	if err != nil {
		t.Fatalf("%s: the formatter's own text does not assemble: %v", what, err)
	}
	// Decode drops a trailing partial slot; so must the comparison.
	want := raw[:len(raw)/Size*Size]
	if bytes.Equal(got, want) {
		return
	}
	lines := strings.Split(string(text), "\n")
	for i := 0; i*Size < min(len(got), len(want)); i++ {
		g, w := got[i*Size:(i+1)*Size], want[i*Size:(i+1)*Size]
		if !bytes.Equal(g, w) {
			t.Fatalf("%s: slot %d: got % x, want % x (listing near it: %q)", what, i, g, w, lines[min(i, len(lines)-1)])
		}
	}
	t.Fatalf("%s: assembled %d bytes, want %d", what, len(got), len(want))
}

// Field values that steer the formatter into each of its branches: zero,
// registers up to r10 and beyond, the off values that mean sdiv/movsx/
// addr_space_cast, the imm values that name atomic operations, and extremes.
var (
	rtRegs = []uint8{0, 1, 2, 10, 11}
	rtOffs = []int16{0, 1, -1, 8, 16, 32, -32768}
	rtImms = []int32{0, 1, -1, 64, 0x41, 0xe1, 0xf1, 0x100, 0x110, 5000, -1 << 31}
)

func TestMacroRoundTripOfEveryOpcode(t *testing.T) {
	// Every opcode with every combination of the field values above, one
	// stream per opcode so a failure names it.
	for code := 0; code < 256; code++ {
		var raw []byte
		for _, d := range rtRegs {
			for _, s := range rtRegs {
				for _, o := range rtOffs {
					for _, i := range rtImms {
						raw = Slot{Code: uint8(code), Dst: d, Src: s, Off: o, Imm: i}.Append(raw)
						if code == OpLdImm64 {
							// Pair it with a well-formed second slot, so that the
							// ld_imm64 macros are reached, not only BPF_RAW_INSN.
							raw = Slot{Imm: i ^ 0x5a5a}.Append(raw)
						}
					}
				}
			}
		}
		roundTrip(t, "opcode 0x"+strconv.FormatUint(uint64(code), 16), raw)
	}
}

func TestMacroRoundTripOfRandomStreams(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 20_000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	raw := make([]byte, n*Size)
	for i := 0; i < n; i++ {
		b := raw[i*Size : (i+1)*Size]
		switch rng.IntN(3) {
		case 0: // anything
			binary.LittleEndian.PutUint64(b, rng.Uint64())
		default: // an opcode with interesting fields
			s := Slot{
				Code: uint8(rng.IntN(256)),
				Dst:  rtRegs[rng.IntN(len(rtRegs))],
				Src:  uint8(rng.IntN(16)),
				Off:  rtOffs[rng.IntN(len(rtOffs))],
				Imm:  rtImms[rng.IntN(len(rtImms))],
			}
			s.Append(b[:0])
		}
	}
	roundTrip(t, "random stream", raw)
}

func TestMacroRoundTripOfTestPrograms(t *testing.T) {
	// The committed objects; testdata/build/ holds uncommitted scratch (a
	// 1M-instruction object) that CI does not have.
	objs, err := filepath.Glob(testutils.Testdata("*.o"))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) == 0 {
		t.Fatal("no compiled test programs under testdata/ (make testdata)")
	}
	total := 0
	for _, path := range objs {
		name, _ := filepath.Rel(testutils.Testdata(), path)
		t.Run(name, func(t *testing.T) {
			f, err := elf.Open(path)
			if err != nil {
				t.Skipf("not a readable ELF: %v", err)
			}
			defer f.Close()
			if f.Machine != elf.EM_BPF || f.ByteOrder != binary.LittleEndian {
				t.Skipf("not a little-endian BPF object (%v, %v)", f.Machine, f.ByteOrder)
			}
			for _, sec := range f.Sections {
				if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 || sec.Size == 0 {
					continue
				}
				raw, err := sec.Data()
				if err != nil {
					t.Fatalf("section %s: %v", sec.Name, err)
				}
				roundTrip(t, name+" section "+sec.Name, raw)
				total += len(raw) / Size
			}
		})
	}
	t.Logf("%d instruction slots from %d objects round-tripped", total, len(objs))
}

// TestMacroRoundTripOfFuzzCorpora replays every []byte input of every fuzz
// corpus in the repository (decoder, ELF reader, this package's own).
func TestMacroRoundTripOfFuzzCorpora(t *testing.T) {
	var files []string
	err := filepath.WalkDir(testutils.Root(), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.Contains(filepath.ToSlash(path), "/testdata/fuzz/") {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	inputs := 0
	for _, path := range files {
		for _, raw := range corpusBytes(t, path) {
			rel, _ := filepath.Rel(testutils.Root(), path)
			roundTrip(t, rel, raw)
			inputs++
		}
	}
	t.Logf("%d []byte inputs from %d corpus files round-tripped", inputs, len(files))
}

// corpusBytes returns the []byte values of a "go test fuzz v1" corpus file.
func corpusBytes(t *testing.T, path string) [][]byte {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<24)
	if !sc.Scan() || sc.Text() != "go test fuzz v1" {
		return nil
	}
	var out [][]byte
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if lit, ok := strings.CutPrefix(line, "[]byte("); ok && strings.HasSuffix(lit, ")") {
			s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			out = append(out, []byte(s))
		}
	}
	return out
}
