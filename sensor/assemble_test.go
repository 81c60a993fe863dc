package sensor

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules/kernel"
)

// synthetic records, encoded the way the kernel writes them.
func encHeader(id uint64, pid uint32, name string, insnCnt uint32) []byte {
	h := sentrySentryHeader{Pid: pid, Tid: pid, InsnCnt: insnCnt, ProgType: 5,
		Chunks: (min(insnCnt, maxCaptureInsn) + uint32(chunkInsns) - 1) / uint32(chunkInsns)}
	h.H.Kind, h.H.LoadId, h.H.Pid = kindHeader, id, pid
	for i := 0; i < len(name); i++ {
		h.Name[i] = int8(name[i])
	}
	b, _ := binary.Append(nil, binary.LittleEndian, &h)
	return b
}

// encChunk encodes through the bpf2go type of struct sentry_chunk, not the
// offsets record.go reads with, and sends only the used part of data, as
// the kernel does.
func encChunk(id uint64, index uint32, data []byte, readErr bool) []byte {
	c := sentrySentryChunk{Index: index, Count: uint32(len(data) / 8)}
	c.H.Kind, c.H.LoadId, c.H.Pid = kindChunk, id, 42
	if readErr {
		c.ReadErr = 1
	}
	copy(c.Data[:], data)
	b, _ := binary.Append(nil, binary.LittleEndian, &c)
	return b[:binary.Size(c)-len(c.Data)+(len(data)+7)/8*8]
}

// record.go's chunk offsets are the C layout the generated type encodes.
func TestChunkOffsetsMatchTheGeneratedLayout(t *testing.T) {
	c := sentrySentryChunk{Index: 0x11111111, Count: 0x22222222, ReadErr: 0x33333333}
	c.Data[0] = 0x44
	b, err := binary.Append(nil, binary.LittleEndian, &c)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		off  int
		want uint32
	}{{"index", chunkIndexOff, 0x11111111}, {"count", chunkCountOff, 0x22222222}, {"read_err", chunkReadErrOff, 0x33333333}, {"data", chunkDataOff, 0x44}} {
		if got := binary.LittleEndian.Uint32(b[f.off:]); got != f.want {
			t.Errorf("%s at offset %d reads %#x, want %#x", f.name, f.off, got, f.want)
		}
	}
	if len(b) != chunkDataOff+chunkInsns*8 {
		t.Errorf("encoded chunk is %d bytes, record.go expects %d", len(b), chunkDataOff+chunkInsns*8)
	}
}

func encVerdict(id uint64, hash uint64, verdict Verdict) []byte {
	v := sentrySentryVerdictRec{Verdict: uint32(verdict), InsnHash: hash, RuleIndex: -1}
	v.H.Kind, v.H.LoadId, v.H.Pid = kindVerdict, id, 42
	v.HelperCount[14] = 3
	b, _ := binary.Append(nil, binary.LittleEndian, &v)
	return b
}

func encExit(id uint64, ret int64, progID uint32) []byte {
	x := sentrySentryExit{Ret: ret, ProgId: progID}
	x.H.Kind, x.H.LoadId, x.H.Pid = kindExit, id, 42
	b, _ := binary.Append(nil, binary.LittleEndian, &x)
	return b
}

// loadRecords is the record sequence of one load of insns.
func loadRecords(id uint64, pid uint32, insns []byte) [][]byte {
	recs := [][]byte{encHeader(id, pid, "p", uint32(len(insns)/8))}
	for i := 0; i*chunkInsns*8 < len(insns); i++ {
		end := min((i+1)*chunkInsns*8, len(insns))
		recs = append(recs, encChunk(id, uint32(i), insns[i*chunkInsns*8:end], false))
	}
	recs = append(recs, encVerdict(id, kernel.Hash(insns), VerdictAllow), encExit(id, 5, 100+uint32(id)))
	return recs
}

func feed(t *testing.T, a *assembler, recs [][]byte) []*Event {
	t.Helper()
	var out []*Event
	for _, b := range recs {
		r, err := parseRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if ev := a.add(r, time.Now()); ev != nil {
			out = append(out, ev)
		}
	}
	return out
}

