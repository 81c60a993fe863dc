package inventory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// fakeKernel serves a fixed set of objects; errs makes one program's read
// fail the way the kernel would.
type fakeKernel struct {
	progs   []uint32
	errs    map[uint32]error
	listErr error
}

func (f *fakeKernel) nextID(cmd uintptr, start uint32) (uint32, error) {
	if f.listErr != nil {
		return 0, f.listErr
	}
	if cmd != cmdProgGetNextID {
		return 0, unix.ENOENT
	}
	for _, id := range f.progs {
		if id > start {
			return id, nil
		}
	}
	return 0, unix.ENOENT
}

func (f *fakeKernel) prog(id uint32) (*progRecord, error) {
	if err := f.errs[id]; err != nil {
		return nil, err
	}
	rec := &progRecord{insns: []byte{0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0}}
	rec.info.ID = id
	rec.info.Type = 1
	rec.info.XlatedProgLen = 16
	copy(rec.info.Name[:], fmt.Sprintf("p%d", id))
	return rec, nil
}

func (f *fakeKernel) mapByID(id uint32) (Map, error)        { return Map{}, unix.ENOENT }
func (f *fakeKernel) link(id uint32) (Link, error)          { return Link{}, unix.ENOENT }
func (f *fakeKernel) pinned(string) (string, uint32, error) { return "", 0, unix.ENOENT }

func TestScanReportsUnreadablePrograms(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"a program unloaded between enumeration and read is reported gone", unix.ENOENT, UnreadableGone},
		{"a program the kernel refuses to open is reported as permission denied", unix.EPERM, UnreadablePerm},
		{"any other error is reported with its text", unix.EFAULT, "unreadable: bad address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := &fakeKernel{progs: []uint32{3, 7, 9}, errs: map[uint32]error{7: tt.err}}
			inv, err := Scan(&Options{kernel: k, NoOwners: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Programs) != 3 {
				t.Fatalf("got %d programs, want all 3 listed", len(inv.Programs))
			}
			bad := inv.Programs[1]
			if bad.ID != 7 || bad.Prog != nil || bad.Unreadable != tt.want {
				t.Errorf("program 7: id %d prog %v unreadable %q, want %q", bad.ID, bad.Prog, bad.Unreadable, tt.want)
			}
			for _, i := range []int{0, 2} {
				if p := inv.Programs[i]; p.Prog == nil || p.Unreadable != "" || p.Name != fmt.Sprintf("p%d", p.ID) {
					t.Errorf("program %d should be readable: %+v", p.ID, p)
				}
			}
		})
	}
}

func TestScanWithoutPermissionSaysSo(t *testing.T) {
	_, err := Scan(&Options{kernel: &fakeKernel{listErr: unix.EPERM}, NoOwners: true})
	if !errors.Is(err, ErrNoAccess) {
		t.Fatalf("got %v, want ErrNoAccess", err)
	}
}

func TestScanWithUnreadableProcListsProgramsAndNamesTheProblem(t *testing.T) {
	tests := []struct {
		name string
		tree func(dir string)
		want string
	}{
		{"an empty root has no /proc", func(string) {}, "fd holders unknown: list processes"},
		{"a /proc with no process (hidepid, not procfs)", func(d string) { os.MkdirAll(filepath.Join(d, "proc", "self"), 0o755) }, "lists no process"},
		{"a /proc that cannot be read", func(d string) { os.WriteFile(filepath.Join(d, "proc"), nil, 0o644) }, "fd holders unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.tree(dir)
			inv, err := Scan(&Options{kernel: &fakeKernel{progs: []uint32{1, 2}}, Root: dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Programs) != 2 || inv.Programs[0].Prog == nil {
				t.Fatalf("programs must still be listed: %+v", inv.Programs)
			}
			all := strings.Join(inv.Problems, "\n")
			if !strings.Contains(all, tt.want) || !strings.Contains(all, "bpffs pins unknown") {
				t.Errorf("problems %q lack %q and the bpffs problem", all, tt.want)
			}
		})
	}
}

