package embedded

import (
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// benchTree is scanned by BenchmarkScanTree: Debian's libbpf-tools binaries
// live there (each embeds a BPF object) among the system's other tools.
const benchTree = "/usr/sbin"

func treeFiles(b *testing.B) ([]string, int64) {
	var files []string
	var total int64
	err := filepath.WalkDir(benchTree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err == nil {
			files = append(files, p)
			total += fi.Size()
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		b.Skipf("%s: %v", benchTree, err)
	}
	return files, total
}

// BenchmarkScanTree compares ScanTree with reading the same files whole
// (Go, like cat) and with cat itself, in the same run; all three report MB/s.
func BenchmarkScanTree(b *testing.B) {
	files, total := treeFiles(b)
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(total)
		for b.Loop() {
			n := 0
			st, err := ScanTree(benchTree, func(f File) error { n += len(f.Objects); return nil })
			if err != nil || n == 0 || st.Bytes != total {
				b.Fatalf("%d objects, %d of %d bytes, %v", n, st.Bytes, total, err)
			}
		}
	})
	b.Run("read", func(b *testing.B) {
		b.SetBytes(total)
		buf := make([]byte, 128<<10)
		for b.Loop() {
			for _, p := range files {
				f, err := os.Open(p)
				if err != nil {
					b.Fatal(err)
				}
				io.CopyBuffer(io.Discard, f, buf)
				f.Close()
			}
		}
	})
	b.Run("cat", func(b *testing.B) {
		null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		defer null.Close()
		b.SetBytes(total)
		for b.Loop() {
			cmd := exec.Command("cat", files...)
			cmd.Stdout = null
			if err := cmd.Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
