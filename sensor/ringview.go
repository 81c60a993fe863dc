package sensor

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ringView reads a BPF ring buffer's records straight from its memory,
// with no system call, for the reader parked on the netpoller (ringwait.go).
//
// Why: ringbuf.Reader.ReadInto calls epoll_wait each time it finds the ring
// empty, twice per wakeup of the reader (once for the record that woke it,
// once to find the ring empty again), and that system call, the first one
// after the agent was idle, also wakes the Go runtime's sysmon (futex),
// which then sleeps and parks again (nanosleep, futex): half the agent's
// system calls per small load (docs/PERFORMANCE.md, sixth round). Parked
// on the netpoller, the reader already knows there are records; it only
// needs the positions, which the ring's shared pages hold.
//
// The layout is the kernel's (kernel/bpf/ringbuf.c): the consumer position
// on the first page, mapped writable; the producer position on the second,
// then the data pages, mapped twice in a row so that a record wrapping
// round the end reads as one slice; all read-only. Each record starts with
// an 8-byte header whose first word is its length, with a busy bit (not
// committed yet) and a discard bit; records are 8-byte aligned.
type ringView struct {
	cons, prod *uint64
	data       []byte // the data pages, twice
	mask       uint64
	consPage   []byte
	prodPages  []byte
}

const (
	ringBusyBit    = 1 << 31
	ringDiscardBit = 1 << 30
	ringHeaderSize = 8
)

// openRingView maps m, a BPF_MAP_TYPE_RINGBUF.
func openRingView(m *ebpf.Map) (*ringView, error) {
	size := int(m.MaxEntries())
	if size <= 0 || size&(size-1) != 0 {
		return nil, fmt.Errorf("ring of %d bytes: not a power of two", size)
	}
	page := os.Getpagesize()
	consPage, err := unix.Mmap(m.FD(), 0, page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map ring consumer page: %w", err)
	}
	prodPages, err := unix.Mmap(m.FD(), int64(page), page+2*size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		unix.Munmap(consPage)
		return nil, fmt.Errorf("map ring data: %w", err)
	}
	return &ringView{
		cons:      (*uint64)(unsafe.Pointer(&consPage[0])),
		prod:      (*uint64)(unsafe.Pointer(&prodPages[0])),
		data:      prodPages[page:],
		mask:      uint64(size - 1),
		consPage:  consPage,
		prodPages: prodPages,
	}, nil
}

// available is how many bytes the producer has written past the consumer.
func (r *ringView) available() int {
	return int(atomic.LoadUint64(r.prod) - atomic.LoadUint64(r.cons))
}

// read copies the next committed record into rec (reusing its buffer) and
// moves the consumer past it, skipping discarded ones. It says
// os.ErrDeadlineExceeded when there is none, as ringbuf.Reader does with a
// deadline in the past, so the caller treats both alike.
func (r *ringView) read(rec *ringbuf.Record) error {
	for {
		prod := atomic.LoadUint64(r.prod)
		cons := atomic.LoadUint64(r.cons)
		if prod == cons {
			return os.ErrDeadlineExceeded
		}
		if prod-cons > uint64(len(r.data)/2) {
			return fmt.Errorf("ring positions %d and %d: more than the ring's %d bytes apart", prod, cons, len(r.data)/2)
		}
		if prod-cons < ringHeaderSize {
			return fmt.Errorf("ring record header: %w", io.ErrUnexpectedEOF)
		}
		// An atomic load of the length: the kernel clears the busy bit
		// with an atomic exchange after writing the record, so seeing it
		// clear means the data is visible.
		hdr := atomic.LoadUint32((*uint32)(unsafe.Pointer(&r.data[cons&r.mask])))
		if hdr&ringBusyBit != 0 {
			// Reserved, not committed yet: the producer is inside a BPF
			// program between reserve and commit, which it leaves soon.
			continue
		}
		n := uint64(hdr &^ (ringBusyBit | ringDiscardBit))
		start := cons + ringHeaderSize
		next := start + (n+7)&^7
		if next-cons > prod-cons {
			return fmt.Errorf("ring record of %d bytes, %d written: %w", n, prod-start, io.ErrUnexpectedEOF)
		}
		if hdr&ringDiscardBit == 0 {
			if uint64(cap(rec.RawSample)) < n {
				rec.RawSample = make([]byte, n)
			}
			rec.RawSample = rec.RawSample[:n]
			off := start & r.mask
			copy(rec.RawSample, r.data[off:off+n])
			rec.Remaining = int(prod - next)
		}
		atomic.StoreUint64(r.cons, next)
		if hdr&ringDiscardBit == 0 {
			return nil
		}
	}
}

// unmap releases the mappings; the view must not be used after.
func (r *ringView) unmap() {
	unix.Munmap(r.consPage)
	unix.Munmap(r.prodPages)
}
