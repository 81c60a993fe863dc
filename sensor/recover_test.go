package sensor

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"testing"
	"unsafe"

	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// bigLoad is the records of a load whose chunks after the first the kernel
// did not write (no room in the ring): header with the loader's address,
// chunk 0, a verdict with chunks_lost and the hash of every instruction,
// and an exit with the tag the kernel would compute.
func bigLoad(t *testing.T, id uint64, insns []byte, addr uint64) [][]byte {
	t.Helper()
	chunks := (len(insns)/8 + chunkInsns - 1) / chunkInsns
	if chunks < 2 {
		t.Fatalf("%d instructions fit one chunk", len(insns)/8)
	}
	h := sentrySentryHeader{Pid: 4242, Tid: 4242, InsnCnt: uint32(len(insns) / 8), ProgType: 5, Chunks: uint32(chunks), InsnsPtr: addr}
	h.H.Kind, h.H.LoadId, h.H.Pid = kindHeader, id, 4242
	hb, _ := binary.Append(nil, binary.LittleEndian, &h)
	v := sentrySentryVerdictRec{InsnHash: kernel.Hash(insns), RuleIndex: -1, ChunksLost: uint32(chunks - 1)}
	v.H.Kind, v.H.LoadId, v.H.Pid = kindVerdict, id, 4242
	vb, _ := binary.Append(nil, binary.LittleEndian, &v)
	x := sentrySentryExit{Ret: 5, ProgId: 77}
	tag, _ := progTags(insns)
	raw, err := hex.DecodeString(tag)
	if err != nil || len(raw) != len(x.Tag) {
		t.Fatalf("tag %q: %v", tag, err)
	}
	copy(x.Tag[:], raw)
	x.H.Kind, x.H.LoadId, x.H.Pid = kindExit, id, 4242
	xb, _ := binary.Append(nil, binary.LittleEndian, &x)
	return [][]byte{hb, encChunk(id, 0, insns[:chunkInsns*8], false), vb, xb}
}

// memOf serves a loader's memory: want is what the loader holds at addr.
func memOf(addr uint64, want []byte, err error) memReader {
	return func(pid uint32, at uint64, n int) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		if pid != 4242 || at != addr || n != len(want) {
			return nil, errors.New("read of the wrong range")
		}
		return slices.Clone(want), nil
	}
}

func TestRecoveryReadsWhatTheKernelJudgedFromTheLoader(t *testing.T) {
	insns := genInsns(3 * chunkInsns)
	a := newAssembler()
	a.readMem = memOf(0x7000, insns, nil)
	evs := feed(t, a, bigLoad(t, 1, insns, 0x7000))
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if !ev.Complete() || ev.Program.Truncated || !ev.Recovered || !bytes.Equal(ev.Program.Insns, insns) {
		t.Fatalf("complete=%v truncated=%v recovered=%v missing=%v, %d bytes", ev.Complete(), ev.Program.Truncated, ev.Recovered, ev.Missing, len(ev.Program.Insns))
	}
	if ev.ChunksReceived != 1 || ev.JudgedCopyDiffers {
		t.Errorf("chunks received %d (the ring's, want 1), judged copy differs %v", ev.ChunksReceived, ev.JudgedCopyDiffers)
	}
	if a.recoverFailed+a.recoverMismatch != 0 {
		t.Errorf("failed %d mismatch %d", a.recoverFailed, a.recoverMismatch)
	}
}

// The loader changed its instructions after the kernel read them: the copy
// does not hash to insn_hash and is not taken for the judged program.
func TestRecoveryRefusesACopyTheKernelDidNotJudge(t *testing.T) {
	insns := genInsns(3 * chunkInsns)
	changed := slices.Clone(insns)
	changed[8*700+4] ^= 1 // one immediate in the third chunk
	a := newAssembler()
	a.readMem = memOf(0x7000, changed, nil)
	ev := feed(t, a, bigLoad(t, 1, insns, 0x7000))[0]
	if ev.Complete() || ev.Recovered || !ev.Program.Truncated || !slices.Contains(ev.Missing, "chunks") {
		t.Fatalf("complete=%v recovered=%v truncated=%v missing=%v", ev.Complete(), ev.Recovered, ev.Program.Truncated, ev.Missing)
	}
	if !bytes.Equal(ev.Program.Insns, insns[:chunkInsns*8]) {
		t.Errorf("kept %d bytes, want the %d the ring delivered", len(ev.Program.Insns), chunkInsns*8)
	}
	if a.recoverMismatch != 1 {
		t.Errorf("recover_mismatch = %d, want 1", a.recoverMismatch)
	}
}

// A copy that hashes like the judged program (the hash is not collision
// resistant) but is not what the kernel loaded (its SHA-1 tag) is dropped.
func TestRecoveryRefusesACopyThatIsNotWhatTheKernelLoaded(t *testing.T) {
	insns := genInsns(3 * chunkInsns)
	recs := bigLoad(t, 1, insns, 0x7000)
	var x sentrySentryExit
	if _, err := binary.Decode(recs[3], binary.LittleEndian, &x); err != nil {
		t.Fatal(err)
	}
	x.Tag[0] ^= 0xff
	recs[3], _ = binary.Append(nil, binary.LittleEndian, &x)
	a := newAssembler()
	a.readMem = memOf(0x7000, insns, nil)
	ev := feed(t, a, recs)[0]
	if ev.Complete() || ev.Recovered || ev.JudgedCopyDiffers || len(ev.Program.Insns) != 0 {
		t.Fatalf("complete=%v recovered=%v judged copy differs=%v, %d bytes kept", ev.Complete(), ev.Recovered, ev.JudgedCopyDiffers, len(ev.Program.Insns))
	}
	if a.recoverMismatch != 1 {
		t.Errorf("recover_mismatch = %d, want 1", a.recoverMismatch)
	}
}

func TestRecoveryCountsAnUnreadableLoader(t *testing.T) {
	insns := genInsns(2 * chunkInsns)
	a := newAssembler()
	a.readMem = memOf(0x7000, nil, errors.New("ESRCH"))
	ev := feed(t, a, bigLoad(t, 1, insns, 0x7000))[0]
	if ev.Complete() || ev.Recovered {
		t.Fatalf("complete=%v recovered=%v", ev.Complete(), ev.Recovered)
	}
	if a.recoverFailed != 1 {
		t.Errorf("recover_failed = %d, want 1", a.recoverFailed)
	}
}

// Loads over the memory budget keep no instructions, recovered or not.
func TestRecoveryStaysWithinTheMemoryBudget(t *testing.T) {
	insns := genInsns(3 * chunkInsns)
	a := newAssembler()
	a.budget = 1024
	read := 0
	a.readMem = func(uint32, uint64, int) ([]byte, error) { read++; return slices.Clone(insns), nil }
	ev := feed(t, a, bigLoad(t, 1, insns, 0x7000))[0]
	if read != 0 || ev.Recovered || a.overBudget != 1 {
		t.Fatalf("reads %d recovered %v over budget %d", read, ev.Recovered, a.overBudget)
	}
}

// readProcessMemory against this process: what process_vm_readv returns
// is the bytes at that address, across more than one page.
func TestReadProcessMemoryReadsTheLoadersBytes(t *testing.T) {
	want := genInsns(3 * chunkInsns)
	got, err := readProcessMemory(uint32(os.Getpid()), uint64(uintptr(unsafe.Pointer(&want[0]))), len(want))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("bytes differ")
	}
	if _, err := readProcessMemory(uint32(os.Getpid()), 8, 64); err == nil {
		t.Fatal("read of an unmapped address succeeded")
	}
}
