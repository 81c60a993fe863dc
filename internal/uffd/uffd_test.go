package uffd

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestConstantsMatchTheKernelHeader compiles a C program against the
// installed linux/userfaultfd.h that prints the ioctl numbers, constants and
// layouts this package spells out by hand, and compares them.
func TestConstantsMatchTheKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/userfaultfd.h"
	values := []struct {
		c       string // a C expression
		goValue uint64
	}{
		{"UFFD_API", uffdAPI},
		{"UFFD_EVENT_PAGEFAULT", uffdEventPagefault},
		{"UFFDIO_REGISTER_MODE_MISSING", uffdioRegisterMissing},
		{"_UFFDIO_COPY", nrCopy},
		{"_UFFDIO_REGISTER", nrRegister},
		{"_UFFDIO_WAKE", nrWake},
		{"_UFFDIO_API", nrAPI},
		{"UFFDIO_API", uint64(ioctlAPI)},
		{"UFFDIO_REGISTER", uint64(ioctlRegister)},
		{"UFFDIO_WAKE", uint64(ioctlWake)},
		{"UFFDIO_COPY", uint64(ioctlCopy)},
		{"sizeof(struct uffd_msg)", msgSize},
		{"offsetof(struct uffd_msg, arg.pagefault.address)", 16},
		{"sizeof(struct uffdio_copy)", uint64(unsafe.Sizeof(uffdioCopy{}))},
		{"offsetof(struct uffdio_copy, copy)", uint64(unsafe.Offsetof(uffdioCopy{}.Copy))},
		{"offsetof(struct uffdio_register, ioctls)", uint64(unsafe.Offsetof(uffdioRegister{}.Ioctls))},
		{"offsetof(struct uffdio_api, ioctls)", uint64(unsafe.Offsetof(uffdioAPI{}.Ioctls))},
	}
	var src strings.Builder
	src.WriteString("#include <stddef.h>\n#include <stdio.h>\n#include <sys/ioctl.h>\n#include <linux/userfaultfd.h>\nint main(void) {\n")
	for _, v := range values {
		fmt.Fprintf(&src, "\tprintf(\"%%llu\\n\", (unsigned long long)(%s));\n", v.c)
	}
	src.WriteString("\treturn 0;\n}\n")
	out := testutils.RunC(t, header, src.String())
	lines := strings.Fields(string(out))
	if len(lines) != len(values) {
		t.Fatalf("the C program printed %d values, want %d:\n%s", len(lines), len(values), out)
	}
	for i, v := range values {
		if want := fmt.Sprint(v.goValue); lines[i] != want {
			t.Errorf("%s: header says %s, Go has %s", v.c, lines[i], want)
		}
	}
}

// TestRegionHoldsTheKernelsRead has write(2) copy a Region into a pipe: the
// kernel's copy_from_user faults on each page, the handler holds the first
// fault (for the stall, or until HoldFirstFault's function returns) and
// serves the rest at once, and the pipe carries the contents. "Once, not
// once per page" is counted (the hold function's calls), not timed: on a
// loaded machine a write of three pages may take any time.
func TestRegionHoldsTheKernelsRead(t *testing.T) {
	testutils.RequireRoot(t, "a userfaultfd that serves kernel-mode faults (CAP_SYS_PTRACE)")
	page := os.Getpagesize()
	const stall = 200 * time.Millisecond
	tests := []struct {
		name  string
		size  int
		stall time.Duration
		hold  bool // HoldFirstFault instead of the stall
	}{
		{"a one-page read waits for the stall, then reads the contents", 100, stall, false},
		{"a three-page read waits for the stall, then reads the contents", 2*page + 100, stall, false},
		{"a three-page read is held once, not once per page", 2*page + 100, 0, true},
		{"without a stall the read is served at once", page, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			contents := make([]byte, tt.size)
			for i := range contents {
				contents[i] = byte(i*7 + 1)
			}
			r, err := New(contents, tt.stall)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			holds := 0 // only the handler's goroutine writes it, before it resolves the fault
			if tt.hold {
				r.HoldFirstFault(func() { holds++ })
			}
			pages := (tt.size + page - 1) / page
			if r.Len() != pages*page {
				t.Errorf("Len() = %d, want %d pages of %d", r.Len(), pages, page)
			}

			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			var n uintptr
			var errno unix.Errno
			var took time.Duration
			if err := WithSignalsBlocked(func() {
				start := time.Now()
				n, _, errno = unix.Syscall(unix.SYS_WRITE, uintptr(p[1]), r.Addr(), uintptr(len(contents)))
				took = time.Since(start)
			}); err != nil {
				t.Fatal(err)
			}
			if errno != 0 || int(n) != len(contents) {
				t.Fatalf("write(pipe, region, %d) = %d, %v", len(contents), n, errno)
			}
			got := make([]byte, len(contents))
			if _, err := unix.Read(p[0], got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, contents) {
				t.Errorf("the pipe carried other bytes than the contents")
			}

			if err := r.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			st := r.Stats()
			if st.Faults != pages {
				t.Errorf("%d faults served, want one per page: %d", st.Faults, pages)
			}
			if st.Stalled < tt.stall || took < tt.stall {
				t.Errorf("the handler held the first fault %v and write took %v, want both ≥ %v", st.Stalled, took, tt.stall)
			}
			// The write returned, so every fault was resolved and the
			// handler's writes to holds happened before (Close waited
			// for the handler).
			if tt.hold && holds != 1 {
				t.Errorf("the hold ran %d times for %d pages, want once: later faults were held too", holds, pages)
			}
			if st.Held != 1 {
				t.Errorf("%d of %d faults held, want the first only", st.Held, st.Faults)
			}
			t.Logf("%d pages, %d faults, write took %v, first fault held %v", pages, st.Faults, took, st.Stalled)
		})
	}
}

func TestNewRefusesEmptyContents(t *testing.T) {
	if _, err := New(nil, time.Second); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

func TestCloseWithoutAFaultReturnsAtOnce(t *testing.T) {
	testutils.RequireRoot(t, "a userfaultfd that serves kernel-mode faults (CAP_SYS_PTRACE)")
	r, err := New([]byte{1, 2, 3}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Close took %v with no fault pending", d)
	}
	if st := r.Stats(); st != (Stats{}) {
		t.Errorf("Stats() = %+v with no fault, want zero", st)
	}
}
