package embedded

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

func find(t *testing.T, b []byte) []Object {
	t.Helper()
	objs, err := Find(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestFindATestObjectIsItself(t *testing.T) {
	objs, _ := filepath.Glob(testutils.Testdata("*.bpf.o"))
	if len(objs) == 0 {
		t.Fatal("no testdata objects")
	}
	for _, o := range objs {
		b, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		got := find(t, b)
		if len(got) != 1 || got[0].Offset != 0 || got[0].Size != int64(len(b)) {
			t.Errorf("%s (%d bytes): %+v", o, len(b), got)
		}
	}
}

func TestFindObjectsAmongOtherBytes(t *testing.T) {
	a, err := os.ReadFile(testutils.Testdata("execsnoop.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(testutils.Testdata("structops.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	// Junk with a stray ELF magic and a non-BPF ELF header, an object that
	// straddles the 1 MiB read boundary, then another.
	var file []byte
	file = append(file, bytes.Repeat([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1}, 10)...)
	file = append(file, make([]byte, chunk-len(file)-100)...)
	offA := len(file)
	file = append(file, a...)
	file = append(file, "\x7fELF"...)
	offB := len(file)
	file = append(file, b...)
	file = append(file, 0xff)
	got := find(t, file)
	if len(got) != 2 || got[0].Offset != int64(offA) || got[0].Size != int64(len(a)) ||
		got[1].Offset != int64(offB) || got[1].Size != int64(len(b)) {
		t.Fatalf("found %+v, want %d (%d bytes) and %d (%d bytes)", got, offA, len(a), offB, len(b))
	}
	progs, err := program.FromELFReader("x", bytes.NewReader(file[offB:offB+len(b)]))
	if err != nil || len(progs) != 3 {
		t.Fatalf("the found structops object: %d programs, %v", len(progs), err)
	}
	// Cut the second object: its sections leave the file, so it is not one.
	if got := find(t, file[:offB+len(b)/2]); len(got) != 1 {
		t.Errorf("a cut object is reported: %+v", got)
	}
}

// Debian's libbpf-tools are libbpf-skeleton binaries: each carries its BPF
// object in .rodata.
func TestFindTheObjectInALibbpfToolsBinary(t *testing.T) {
	const tool = "/usr/sbin/opensnoop"
	b, err := os.ReadFile(tool)
	if err != nil {
		t.Fatalf("%v (scripts/deps.sh installs libbpf-tools)", err)
	}
	got := find(t, b)
	if len(got) != 1 || got[0].Section != ".rodata" {
		t.Fatalf("%s: %+v", tool, got)
	}
	o := got[0]
	progs, err := program.FromELFReader(tool, bytes.NewReader(b[o.Offset:o.Offset+o.Size]))
	if err != nil || len(progs) == 0 {
		t.Fatalf("%d programs, %v", len(progs), err)
	}
	names := map[string]bool{}
	for _, p := range progs {
		names[p.Name] = true
	}
	if !names["tracepoint__syscalls__sys_enter_openat"] {
		t.Errorf("programs %v", names)
	}
}

// bpftrace compiles its programs at run time: the binary embeds no BPF
// object and no light skeleton, though its bytes hold the ELF magic once
// (not an ELF header).
func TestFindNothingInBpftrace(t *testing.T) {
	b, err := os.ReadFile("/usr/bin/bpftrace")
	if err != nil {
		t.Fatalf("%v (scripts/deps.sh installs bpftrace)", err)
	}
	if n := bytes.Count(b[1:], []byte("\x7fELF")); n == 0 {
		t.Fatal("no stray ELF magic: the test no longer shows that a magic alone is not taken for an object")
	}
	got, loaders, err := FindAll(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(got) != 0 || len(loaders) != 0 {
		t.Fatalf("found %+v, light-skeleton loaders at %v, %v", got, loaders, err)
	}
}

// A bpf2go-style Go binary keeps its object through go:embed.
func TestFindTheObjectInAGoBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go program")
	}
	obj, err := os.ReadFile(testutils.Testdata("execsnoop.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	bin := testutils.BuildGoEmbedder(t, obj)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Index(b, obj)
	if want < 0 {
		t.Fatal("the object's bytes are not in the binary")
	}
	got := find(t, b)
	if len(got) != 1 || got[0].Offset != int64(want) || got[0].Size != int64(len(obj)) {
		t.Fatalf("found %+v, the object is at %d (%d bytes)", got, want, len(obj))
	}
	if got[0].Section == "" || got[0].Symbol == "" {
		t.Errorf("no section or symbol named for %+v", got[0])
	}
}
