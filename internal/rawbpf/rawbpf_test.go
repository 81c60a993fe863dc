package rawbpf

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// TestProgLoadAttrMatchesTheKernelHeader compiles a C program against the
// installed linux/bpf.h that prints each field's offset and size in union
// bpf_attr, and compares them with the Go struct's.
func TestProgLoadAttrMatchesTheKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/bpf.h"

	var a ProgLoadAttr
	fields := []struct {
		c            string // member of union bpf_attr
		offset, size uintptr
	}{
		{"prog_type", unsafe.Offsetof(a.ProgType), unsafe.Sizeof(a.ProgType)},
		{"insn_cnt", unsafe.Offsetof(a.InsnCnt), unsafe.Sizeof(a.InsnCnt)},
		{"insns", unsafe.Offsetof(a.Insns), unsafe.Sizeof(a.Insns)},
		{"license", unsafe.Offsetof(a.License), unsafe.Sizeof(a.License)},
		{"log_level", unsafe.Offsetof(a.LogLevel), unsafe.Sizeof(a.LogLevel)},
		{"log_size", unsafe.Offsetof(a.LogSize), unsafe.Sizeof(a.LogSize)},
		{"log_buf", unsafe.Offsetof(a.LogBuf), unsafe.Sizeof(a.LogBuf)},
		{"kern_version", unsafe.Offsetof(a.KernVersion), unsafe.Sizeof(a.KernVersion)},
		{"prog_flags", unsafe.Offsetof(a.ProgFlags), unsafe.Sizeof(a.ProgFlags)},
		{"prog_name", unsafe.Offsetof(a.ProgName), unsafe.Sizeof(a.ProgName)},
		{"prog_ifindex", unsafe.Offsetof(a.ProgIfindex), unsafe.Sizeof(a.ProgIfindex)},
		{"expected_attach_type", unsafe.Offsetof(a.ExpectedAttachType), unsafe.Sizeof(a.ExpectedAttachType)},
		{"prog_btf_fd", unsafe.Offsetof(a.ProgBTFFD), unsafe.Sizeof(a.ProgBTFFD)},
		{"func_info_rec_size", unsafe.Offsetof(a.FuncInfoRecSize), unsafe.Sizeof(a.FuncInfoRecSize)},
		{"func_info", unsafe.Offsetof(a.FuncInfo), unsafe.Sizeof(a.FuncInfo)},
		{"func_info_cnt", unsafe.Offsetof(a.FuncInfoCnt), unsafe.Sizeof(a.FuncInfoCnt)},
		{"line_info_rec_size", unsafe.Offsetof(a.LineInfoRecSize), unsafe.Sizeof(a.LineInfoRecSize)},
		{"line_info", unsafe.Offsetof(a.LineInfo), unsafe.Sizeof(a.LineInfo)},
		{"line_info_cnt", unsafe.Offsetof(a.LineInfoCnt), unsafe.Sizeof(a.LineInfoCnt)},
		{"attach_btf_id", unsafe.Offsetof(a.AttachBTFID), unsafe.Sizeof(a.AttachBTFID)},
		{"attach_prog_fd", unsafe.Offsetof(a.AttachProgFD), unsafe.Sizeof(a.AttachProgFD)},
		{"attach_btf_obj_fd", unsafe.Offsetof(a.AttachProgFD), unsafe.Sizeof(a.AttachProgFD)},
		{"core_relo_cnt", unsafe.Offsetof(a.CoreReloCnt), unsafe.Sizeof(a.CoreReloCnt)},
		{"fd_array", unsafe.Offsetof(a.FdArray), unsafe.Sizeof(a.FdArray)},
		// The struct must end where the header's next field starts: no
		// field missing at the end, no padding the kernel would read.
		{"core_relos", unsafe.Sizeof(a), unsafe.Sizeof(a.FdArray)},
	}

	var src strings.Builder
	src.WriteString("#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\nint main(void) {\n")
	for _, f := range fields {
		fmt.Fprintf(&src, "\tprintf(\"%%zu %%zu\\n\", offsetof(union bpf_attr, %s), sizeof(((union bpf_attr *)0)->%s));\n", f.c, f.c)
	}
	src.WriteString("\treturn 0;\n}\n")
	out := testutils.RunC(t, header, src.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(fields) {
		t.Fatalf("layout probe printed %d lines for %d fields:\n%s", len(lines), len(fields), out)
	}
	for i, f := range fields {
		var off, size uintptr
		if _, err := fmt.Sscanf(lines[i], "%d %d", &off, &size); err != nil {
			t.Fatalf("layout probe line %d %q: %v", i+1, lines[i], err)
		}
		if off != f.offset || size != f.size {
			t.Errorf("%s: Go has offset %d size %d, %s has offset %d size %d", f.c, f.offset, f.size, header, off, size)
		}
	}
}

func TestSetName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the 16 bytes of prog_name
	}{
		{"a short name is NUL-padded", "probe", "probe\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"},
		{"a 15-byte name fits with its NUL", "abcdefghijklmno", "abcdefghijklmno\x00"},
		{"a 16-byte name loses its last byte to the NUL", "abcdefghijklmnop", "abcdefghijklmno\x00"},
		{"an empty name clears the field", "", strings.Repeat("\x00", 16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a ProgLoadAttr
			a.ProgName = [16]byte([]byte("XXXXXXXXXXXXXXXX")) // a previous, longer name
			a.SetName(tt.in)
			if got := string(a.ProgName[:]); got != tt.want {
				t.Errorf("SetName(%q) left %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	license := []byte("GPL\x00")
	tests := []struct {
		name    string
		insns   []byte
		wantErr error
	}{
		{"r0 = 0; exit loads as a socket filter under its name", []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, nil},
		{"a program that reads an uninitialised register is refused with EACCES", []byte{0xbf, 0x20, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, unix.EACCES},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := ProgLoadAttr{
				ProgType: uint32(ebpf.SocketFilter),
				InsnCnt:  uint32(len(tt.insns) / 8),
				Insns:    uint64(uintptr(unsafe.Pointer(&tt.insns[0]))),
				License:  uint64(uintptr(unsafe.Pointer(&license[0]))),
			}
			a.SetName("rawbpf_test")
			fd, err := Load(&a)
			runtime.KeepAlive(tt.insns)
			runtime.KeepAlive(license)
			if tt.wantErr != nil {
				if fd >= 0 {
					unix.Close(fd)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Load = %d, %v; want error %v", fd, err, tt.wantErr)
				}
				return
			}
			if err != nil || fd < 0 {
				t.Fatalf("Load = %d, %v; want an fd", fd, err)
			}
			// The kernel's own view of the program proves prog_name sits
			// where the kernel reads it.
			prog, err := ebpf.NewProgramFromFD(fd)
			if err != nil {
				unix.Close(fd)
				t.Fatalf("program from fd %d: %v", fd, err)
			}
			defer prog.Close()
			info, err := prog.Info()
			if err != nil {
				t.Fatalf("program info: %v", err)
			}
			if info.Name != "rawbpf_test" {
				t.Errorf("kernel names the program %q, want %q", info.Name, "rawbpf_test")
			}
		})
	}
}
