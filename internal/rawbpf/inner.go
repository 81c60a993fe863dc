package rawbpf

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// InnerLoad loads attr's program from inside the kernel, as a light
// skeleton does: a syscall program (the loader) calls
// bpf_sys_bpf(BPF_PROG_LOAD) during this process's BPF_PROG_TEST_RUN, with
// the instructions and license copied into the run's context (kernel
// memory). It gives the new program's fd (installed in this process) or the
// errno bpf_sys_bpf returned, and the loader program's id and tag.
func InnerLoad(attr ProgLoadAttr, insns, lic []byte) (fd int, loaderID uint32, loaderTag string, err error) {
	attrSize := int(unsafe.Sizeof(attr))
	insnsOff := (attrSize + 7) &^ 7
	licOff := insnsOff + len(insns)
	ctx := make([]byte, (licOff+len(lic)+7)&^7)
	attr.Insns, attr.License = 0, 0
	copy(ctx, unsafe.Slice((*byte)(unsafe.Pointer(&attr)), attrSize))
	copy(ctx[insnsOff:], insns)
	copy(ctx[licOff:], lic)

	// bpf_sys_bpf takes the attr from the stack: copy it there, then point
	// insns and license into the context's kernel copy.
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
	loader, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "bpfload_inner", Type: ebpf.Syscall, License: "GPL",
		Flags: unix.BPF_F_SLEEPABLE, Instructions: prog})
	if err != nil {
		return -1, 0, "", fmt.Errorf("load the syscall loader program: %w", err)
	}
	defer loader.Close()
	if info, err := loader.Info(); err == nil {
		id, _ := info.ID()
		loaderID, loaderTag = uint32(id), info.Tag
	}
	ret, err := loader.Run(&ebpf.RunOptions{Context: ctx})
	if err != nil {
		return -1, loaderID, loaderTag, fmt.Errorf("run the loader program: %w", err)
	}
	if fd := int(int32(ret)); fd < 0 {
		return -1, loaderID, loaderTag, unix.Errno(-fd)
	}
	return int(int32(ret)), loaderID, loaderTag, nil
}