func randomInsns(r *rand.Rand, n int) []byte {
	b := make([]byte, n*8)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestAssemblerInterleavedLoadsFromManyCPUs(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const loads = 20
	want := map[uint64][]byte{}
	var streams [][][]byte
	for i := range loads {
		id := uint64(i+1) | uint64(i%4)<<48
		insns := randomInsns(r, 1+r.IntN(3000))
		want[id] = insns
		streams = append(streams, loadRecords(id, uint32(1000+i), insns))
	}
	// Interleave: each load's records stay in order, loads mix freely.
	var mixed [][]byte
	for len(streams) > 0 {
		k := r.IntN(len(streams))
		mixed = append(mixed, streams[k][0])
		if streams[k] = streams[k][1:]; len(streams[k]) == 0 {
			streams = slices.Delete(streams, k, k+1)
		}
	}
	evs := feed(t, newAssembler(), mixed)
	if len(evs) != loads {
		t.Fatalf("%d events from %d loads", len(evs), loads)
	}
	for _, ev := range evs {
		if !ev.Complete() || !bytes.Equal(ev.Program.Insns, want[ev.LoadID]) {
			t.Errorf("load %#x: complete=%v missing=%v, %d bytes vs %d submitted", ev.LoadID, ev.Complete(), ev.Missing, len(ev.Program.Insns), len(want[ev.LoadID]))
		}
		if ev.Outcome.Result != ResultLoaded || ev.Program.Kernel == nil || ev.Program.Kernel.ID != 100+uint32(ev.LoadID) {
			t.Errorf("load %#x: outcome %+v kernel %+v", ev.LoadID, ev.Outcome, ev.Program.Kernel)
		}
	}
}

func TestAssemblerReportsWhatIsMissing(t *testing.T) {
	insns := genInsns(1500) // three chunks
	full := loadRecords(1, 42, insns)
	cases := []struct {
		name      string
		drop      []int // indexes into full: 0 header, 1-3 chunks, 4 verdict, 5 exit
		missing   []string
		insnBytes int
	}{
		{"a lost middle chunk truncates the program to the first chunk", []int{2}, []string{"chunks"}, chunkInsns * 8},
		{"a lost last chunk keeps the first two chunks", []int{3}, []string{"chunks"}, 2 * chunkInsns * 8},
		{"a lost header is reported, its chunks were never sent", []int{0, 1, 2, 3}, []string{"header"}, 0},
		{"a lost verdict is reported", []int{4}, []string{"verdict"}, len(insns)},
		{"a lost exit is reported when the load expires", []int{5}, []string{"exit"}, len(insns)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var recs [][]byte
			for i, b := range full {
				if !slices.Contains(tc.drop, i) {
					recs = append(recs, b)
				}
			}
			a := newAssembler()
			evs := feed(t, a, recs)
			evs = append(evs, a.expire(time.Now().Add(time.Minute))...)
			if len(evs) != 1 {
				t.Fatalf("%d events, want exactly 1", len(evs))
			}
			ev := evs[0]
			if ev.Program.Loader == nil || ev.Program.Loader.PID != 42 {
				t.Errorf("loader %+v, want pid 42 even without the header", ev.Program.Loader)
			}
			if !slices.Equal(ev.Missing, tc.missing) || len(ev.Program.Insns) != tc.insnBytes {
				t.Errorf("missing %v with %d bytes, want %v with %d", ev.Missing, len(ev.Program.Insns), tc.missing, tc.insnBytes)
			}
			if ev.Complete() {
				t.Error("reported complete")
			}
			if tc.insnBytes != len(insns) && !ev.Program.Truncated {
				t.Error("truncated program not marked Truncated")
			}
		})
	}
}

func TestAssemblerFlagsAHashMismatch(t *testing.T) {
	insns := genInsns(10)
	recs := loadRecords(1, 42, insns)
	recs[2] = encVerdict(1, kernel.Hash(insns)^1, VerdictAllow)
	evs := feed(t, newAssembler(), recs)
	if len(evs) != 1 || !evs[0].HashMismatch || evs[0].Complete() {
		t.Fatalf("events %+v", evs)
	}
}

