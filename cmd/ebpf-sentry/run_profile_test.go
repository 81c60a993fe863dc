//go:build linux && amd64

package main

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// A CPU profile is a gzip-compressed protocol buffer; the test stops at
// gzip (no profile parser among the module's dependencies).
func TestCPUProfileIsWrittenAtStop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.prof")
	stop, err := startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s is not a gzip-compressed profile: %v", path, err)
	}
	b, err := io.ReadAll(z)
	if err != nil || len(b) == 0 {
		t.Fatalf("%s: %d bytes of profile, %v", path, len(b), err)
	}
}

func TestCPUProfileToAnUnwritablePathIsAnError(t *testing.T) {
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.prof")); err == nil {
		t.Fatal("no error for a profile in a directory that does not exist")
	}
}
