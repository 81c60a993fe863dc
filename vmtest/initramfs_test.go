package vmtest

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteInitramfsBytes(t *testing.T) {
	// Written out from the newc specification (cpio(5)): 110-byte ASCII
	// header, NUL-terminated name, both padded to 4 bytes.
	want := "070701" + "00000001" + "000081ed" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000002" + "00000000" + "00000000" + "00000000" + "00000000" + "00000002" + "00000000" +
		"a\x00" + "hi\x00\x00" +
		"070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000" +
		"00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000b" + "00000000" +
		"TRAILER!!!\x00" + "\x00\x00\x00"
	var b bytes.Buffer
	if err := WriteInitramfs(&b, []File{{Name: "a", Mode: 0o755, Data: []byte("hi")}}); err != nil {
		t.Fatal(err)
	}
	if b.String() != want {
		t.Errorf("archive differs from the hand-written newc bytes:\n got %q\nwant %q", b.String(), want)
	}
}

func TestWriteInitramfsExtractsWithGNUCpio(t *testing.T) {
	cpio, err := exec.LookPath("cpio")
	if err != nil {
		t.Skip("GNU cpio is not installed; it is the independent reader of this test")
	}
	files := []File{
		{Name: "init", Mode: 0o755, Data: bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 1001)},
		{Name: "suites/capabilities.test", Mode: 0o755, Data: []byte("binary")},
		{Name: "suites/deeper/x", Mode: 0o600, Data: nil},
		{Name: "vmtest.json", Mode: 0o644, Data: []byte(`{"suites":[]}`)},
	}
	var b bytes.Buffer
	if err := WriteInitramfs(&b, files); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-i", "-d", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s was not extracted: %v", f.Name, err)
			continue
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s: extracted %d bytes, want %d", f.Name, len(got), len(f.Data))
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != f.Mode {
			t.Errorf("%s: mode %v, want %v", f.Name, st.Mode().Perm(), f.Mode)
		}
	}
	for _, d := range []string{"suites", "suites/deeper"} {
		if st, err := os.Stat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			t.Errorf("parent directory %s was not created (%v)", d, err)
		}
	}
}

func TestWriteInitramfsRejects(t *testing.T) {
	tests := []struct {
		name  string
		files []File
		want  string
	}{
		{name: "an absolute path is refused", files: []File{{Name: "/init", Mode: 0o755}}, want: `"/init"`},
		{name: "a path leaving the image is refused", files: []File{{Name: "../x", Mode: 0o644}}, want: `"../x"`},
		{name: "an empty name is refused", files: []File{{Name: "", Mode: 0o644}}, want: `""`},
		{name: "a mode with type bits is refused", files: []File{{Name: "x", Mode: os.ModeSymlink | 0o777}}, want: "mode"},
		{name: "a file where a directory was made is refused",
			files: []File{{Name: "d/x", Mode: 0o644}, {Name: "d", Mode: 0o644}}, want: "already a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteInitramfs(&bytes.Buffer{}, tt.files)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("WriteInitramfs error = %v, want one containing %s", err, tt.want)
			}
		})
	}
}

func TestWriteInitramfsIsDeterministic(t *testing.T) {
	files := []File{{Name: "init", Mode: 0o755, Data: []byte("x")}, {Name: "a/b", Mode: 0o644, Data: []byte("yz")}}
	var b1, b2 bytes.Buffer
	if err := WriteInitramfs(&b1, files); err != nil {
		t.Fatal(err)
	}
	if err := WriteInitramfs(&b2, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Error("the same files gave different archives")
	}
	if b1.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-byte aligned", b1.Len())
	}
}

// BenchmarkWriteInitramfs packs an image the size of the capability suite's
// (a 4 MB init, a 7 MB test binary, small testdata).
func BenchmarkWriteInitramfs(b *testing.B) {
	files := []File{
		{Name: "init", Mode: 0o755, Data: make([]byte, 4<<20)},
		{Name: "suites/capabilities.test", Mode: 0o755, Data: make([]byte, 7<<20)},
	}
	for i := range 30 {
		files = append(files, File{Name: fmt.Sprintf("work/main/testdata/f%d.o", i), Mode: 0o644, Data: make([]byte, 8<<10)})
	}
	var size int
	for _, f := range files {
		size += len(f.Data)
	}
	b.SetBytes(int64(size))
	for b.Loop() {
		if err := WriteInitramfs(io.Discard, files); err != nil {
			b.Fatal(err)
		}
	}
}