func TestAssemblerCountsReadErrorsAsTruncation(t *testing.T) {
	insns := genInsns(10)
	recs := loadRecords(1, 42, insns)
	recs[1] = encChunk(1, 0, make([]byte, len(insns)), true)
	evs := feed(t, newAssembler(), recs)
	if len(evs) != 1 || evs[0].ReadErrors != 1 || !evs[0].Program.Truncated || evs[0].Complete() {
		t.Fatalf("events %+v", evs[0])
	}
}

func TestExePathReversesTheKernelsComponents(t *testing.T) {
	cases := []struct {
		name, rev string
		trunc     bool
		want      string
	}{
		{"a file two levels deep", "bpfload/tmp/", false, "/tmp/bpfload"},
		{"a file in the root", "init/", false, "/init"},
		{"no exe (kernel thread)", "", false, ""},
		{"a walk that stopped early is marked", "c/b/", true, "…/b/c"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := exePath(tc.rev, tc.trunc); got != tc.want {
				t.Errorf("exePath(%q) = %q, want %q", tc.rev, got, tc.want)
			}
		})
	}
}

func TestParseRecordRejectsMalformedInput(t *testing.T) {
	cases := []struct {
		name string
		b    []byte
	}{
		{"an empty sample", nil},
		{"an unknown kind", append([]byte{9, 0, 0, 0}, make([]byte, 12)...)},
		{"a header cut short", encHeader(1, 1, "x", 1)[:100]},
		{"a chunk shorter than its instruction count", encChunk(1, 0, genInsns(4), false)[:chunkDataOff+16]},
		{"a chunk claiming more than 512 instructions", func() []byte {
			b := encChunk(1, 0, nil, false)
			binary.LittleEndian.PutUint32(b[20:], 513)
			return b
		}()},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseRecord(tc.b); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// An inner load's exit record (sentry_exit.inner) gives the load's own
// outcome: denied (-EPERM), loaded with an id and no fd (ret 0 is not an
// fd there), or failed after the judgement with the errno unknown; and the
// loader program it names.
func TestApplyExitOfAnInnerLoad(t *testing.T) {
	tag := [8]uint8{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}
	cases := []struct {
		name string
		x    sentrySentryExit
		want Outcome
		id   uint32
	}{
		{"denied by the sentry", sentrySentryExit{Ret: -1, Inner: innerLoad, LoaderProgId: 7, LoaderTag: tag}, Outcome{Result: ResultFailed, Errno: 1}, 0},
		{"loaded, with its id", sentrySentryExit{Ret: 0, ProgId: 42, Tag: tag, Inner: innerLoad, LoaderProgId: 7, LoaderTag: tag}, Outcome{Result: ResultLoaded}, 42},
		{"refused after the judgement", sentrySentryExit{Ret: 0, Inner: innerLoad | innerFailed, LoaderProgId: 7, LoaderTag: tag}, Outcome{Result: ResultFailed}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Event{Program: &program.Program{}}
			applyExit(ev, &tc.x)
			if ev.Outcome != tc.want {
				t.Errorf("outcome %+v, want %+v", ev.Outcome, tc.want)
			}
			if ev.Inner == nil || ev.Inner.LoaderProgID != 7 || ev.Inner.LoaderTag != "deadbeef00010203" {
				t.Errorf("inner %+v, want loader 7/deadbeef00010203", ev.Inner)
			}
			if got := ev.Program.Kernel; (tc.id == 0) != (got == nil) || got != nil && got.ID != tc.id {
				t.Errorf("kernel %+v, want id %d", got, tc.id)
			}
		})
	}
	// A bpf() call's exit is not inner, and its ret is the fd.
	ev := &Event{Program: &program.Program{}}
	applyExit(ev, &sentrySentryExit{Ret: 5, ProgId: 9})
	if ev.Inner != nil || ev.Outcome != (Outcome{Result: ResultLoaded, FD: 5}) {
		t.Errorf("bpf() exit: inner %+v outcome %+v", ev.Inner, ev.Outcome)
	}
}
