package sensor

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzAssemble feeds arbitrary samples to the record parser and the
// assembler: malformed ones must be rejected with ErrRecord, never panic.
func FuzzAssemble(f *testing.F) {
	insns := genInsns(600)
	for _, r := range loadRecords(7, 1, insns) {
		f.Add(r)
	}
	f.Add(encChunk(7, 5, insns[:16], false))
	f.Add(tooManyChunksHeader()) // found by this target: see TestHeaderAnnouncingTooManyChunksIsRejected
	mc := sentrySentryMapCreate{Ret: 5, MapType: 2, MapFlags: 1 << 16, TokenFd: 3}
	mc.H.Kind, mc.H.LoadId = kindMapMake, 9
	mcb, _ := binary.Append(nil, binary.LittleEndian, &mc)
	f.Add(mcb)
	f.Fuzz(func(t *testing.T, b []byte) {
		a := newAssembler()
		for _, rec := range loadRecords(7, 1, insns)[:1] {
			r, _ := parseRecord(rec)
			a.add(r, time.Now())
		}
		r, err := parseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		a.add(r, time.Now())
		a.expire(time.Now().Add(time.Hour))
	})
}

// tooManyChunksHeader announces 2^32-1 chunks, which no kernel record does.
func tooManyChunksHeader() []byte {
	h := sentrySentryHeader{Pid: 1, InsnCnt: 10, Chunks: 1<<32 - 1}
	h.H.Kind, h.H.LoadId, h.H.Pid = kindHeader, 7, 1
	b, _ := binary.Append(nil, binary.LittleEndian, &h)
	return b
}

// Found by FuzzAssemble (the worker died): a header announcing 4 billion
// chunks made the assembler allocate a 4 GB bitmap. The parser refuses it.
func TestHeaderAnnouncingTooManyChunksIsRejected(t *testing.T) {
	if _, err := parseRecord(tooManyChunksHeader()); !errors.Is(err, ErrRecord) {
		t.Fatalf("parseRecord: %v, want ErrRecord", err)
	}
	ok := encHeader(7, 1, "x", maxCaptureInsn+5) // the most the kernel sends: 1,954 chunks
	if _, err := parseRecord(ok); err != nil {
		t.Fatalf("a header of the longest program: %v", err)
	}
}

// FuzzProgArrayRecord: any ring-buffer sample of the prog_array kind is
// either decoded or refused with ErrRecord, never a panic, and a decoded
// one becomes a ProgArrayWrite whose text fields are bounded.
func FuzzProgArrayRecord(f *testing.F) {
	rec := make([]byte, progArrayRecSize)
	binary.LittleEndian.PutUint32(rec, kindProgArray)
	f.Add(rec)
	f.Add(rec[:16])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseProgArrayRec(b)
		if err != nil {
			if !errors.Is(err, ErrRecord) {
				t.Fatalf("error %v does not wrap ErrRecord", err)
			}
			return
		}
		w := progArrayWrite(r, func(ns uint64) time.Time { return time.Unix(0, int64(ns)) })
		if len(w.Comm) > 16 || w.Op == "" {
			t.Fatalf("write %+v", w)
		}
	})
}

func FuzzParseTokenFdinfo(f *testing.F) {
	f.Add("allowed_cmds:\tany\nallowed_maps:\t0x0\nallowed_progs:\t0x6\nallowed_attachs:\tany\n")
	f.Add("pos:\t0\nflags:\t02\n")
	f.Add("allowed_cmds:\t0xffffffffffffffffff\n")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseTokenFdinfo(s)
		if err == nil && tok == nil {
			t.Fatal("no token and no error")
		}
		if err != nil && tok != nil {
			t.Fatal("a token with an error")
		}
	})
}

// mountinfo's octal escapes: any input unescapes without a panic, and
// what has no backslash comes back unchanged.
func FuzzUnescapeMountinfo(f *testing.F) {
	for _, s := range []string{"/sys/fs/cgroup", `/mnt/a\040b`, `\`, `\0`, `\777x`, `\12`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := unescapeMountinfo(s)
		if !strings.Contains(s, `\`) && out != s {
			t.Fatalf("%q became %q", s, out)
		}
		if len(out) > len(s) {
			t.Fatalf("%q grew to %q", s, out)
		}
	})
}
