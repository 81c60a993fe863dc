package program

import (
	"errors"
	"strings"
	"testing"
)

func TestFromRaw(t *testing.T) {
	// r1 = map fd 7 (ld_imm64, src 1); r0 = 0; exit
	prog := []byte{
		0x18, 0x11, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		0xb7, 0x00, 0, 0, 0, 0, 0, 0,
		0x95, 0, 0, 0, 0, 0, 0, 0,
	}
	tests := []struct {
		name     string
		data     []byte
		wantErr  error
		wantMsg  string
		wantInsn int
	}{
		{"an empty dump is an error without a program", nil, ErrEmpty, "dump.bin: empty file", 0},
		{"a whole dump gives every slot", prog, nil, "", 4},
		{"a dump with 5 trailing bytes keeps the whole slots and names the offset", append(append([]byte{}, prog...), 1, 2, 3, 4, 5), ErrTrailingBytes, "5 trailing bytes at byte offset 32 (after instruction 3)", 4},
		{"a dump shorter than one slot has no whole slots", []byte{1, 2, 3}, ErrTrailingBytes, "at byte offset 0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromRaw("dump.bin", tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
			if errors.Is(err, ErrEmpty) {
				if p != nil {
					t.Error("a program for an empty dump")
				}
				return
			}
			if p == nil || int(p.InsnCnt) != tt.wantInsn || len(p.Insns) != tt.wantInsn*8 || p.Source != SourceRaw {
				t.Fatalf("program %+v", p)
			}
			if tt.wantInsn == 4 && (len(p.Maps) != 1 || p.Maps[0].FD != 7) {
				t.Errorf("maps %+v, want the one with fd 7", p.Maps)
			}
		})
	}
}
