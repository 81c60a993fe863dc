package capture

import (
	"bytes"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// attachRaw calls setsockopt(fd, SOL_SOCKET, opt, optval, optlen) directly,
// so tests can pass what libc wrappers would refuse.
func attachRaw(fd int, opt int, optval uintptr, optlen uintptr) error {
	_, _, errno := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, uintptr(opt), optval, optlen, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// next returns the next attach by this process, skipping others' (a
// shared host); it fails after a generous deadline.
func next(t *testing.T, c *Capture, fd int) *Attach {
	t.Helper()
	got := make(chan *Attach, 1)
	go func() {
		for {
			a, err := c.Read()
			if err != nil {
				close(got)
				return
			}
			if a.PID == uint32(unix.Getpid()) && a.FD == int32(fd) {
				got <- a
				return
			}
		}
	}()
	select {
	case a, ok := <-got:
		if !ok {
			t.Fatal("ring closed")
		}
		return a
	case <-time.After(60 * time.Second):
		t.Fatal("no setsockopt record")
	}
	return nil
}

func TestCaptureReportsAttachedFiltersAndBadArguments(t *testing.T) {
	testutils.RequireRoot(t, "attaching the setsockopt tracepoint")
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	ddd, err := exec.Command("tcpdump", "-ddd", "-i", "lo", "udp port 53").Output()
	if err != nil {
		testutils.SkipOrFail(t, "tcpdump -ddd: "+err.Error())
	}
	want, err := cbpf.ParseDDD(bytes.NewReader(ddd))
	if err != nil {
		t.Fatal(err)
	}
	raw := cbpf.Encode(want)
	prog := struct {
		Len    uint16
		_      [6]byte
		Filter uintptr
	}{Len: uint16(len(want)), Filter: uintptr(unsafe.Pointer(&raw[0]))}

	// ld #i … then ret #0: the longest filter the kernel takes.
	fullInsns := make([]cbpf.Instruction, cbpf.MaxInsns)
	for i := range fullInsns[:cbpf.MaxInsns-1] {
		fullInsns[i] = cbpf.Instruction{Code: 0x00, K: uint32(i)}
	}
	fullInsns[cbpf.MaxInsns-1] = cbpf.Instruction{Code: 0x06}
	full := cbpf.Encode(fullInsns)

	tests := []struct {
		name    string
		set     func(fd int) error
		insns   []cbpf.Instruction
		problem string
	}{
		{"a tcpdump filter is captured whole", func(fd int) error {
			err := attachRaw(fd, SOAttachFilter, uintptr(unsafe.Pointer(&prog)), unsafe.Sizeof(prog))
			runtime.KeepAlive(&prog)
			runtime.KeepAlive(raw)
			return err
		}, want, ""},
		{"a bogus optval pointer is reported, not dropped", func(fd int) error {
			return attachRaw(fd, SOAttachFilter, 8, unsafe.Sizeof(prog))
		}, nil, "optval unreadable"},
		{"a bogus filter pointer is reported", func(fd int) error {
			bad := prog
			bad.Filter = 8
			err := attachRaw(fd, SOAttachFilter, uintptr(unsafe.Pointer(&bad)), unsafe.Sizeof(bad))
			runtime.KeepAlive(&bad)
			return err
		}, nil, "filter is unreadable"},
		{"a length over 4,096 is reported", func(fd int) error {
			over := make([]byte, 5000*cbpf.InsnSize)
			big := prog
			big.Len, big.Filter = 5000, uintptr(unsafe.Pointer(&over[0]))
			err := attachRaw(fd, SOAttachFilter, uintptr(unsafe.Pointer(&big)), unsafe.Sizeof(big))
			runtime.KeepAlive(&big)
			runtime.KeepAlive(over)
			return err
		}, nil, "outside 1..4096"},
		{"a 4,096-instruction filter is captured whole", func(fd int) error {
			max := prog
			max.Len, max.Filter = cbpf.MaxInsns, uintptr(unsafe.Pointer(&full[0]))
			err := attachRaw(fd, SOAttachFilter, uintptr(unsafe.Pointer(&max)), unsafe.Sizeof(max))
			runtime.KeepAlive(&max)
			runtime.KeepAlive(full)
			return err
		}, fullInsns, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(fd)
			err = tt.set(fd)
			a := next(t, c, fd)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("setsockopt: %v", err)
				}
				if a.Problem != "" || len(a.Insns) != len(tt.insns) || cbpf.Disassemble(a.Insns) != cbpf.Disassemble(tt.insns) || a.Optname != SOAttachFilter {
					t.Errorf("captured %d instructions, problem %q; want %d", len(a.Insns), a.Problem, len(tt.insns))
				}
				return
			}
			if err == nil {
				t.Error("the kernel accepted the bad call")
			}
			if !strings.Contains(a.Problem, tt.problem) {
				t.Errorf("problem %q, want %q", a.Problem, tt.problem)
			}
		})
	}
}

