package rawbpf

import (
	"errors"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// attr is the head of union bpf_attr for BPF_PROG_LOAD, up to the license.
type attr struct {
	progType uint32
	insnCnt  uint32
	insns    uint64
	license  uint64
}

func TestProgLoad(t *testing.T) {
	testutils.RequireRoot(t, "loading BPF programs")
	license := []byte("GPL\x00")
	tests := []struct {
		name    string
		insns   []byte
		wantErr error
	}{
		{"r0 = 0; exit loads as a socket filter", []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, nil},
		{"a program that reads an uninitialised register is refused with EACCES", []byte{0xbf, 0x20, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}, unix.EACCES},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := attr{progType: 1, insnCnt: uint32(len(tt.insns) / 8),
				insns: uint64(uintptr(unsafe.Pointer(&tt.insns[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0])))}
			fd, err := ProgLoad(unsafe.Pointer(&a), unsafe.Sizeof(a))
			runtime.KeepAlive(tt.insns)
			runtime.KeepAlive(license)
			if fd >= 0 {
				unix.Close(fd)
			}
			if !errors.Is(err, tt.wantErr) && !(err == nil && tt.wantErr == nil) {
				t.Fatalf("ProgLoad = %d, %v; want error %v", fd, err, tt.wantErr)
			}
			if tt.wantErr == nil && fd < 0 {
				t.Fatalf("no fd for a loadable program")
			}
		})
	}
}
