//go:build linux && amd64

package main

import (
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/rawbpf"
	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// loadFromKernel loads a socket filter named name without a bpf(PROG_LOAD)
// system call: a syscall program calls bpf_sys_bpf with the attr and the
// instructions in its context (the light-skeleton path). The load hook of
// the syscall tracepoints never sees it, deterministically. It returns the
// new program's id; the fd (installed in this process) is closed at the end
// of the test.
func loadFromKernel(t *testing.T, name string) uint32 {
	t.Helper()
	testutils.RequireRoot(t, "loading a program through bpf_sys_bpf")
	var attr rawbpf.ProgLoadAttr
	attr.ProgType = uint32(ebpf.SocketFilter)
	attr.InsnCnt = 2
	attr.SetName(name)
	// r0 = 0; exit
	fd, _, _, err := rawbpf.InnerLoad(attr, []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, []byte("GPL\x00"))
	if err != nil {
		t.Fatalf("load %s from inside the kernel: %v", name, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	// NewProgramFromFD owns the fd it gets: give it a duplicate, so the
	// program stays loaded through this test's fd until the cleanup.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ebpf.NewProgramFromFD(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	if info.Name != name {
		t.Fatalf("the in-kernel load made %q, want %q", info.Name, name)
	}
	return uint32(id)
}
