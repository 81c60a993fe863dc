//go:build linux && amd64

package main

import (
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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
	attrSize := int(unsafe.Sizeof(attr))
	insnsOff := (attrSize + 7) &^ 7
	licOff := insnsOff + 16
	ctx := make([]byte, licOff+8)
	copy(ctx, unsafe.Slice((*byte)(unsafe.Pointer(&attr)), attrSize))
	copy(ctx[insnsOff:], []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}) // r0 = 0; exit
	copy(ctx[licOff:], "GPL\x00")

	// bpf_sys_bpf takes the attr from the stack (not the context): copy it
	// there, then point insns and license into the context's kernel copy.
	stack := int16(-((attrSize + 7) &^ 7))
	prog := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
	for off := 0; off < attrSize; off += 8 {
		prog = append(prog,
			asm.LoadMem(asm.R2, asm.R6, int16(off), asm.DWord),
			asm.StoreMem(asm.RFP, stack+int16(off), asm.R2, asm.DWord))
	}
	prog = append(prog,
		asm.Mov.Reg(asm.R2, asm.R6),
		asm.Add.Imm(asm.R2, int32(insnsOff)),
		asm.StoreMem(asm.RFP, stack+int16(unsafe.Offsetof(attr.Insns)), asm.R2, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R6),
		asm.Add.Imm(asm.R2, int32(licOff)),
		asm.StoreMem(asm.RFP, stack+int16(unsafe.Offsetof(attr.License)), asm.R2, asm.DWord),
		asm.Mov.Imm(asm.R1, unix.BPF_PROG_LOAD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(stack)),
		asm.Mov.Imm(asm.R3, int32(attrSize)),
		asm.FnSysBpf.Call(),
		asm.Return(),
	)
	loader, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "sres_loader", Type: ebpf.Syscall, License: "GPL",
		Flags:        unix.BPF_F_SLEEPABLE,
		Instructions: prog})
	if err != nil {
		t.Fatalf("load the syscall loader program: %v", err)
	}
	defer loader.Close()
	ret, err := loader.Run(&ebpf.RunOptions{Context: ctx})
	if err != nil {
		t.Fatalf("run the loader: %v", err)
	}
	fd := int(int32(ret))
	if fd < 0 {
		t.Fatalf("bpf_sys_bpf(BPF_PROG_LOAD): %v", unix.Errno(-fd))
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
