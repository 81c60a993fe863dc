package sensor

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// attachBenchHooks: off, the tracepoint hook, off again (drift).
var attachBenchHooks = []string{"off", string(HookTracepoint), "off"}

// asStranger makes the sensor judge and report this process like any other
// (its own attaches are otherwise skipped before the report); it returns
// the sum of the entry program's own time over this process's attaches.
func asStranger(b *testing.B, s *Sensor) *attachTimes {
	at := &attachTimes{}
	if s == nil {
		return at
	}
	s.self = Identity{}
	if err := s.writeConfig(); err != nil {
		b.Fatal(err)
	}
	go func() {
		for ev := range s.Attaches() {
			if int(ev.Caller.PID) == os.Getpid() {
				at.mu.Lock()
				at.total += ev.JudgeTime
				at.n++
				at.mu.Unlock()
			}
		}
	}()
	return at
}

type attachTimes struct {
	mu    sync.Mutex
	total time.Duration
	n     int
}

func (a *attachTimes) report(b *testing.B) {
	time.Sleep(200 * time.Millisecond) // the last events
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n > 0 {
		b.ReportMetric(float64(a.total.Nanoseconds())/float64(a.n), "judge-ns/attach")
	}
}

// rawTPOpen is bpf(BPF_RAW_TRACEPOINT_OPEN, name, prog fd): the link's fd.
func rawTPOpen(name []byte, prog int) (int, error) {
	attr := struct {
		name   uint64
		progFD uint32
		_      uint32
		cookie uint64
	}{name: uint64(uintptr(unsafe.Pointer(&name[0]))), progFD: uint32(prog)}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_RAW_TRACEPOINT_OPEN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// BenchmarkAttach is an attach's own syscall with the sensor off and on:
// BPF_RAW_TRACEPOINT_OPEN of a raw tracepoint program on a tracepoint that
// rarely fires (the links are closed outside the timer).
func BenchmarkAttach(b *testing.B) {
	testutils.RequireRoot(b, "attaching BPF programs")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.RawTracepoint, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		b.Fatal(err)
	}
	defer prog.Close()
	name := []byte("task_rename\x00")
	for i, hook := range attachBenchHooks {
		withSensor(b, hook, func(s *Sensor, ws *walkStats) {
			at := asStranger(b, s)
			b.Run(fmt.Sprintf("sentry=%s#%d/raw_tracepoint_open", hook, i), func(b *testing.B) {
				// Closing a raw tracepoint link waits for RCU grace periods
				// (milliseconds): close outside the timer, in batches.
				var open []int
				measure(b, s, ws, func() {
					fd, err := rawTPOpen(name, prog.FD())
					if err != nil {
						b.Fatal(err)
					}
					if open = append(open, fd); len(open) == 64 {
						b.StopTimer()
						for _, fd := range open {
							unix.Close(fd)
						}
						open = open[:0]
						b.StartTimer()
					}
				})
				for _, fd := range open {
					unix.Close(fd)
				}
				if s != nil {
					at.report(b)
				}
			})
		})
	}
}

// BenchmarkUnrelatedIoctl is the cost of the ioctl hook to a loop of
// ioctls that are not PERF_EVENT_IOC_SET_BPF (FIONREAD, alias TIOCINQ, on a pipe).
func BenchmarkUnrelatedIoctl(b *testing.B) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		b.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	for i, hook := range attachBenchHooks {
		withSensor(b, hook, func(s *Sensor, ws *walkStats) {
			b.Run(fmt.Sprintf("sentry=%s#%d", hook, i), func(b *testing.B) {
				measure(b, s, ws, func() {
					if _, err := unix.IoctlGetInt(p[0], unix.TIOCINQ); err != nil {
						b.Fatal(err)
					}
				})
			})
		})
	}
}
