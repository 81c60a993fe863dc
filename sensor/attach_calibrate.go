package sensor

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// calibrationRawTP is where the link of calibrateAttachFds points for the
// instant it lives: a tracepoint every kernel has and that rarely fires.
const calibrationRawTP = "sched_kthread_stop"

// calibrateAttachFdsOrSay runs calibrateAttachFds and says when it fails:
// an fd is then resolved as a link or perf event only where /proc/kallsyms
// lists their f_op, else as the caller names it.
func (s *Sensor) calibrateAttachFdsOrSay() {
	if err := s.calibrateAttachFds(); err != nil {
		s.log.Warn("attach monitoring: link and perf event fds are trusted as the caller names them", "err", err)
	}
}

// calibrateAttachFds teaches the attach programs the f_op the kernel gives
// a link fd and a perf event fd, as calibrateGroups does for maps and
// programs: the kernel side learns it from the agent's own calls, a
// BPF_LINK_DETACH of a raw tracepoint link it just made (bpf() entry) and
// a perf_event_open (its exit). It needs the agent's identity learnt.
func (s *Sensor) calibrateAttachFds() error {
	var errs []error
	if err := calibrationLink(); err != nil {
		errs = append(errs, err)
	}
	fd, err := unix.PerfEventOpen(&unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_DUMMY,
		Size: uint32(unix.PERF_ATTR_SIZE_VER0), Bits: unix.PerfBitDisabled}, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		errs = append(errs, fmt.Errorf("calibration perf event: %w", err))
	} else {
		unix.Close(fd)
	}
	var c sentryGroupCalib
	if err := s.coll.Maps[sentryMapGroupCalibration].Lookup(uint32(0), &c); err != nil {
		return fmt.Errorf("read calibration: %w", err)
	}
	if c.LinkFops == 0 {
		errs = append(errs, errors.New("the kernel hook did not see the sensor's own link detach"))
	}
	if c.PerfFops == 0 {
		errs = append(errs, errors.New("the kernel hook did not see the sensor's own perf_event_open"))
	}
	return errors.Join(errs...)
}

// calibrationLink makes a raw tracepoint link of a program that does
// nothing, and issues BPF_LINK_DETACH on it (whether the kernel can detach
// that kind of link does not matter: the entry hook has seen the fd).
func calibrationLink() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return fmt.Errorf("load calibration program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: calibrationRawTP, Program: prog})
	if err != nil {
		return fmt.Errorf("calibration link: %w", err)
	}
	defer l.Close()
	d, ok := l.(interface{ Detach() error })
	if !ok {
		return errors.New("calibration link: the kernel made no bpf_link (before 5.7)")
	}
	d.Detach()
	return nil
}
