package testutils

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildGoEmbedder builds, in a temporary folder, a Go program that embeds
// obj with go:embed the way bpf2go's generated code does, and returns the
// binary's path.
func BuildGoEmbedder(t testing.TB, obj []byte) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod": "module embedder\n\ngo 1.22\n",
		"main.go": `package main

import (
	_ "embed"
	"fmt"
)

//go:embed prog_bpfel.o
var _ProgBytes []byte

func main() { fmt.Println(len(_ProgBytes)) }
`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "prog_bpfel.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-o", "embedder", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "embedder")
}
