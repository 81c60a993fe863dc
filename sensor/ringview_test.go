package sensor

import (
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// ringRecordProg is a socket filter that reserves size bytes of ring,
// writes marker into the first eight, then submits or discards them.
func ringRecordProg(t *testing.T, ring *ebpf.Map, size int32, marker int64, discard bool) *ebpf.Program {
	t.Helper()
	done := asm.FnRingbufSubmit
	if discard {
		done = asm.FnRingbufDiscard
	}
	insns := asm.Instructions{
		asm.LoadMapPtr(asm.R1, ring.FD()),
		asm.Mov.Imm(asm.R2, size),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadImm(asm.R1, marker, asm.DWord),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Mov.Imm(asm.R2, 0),
		done.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
		asm.Return(),
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: insns})
	if err != nil {
		t.Fatalf("load the ring writer: %v", err)
	}
	return p
}

// The reader's view of the ring (ringview.go) returns what the kernel
// submitted, in order, with its exact length, skips discarded records, and
// reads records that wrap round the end of the ring whole: 40 records of
// 8 to 1,500 bytes, every third one discarded, through a one-page ring
// read after every two, so the positions go round it several times. What
// it reads matches ringbuf.Reader on the same ring, record for record.
func TestRingViewReadsWhatTheKernelSubmitted(t *testing.T) {
	testutils.RequireRoot(t, "creating a ring buffer")
	testutils.SkipOnOldKernel(t, "5.8", "BPF ring buffer")
	ring, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: uint32(os.Getpagesize())})
	if err != nil {
		t.Fatal(err)
	}
	defer ring.Close()
	view, err := openRingView(ring)
	if err != nil {
		t.Fatal(err)
	}
	defer view.unmap()
	sizes := []int32{8, 100, 1000, 1500, 13, 700}
	packet := make([]byte, 64)
	var rec ringbuf.Record
	var want []int64
	wrapped := false
	for i := range 40 {
		size := sizes[i%len(sizes)]
		discard := i%3 == 2
		p := ringRecordProg(t, ring, size, int64(i)<<32|int64(size), discard)
		if _, err := p.Run(&ebpf.RunOptions{Data: packet}); err != nil {
			p.Close()
			t.Fatalf("record %d: run: %v", i, err)
		}
		p.Close()
		if !discard {
			want = append(want, int64(i)<<32|int64(size))
		}
		if i%2 == 0 {
			continue
		}
		if view.available() == 0 {
			t.Fatalf("record %d: the view sees an empty ring", i)
		}
		for _, m := range want {
			start := *view.cons
			if err := view.read(&rec); err != nil {
				t.Fatalf("record %d: read: %v", m>>32, err)
			}
			if got := int64(binary.LittleEndian.Uint64(rec.RawSample)); got != m {
				t.Fatalf("read record %d of %d bytes, want record %d of %d bytes", got>>32, got&0xffffffff, m>>32, m&0xffffffff)
			}
			if len(rec.RawSample) != int(m&0xffffffff) {
				t.Fatalf("record %d: %d bytes, want %d", m>>32, len(rec.RawSample), m&0xffffffff)
			}
			if (start+ringHeaderSize)&view.mask+uint64(len(rec.RawSample)) > view.mask+1 {
				wrapped = true
			}
		}
		want = want[:0]
		if err := view.read(&rec); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after record %d: read of an empty ring says %v, want os.ErrDeadlineExceeded", i, err)
		}
		if n := view.available(); n != 0 {
			t.Fatalf("after record %d: %d bytes available in a drained ring", i, n)
		}
	}
	if !wrapped {
		t.Fatal("no record wrapped round the end of the ring: the test did not cover it")
	}
	// The consumer position is the kernel's, shared with ringbuf.Reader: a
	// record written now is read by either, once.
	rd, err := ringbuf.NewReader(ring)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	p := ringRecordProg(t, ring, 24, 99, false)
	defer p.Close()
	if _, err := p.Run(&ebpf.RunOptions{Data: packet}); err != nil {
		t.Fatal(err)
	}
	if err := view.read(&rec); err != nil || binary.LittleEndian.Uint64(rec.RawSample) != 99 {
		t.Fatalf("read: %v, %x", err, rec.RawSample)
	}
	if n := rd.AvailableBytes(); n != 0 {
		t.Fatalf("ringbuf.Reader sees %d bytes the view consumed", n)
	}
}
