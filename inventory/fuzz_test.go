package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseFDInfo(f *testing.F) {
	f.Add([]byte("pos:\t0\nprog_type:\t1\nprog_id:\t42\n"))
	f.Add([]byte("link_type:\ttracing\nlink_id:\t5\nprog_id:\t42\n"))
	f.Add([]byte("map_id:\t4294967295\nmap_id:\t4294967296\n:\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got := parseFDInfo(b)
		if got.prog != 0 && !strings.Contains(string(b), "prog_id:") {
			t.Fatalf("prog id %d from %q", got.prog, b)
		}
	})
}

func FuzzBpffsMounts(f *testing.F) {
	f.Add("30 22 0:26 / /sys/fs/bpf rw,nosuid shared:12 - bpf bpf rw,mode=700\n")
	f.Add("31 22 0:27 / /run/my\\040pins rw - bpf none rw\n31 22 0:27 / /x\\ - bpf none rw\n")
	f.Add(" - bpf \n - \n\\\\\\")
	f.Fuzz(func(t *testing.T, mountinfo string) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "proc", "self"), 0o755)
		os.WriteFile(filepath.Join(dir, "proc", "self", "mountinfo"), []byte(mountinfo), 0o644)
		mounts, err := bpffsMounts(dir)
		if err != nil && !strings.Contains(err.Error(), "token too long") {
			t.Fatal(err)
		}
		if len(mounts) > strings.Count(mountinfo, " - bpf ") {
			t.Fatalf("%d mounts from %q", len(mounts), mountinfo)
		}
	})
}

func FuzzDecodeLink(f *testing.F) {
	f.Add(uint32(linkPerfEvent), []byte{5, 0, 0, 0}, "sys_enter_getpid")
	f.Add(uint32(linkTracing), []byte{24, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0}, "")
	f.Add(uint32(99), []byte{}, "x")
	f.Fuzz(func(t *testing.T, typ uint32, union []byte, name string) {
		in := linkInfo{Type: typ, ID: 1, ProgID: 2}
		copy(in.U[:], union)
		l := decodeLink(&in, name)
		if l.ID != 1 || l.ProgID != 2 || l.Type == "" {
			t.Fatalf("decoded %+v", l)
		}
	})
}
