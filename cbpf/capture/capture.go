// Package capture watches setsockopt calls that attach socket filters
// (SO_ATTACH_FILTER, SO_ATTACH_REUSEPORT_CBPF: classic BPF; SO_ATTACH_BPF:
// an eBPF program by fd) and hands each, with its filter, to user space.
package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
)

// setsockopt option names (asm-generic/socket.h).
const (
	SOAttachFilter        = 26
	SOAttachBPF           = 50
	SOAttachReuseportCBPF = 51
)

// Attach is one setsockopt that attaches a filter.
type Attach struct {
	PID, TID, UID uint32
	Comm          string
	FD            int32 // the socket
	Optname       int32
	// Len is sock_fprog.len as the caller passed it (for SO_ATTACH_BPF,
	// the eBPF program's fd).
	Len uint32
	// Insns is the classic filter (nil for SO_ATTACH_BPF or when unreadable).
	Insns []cbpf.Instruction
	// Problem says what is wrong with the call's arguments: an unreadable
	// optval or filter, a length the kernel will refuse. The kernel fails
	// such calls itself; they are reported, not dropped.
	Problem string
}

// Capture is the attached tracepoint and its ring buffer.
type Capture struct {
	objs CbpfObjects
	tp   link.Link
	rd   *ringbuf.Reader
}

// RingSize is the ring buffer's size. Every record is reserved at its
// largest (a 4,096-instruction filter: 32 KiB and the header), so it holds
// RingRecords attaches the agent has not read yet; one more is counted
// (Lost). The reader maps the ring's data twice, all of it resident: 256
// KiB instead of the object's 1 MiB is 1.5 MB less idle RSS for the agent
// (docs/PERFORMANCE.md).
const RingSize = 256 << 10

// RingRecords is how many attaches RingSize holds unread: records are
// 8-byte aligned behind an 8-byte header.
const RingRecords = RingSize / ((int(unsafe.Sizeof(CbpfCbpfEvent{})) + 8 + 7) &^ 7)

// New loads and attaches the setsockopt hook.
func New() (*Capture, error) {
	c := &Capture{}
	spec, err := LoadCbpf()
	if err != nil {
		return nil, fmt.Errorf("load the setsockopt hook: %w", err)
	}
	spec.Maps[CbpfMapCbpfEvents].MaxEntries = RingSize
	if err := spec.LoadAndAssign(&c.objs, nil); err != nil {
		return nil, fmt.Errorf("load the setsockopt hook: %w", err)
	}
	tp, err := link.Tracepoint("syscalls", "sys_enter_setsockopt", c.objs.CbpfSetsockopt, nil)
	if err != nil {
		c.objs.Close()
		return nil, fmt.Errorf("attach syscalls:sys_enter_setsockopt: %w", err)
	}
	c.tp = tp
	if c.rd, err = ringbuf.NewReader(c.objs.CbpfEvents); err != nil {
		c.Close()
		return nil, fmt.Errorf("ring buffer: %w", err)
	}
	return c, nil
}

// Read blocks for the next attach; it returns ringbuf.ErrClosed after Close.
func (c *Capture) Read() (*Attach, error) {
	rec, err := c.rd.Read()
	if err != nil {
		return nil, err
	}
	return Parse(rec.RawSample)
}

// Lost is the number of attaches the ring had no room for.
func (c *Capture) Lost() (uint64, error) {
	var n uint64
	err := c.objs.CbpfLost.Lookup(uint32(0), &n)
	return n, err
}

// Close detaches the hook.
func (c *Capture) Close() error {
	var errs []error
	if c.rd != nil {
		errs = append(errs, c.rd.Close())
	}
	if c.tp != nil {
		errs = append(errs, c.tp.Close())
	}
	errs = append(errs, c.objs.Close())
	return errors.Join(errs...)
}

// Parse decodes one ring-buffer record.
func Parse(raw []byte) (*Attach, error) {
	var e CbpfCbpfEvent
	if len(raw) < int(unsafe.Sizeof(e)) {
		return nil, fmt.Errorf("setsockopt record of %d bytes, want %d", len(raw), unsafe.Sizeof(e))
	}
	u32 := func(off uintptr) uint32 { return binary.NativeEndian.Uint32(raw[off:]) }
	e.Tgid, e.Tid, e.Uid = u32(unsafe.Offsetof(e.Tgid)), u32(unsafe.Offsetof(e.Tid)), u32(unsafe.Offsetof(e.Uid))
	e.Fd, e.Optname = int32(u32(unsafe.Offsetof(e.Fd))), int32(u32(unsafe.Offsetof(e.Optname)))
	e.Len, e.ReadErr = u32(unsafe.Offsetof(e.Len)), int32(u32(unsafe.Offsetof(e.ReadErr)))
	comm := raw[unsafe.Offsetof(e.Comm) : unsafe.Offsetof(e.Comm)+16]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	insns := raw[unsafe.Offsetof(e.Insns):unsafe.Sizeof(e)]
	a := &Attach{PID: e.Tgid, TID: e.Tid, UID: e.Uid, Comm: string(comm), FD: e.Fd, Optname: e.Optname, Len: e.Len}
	switch {
	case e.ReadErr != 0 && e.Len == 0:
		a.Problem = fmt.Sprintf("optval unreadable (error %d): the kernel fails the call with EFAULT", e.ReadErr)
	case e.ReadErr != 0:
		a.Problem = fmt.Sprintf("the %d-instruction filter is unreadable (error %d): the kernel fails the call with EFAULT", e.Len, e.ReadErr)
	case e.Optname == SOAttachBPF:
	case e.Len == 0 || e.Len > cbpf.MaxInsns:
		a.Problem = fmt.Sprintf("filter length %d outside 1..%d: the kernel fails the call with EINVAL", e.Len, cbpf.MaxInsns)
	default:
		ins, err := cbpf.Decode(insns[:e.Len*cbpf.InsnSize])
		if err != nil {
			a.Problem = err.Error()
		}
		a.Insns = ins
	}
	return a, nil
}