// The ring holds RingRecords attaches nobody has read; each attach beyond
// is counted, never silent. Eight largest filters are attached with no
// reader: the ring is then full (RingRecords records, whoever made them:
// the hook sees the whole host), and every one of the eight is either read
// back whole or in the lost count.
func TestRingHoldsRingRecordsUnreadAttachesAndCountsTheRest(t *testing.T) {
	testutils.RequireRoot(t, "attaching the setsockopt tracepoint")
	if RingRecords != 7 {
		t.Fatalf("RingRecords %d, want 7 for a %d-byte ring and %d-byte records", RingRecords, RingSize, unsafe.Sizeof(CbpfCbpfEvent{}))
	}
	c, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lost0, err := c.Lost()
	if err != nil {
		t.Fatal(err)
	}
	fullInsns := make([]cbpf.Instruction, cbpf.MaxInsns)
	for i := range fullInsns[:cbpf.MaxInsns-1] {
		fullInsns[i] = cbpf.Instruction{Code: 0x00, K: uint32(i)}
	}
	fullInsns[cbpf.MaxInsns-1] = cbpf.Instruction{Code: 0x06}
	full := cbpf.Encode(fullInsns)
	prog := struct {
		Len    uint16
		_      [6]byte
		Filter uintptr
	}{Len: cbpf.MaxInsns, Filter: uintptr(unsafe.Pointer(&full[0]))}
	const attaches = RingRecords + 1
	fds := map[int32]bool{}
	for range attaches {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		if err := attachRaw(fd, SOAttachFilter, uintptr(unsafe.Pointer(&prog)), unsafe.Sizeof(prog)); err != nil {
			t.Fatalf("setsockopt: %v", err)
		}
		fds[int32(fd)] = true
	}
	runtime.KeepAlive(&prog)
	runtime.KeepAlive(full)
	lost, err := c.Lost()
	if err != nil {
		t.Fatal(err)
	}
	// Everything in the ring now, read without waiting for more.
	c.rd.SetDeadline(time.Now().Add(time.Second))
	records, ours := 0, 0
	for {
		a, err := c.Read()
		if err != nil {
			break
		}
		records++
		if a.PID == uint32(unix.Getpid()) && fds[a.FD] {
			ours++
			if a.Problem != "" || len(a.Insns) != cbpf.MaxInsns {
				t.Errorf("attach on fd %d: %d instructions, problem %q; want the whole filter", a.FD, len(a.Insns), a.Problem)
			}
		}
	}
	t.Logf("%d records in the ring (%d of this test's %d attaches), %d counted lost", records, ours, attaches, lost-lost0)
	if records != RingRecords {
		t.Errorf("the ring held %d records after %d unread attaches, want %d", records, attaches, RingRecords)
	}
	if ours+int(lost-lost0) < attaches {
		t.Errorf("%d of %d attaches read and %d counted lost: some were lost silently", ours, attaches, lost-lost0)
	}
}