func TestParseFDInfo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want fdFields
	}{
		{"a program fd", "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t1\nprog_jited:\t1\nprog_tag:\ta04f5eef06a7f555\nmemlock:\t4096\nprog_id:\t42\n", fdFields{prog: 42}},
		{"a link fd names its program too", "link_type:\ttracing\nlink_id:\t5\nprog_tag:\t00\nprog_id:\t42\nattach_type:\t24\n", fdFields{prog: 42, link: 5}},
		{"a map fd", "map_type:\t1\nkey_size:\t4\nmap_id:\t9\n", fdFields{mapID: 9}},
		{"garbage values are ignored", "prog_id:\tx\nmap_id:\t99999999999\nnocolon\n", fdFields{}},
		{"a plain file has none", "pos:\t0\nflags:\t0100000\n", fdFields{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseFDInfo([]byte(tt.in)); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestBpffsMountsReadsMountinfo(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "proc", "self"), 0o755)
	mi := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"30 22 0:26 / /sys/fs/bpf rw,nosuid shared:12 - bpf bpf rw,mode=700\n" +
		"31 22 0:27 / /run/my\\040pins rw - bpf none rw\n" +
		"32 22 0:27 / /sys/fs/bpf rw - bpf bpf rw\n"
	os.WriteFile(filepath.Join(dir, "proc", "self", "mountinfo"), []byte(mi), 0o644)
	got, err := bpffsMounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != "/sys/fs/bpf|/run/my pins" {
		t.Errorf("got %q", got)
	}
}

// TestInfoLayoutsMatchTheKernelHeader checks the structs passed to
// BPF_OBJ_GET_INFO_BY_FD against linux/bpf.h.
func TestInfoLayoutsMatchTheKernelHeader(t *testing.T) {
	const header = "/usr/include/linux/bpf.h"
	var p progInfo
	var m mapInfo
	var l linkInfo
	fields := []struct {
		c            string
		offset, size uintptr
	}{
		{"bpf_prog_info, type", unsafe.Offsetof(p.Type), 4},
		{"bpf_prog_info, tag", unsafe.Offsetof(p.Tag), 8},
		{"bpf_prog_info, xlated_prog_len", unsafe.Offsetof(p.XlatedProgLen), 4},
		{"bpf_prog_info, xlated_prog_insns", unsafe.Offsetof(p.XlatedProgInsns), 8},
		{"bpf_prog_info, load_time", unsafe.Offsetof(p.LoadTime), 8},
		{"bpf_prog_info, created_by_uid", unsafe.Offsetof(p.CreatedByUID), 4},
		{"bpf_prog_info, nr_map_ids", unsafe.Offsetof(p.NrMapIDs), 4},
		{"bpf_prog_info, map_ids", unsafe.Offsetof(p.MapIDs), 8},
		{"bpf_prog_info, name", unsafe.Offsetof(p.Name), 16},
		{"bpf_prog_info, ifindex", unsafe.Offsetof(p.Ifindex), 4},
		{"bpf_prog_info, netns_dev", unsafe.Offsetof(p.NetnsDev), 8},
		{"bpf_prog_info, btf_id", unsafe.Offsetof(p.BTFID), 4},
		{"bpf_prog_info, nr_prog_tags", unsafe.Offsetof(p.NrProgTags), 4},
		{"bpf_prog_info, verified_insns", unsafe.Offsetof(p.VerifiedInsns), 4},
		{"bpf_prog_info, attach_btf_obj_id", unsafe.Offsetof(p.AttachBTFObjID), 4},
		{"bpf_prog_info, attach_btf_id", unsafe.Offsetof(p.AttachBTFID), 4},
		{"bpf_map_info, max_entries", unsafe.Offsetof(m.MaxEntries), 4},
		{"bpf_map_info, name", unsafe.Offsetof(m.Name), 16},
		{"bpf_link_info, prog_id", unsafe.Offsetof(l.ProgID), 4},
		{"bpf_link_info, raw_tracepoint", unsafe.Offsetof(l.U), 0}, // size: see below
		{"bpf_link_info, tracing.target_btf_id", unsafe.Offsetof(l.U) + 8, 4},
		{"bpf_link_info, cgroup.attach_type", unsafe.Offsetof(l.U) + 8, 4},
	}
	var src strings.Builder
	src.WriteString("#include <stddef.h>\n#include <stdio.h>\n#include <linux/bpf.h>\nint main(void) {\n")
	for _, f := range fields {
		st, member, _ := strings.Cut(f.c, ", ")
		size := fmt.Sprintf("sizeof(((struct %s *)0)->%s)", st, member)
		if member == "raw_tracepoint" { // the union grew since this header: its BTF test checks the size
			size = "(size_t)0"
		}
		fmt.Fprintf(&src, "\tprintf(\"%%zu %%zu\\n\", offsetof(struct %s, %s), %s);\n", st, member, size)
	}
	src.WriteString("\treturn 0;\n}\n")
	out := testutils.RunC(t, header, src.String())
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(fields) {
		t.Fatalf("probe printed %d lines for %d fields:\n%s", len(lines), len(fields), out)
	}
	for i, f := range fields {
		var off, size uintptr
		fmt.Sscanf(lines[i], "%d %d", &off, &size)
		if off != f.offset || size != f.size {
			t.Errorf("%s: Go has offset %d size %d, %s has %d size %d", f.c, f.offset, f.size, header, off, size)
		}
	}
}

// TestLinkInfoUnionMatchesKernelBTF checks the link-info members newer than
// the distribution's header against the running kernel's own BTF.
func TestLinkInfoUnionMatchesKernelBTF(t *testing.T) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		testutils.SkipOrFail(t, "no kernel BTF: "+err.Error())
	}
	var st *btf.Struct
	if err := spec.TypeByName("bpf_link_info", &st); err != nil {
		t.Fatal(err)
	}
	var l linkInfo
	if st.Size != uint32(unsafe.Sizeof(l)) {
		t.Errorf("struct bpf_link_info is %d bytes in the kernel, %d here", st.Size, unsafe.Sizeof(l))
	}
	tests := []struct {
		path []string
		want uint32 // byte offset in the struct
	}{
		{[]string{"perf_event", "type"}, 16},
		{[]string{"perf_event", "tracepoint", "tp_name"}, 24},
		{[]string{"perf_event", "kprobe", "func_name"}, 24},
		{[]string{"perf_event", "uprobe", "file_name"}, 24},
		{[]string{"kprobe_multi", "count"}, 24},
		{[]string{"uprobe_multi", "count"}, 52},
		{[]string{"tcx", "attach_type"}, 20},
		{[]string{"netkit", "attach_type"}, 20},
	}
	for _, tt := range tests {
		off, ok := btfOffset(st, tt.path)
		if !ok {
			testutils.SkipOrFail(t, "kernel lacks bpf_link_info."+strings.Join(tt.path, "."))
			continue
		}
		if off != tt.want {
			t.Errorf("bpf_link_info.%s at %d in the kernel, %d here", strings.Join(tt.path, "."), off, tt.want)
		}
	}
}

// btfOffset finds a member by path, descending through anonymous unions.
func btfOffset(t btf.Type, path []string) (uint32, bool) {
	var members []btf.Member
	switch v := t.(type) {
	case *btf.Struct:
		members = v.Members
	case *btf.Union:
		members = v.Members
	default:
		return 0, false
	}
	for _, m := range members {
		if m.Name == "" {
			if off, ok := btfOffset(m.Type, path); ok {
				return m.Offset.Bytes() + off, true
			}
			continue
		}
		if m.Name != path[0] {
			continue
		}
		if len(path) == 1 {
			return m.Offset.Bytes(), true
		}
		if off, ok := btfOffset(btf.UnderlyingType(m.Type), path[1:]); ok {
			return m.Offset.Bytes() + off, true
		}
	}
	return 0, false
}
