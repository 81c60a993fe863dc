package insn_test

import (
	"fmt"
	"os"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// Decode a raw stream (here with a trailing partial slot) and print it the
// way "bpftool prog dump xlated" lays it out.
func ExampleKernelFormatter() {
	raw := []byte{
		0xbf, 0x16, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // r6 = r1
		0x85, 0x00, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00, // call helper 14
		0x18, 0x11, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, // r1 = map fd 5 …
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // … second slot
		0xbf, 0x32, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, // movsx
		0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // exit
		0xff, 0xff, // garbage
	}
	insns, problems := insn.Decode(raw)
	f := insn.KernelFormatter{
		HelperName: func(id int32) string {
			if id == 14 {
				return "bpf_get_current_pid_tgid"
			}
			return ""
		},
		Imm64Text: func(ins insn.Instruction, imm uint64) string {
			if ins.Src == insn.PseudoMapFD {
				return fmt.Sprintf("map[fd:%d]", imm)
			}
			return "" // the kernel's default: 0x…
		},
	}
	if err := f.WriteListing(os.Stdout, insns, insn.ListingBpftool); err != nil {
		panic(err)
	}
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	//    0: (bf) r6 = r1
	//    1: (85) call bpf_get_current_pid_tgid#14
	//    2: (18) r1 = map[fd:5]
	//    4: (bf) r2 = (s8)r3
	//    5: (95) exit
	// byte 48: trailing partial instruction of 2 bytes (length is not a multiple of 8)
}

// Kind tells instructions apart by all their fields; Check applies the
// verifier's context-free rules.
func ExampleInstruction_Check() {
	insns, _ := insn.Decode([]byte{
		0x3f, 0x12, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, // r2 s/= r1 (off=1)
		0x07, 0x21, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // r1 += 1 with a source register set
	})
	for _, ins := range insns {
		fmt.Println(ins.Kind(), ins, ins.Check())
	}
	// Output:
	// sdiv (3f) r2 s/= r1 []
	// add (07) r1 += 1 [insn 1 (byte 8): (07) reserved src_reg field set to 2]
}
