package main

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// wrongFD passes an fd of another kind where an attach names a link or a
// perf event, for calls the kernel then refuses: "link" issues
// BPF_LINK_DETACH on a perf event fd, "perf" issues BPF_LINK_CREATE
// (BPF_PERF_EVENT) of a tracepoint program on an eventfd.
func wrongFD(kind string, res *result) error {
	var attr [12]uint32 // prog/link fd, target fd, attach type, flags, then zeros
	switch kind {
	case "link":
		fd, err := unix.PerfEventOpen(&unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_DUMMY,
			Size: uint32(unix.PERF_ATTR_SIZE_VER0), Bits: unix.PerfBitDisabled}, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("perf_event_open: %w", err)
		}
		defer unix.Close(fd)
		attr[0] = uint32(fd)
		return bpfCall(unix.BPF_LINK_DETACH, &attr)
	case "perf":
		prog, err := builtin("attach_wrongfd", ebpf.TracePoint, ebpf.AttachNone, 0)
		if err != nil {
			return err
		}
		defer prog.Close()
		res.ProgID = progID(prog)
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
		defer unix.Close(efd)
		attr[0], attr[1], attr[2] = uint32(prog.FD()), uint32(efd), unix.BPF_PERF_EVENT
		return bpfCall(unix.BPF_LINK_CREATE, &attr)
	}
	return fmt.Errorf("-wrong-fd %q: want link or perf", kind)
}

func bpfCall(cmd uintptr, attr *[12]uint32) error {
	_, _, errno := unix.Syscall(unix.SYS_BPF, cmd, uintptr(unsafe.Pointer(attr)), unsafe.Sizeof(*attr))
	if errno != 0 {
		return errno
	}
	return nil
}
