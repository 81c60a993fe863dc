// Command mkdeb builds the ebpf-sentry .deb (make deb): it compiles the
// agent statically and packages it with nfpm (package deb).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/deb"
	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
)

func main() {
	version := flag.String("version", "0.1.0", "package and agent version")
	out := flag.String("o", "", "output .deb (default bin/ebpf-sentry_VERSION_amd64.deb in the repository)")
	flag.Parse()
	if err := run(*version, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
}

func run(version, out string) error {
	root := agent.RootDir()
	if out == "" {
		out = filepath.Join(root, "bin", "ebpf-sentry_"+version+"_amd64.deb")
	}
	tmp, err := os.MkdirTemp("", "mkdeb")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "ebpf-sentry")
	if err := agent.Build(bin, version); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := deb.Build(f, deb.Options{Version: version, Binary: bin, Root: root}); err != nil {
		f.Close()
		os.Remove(out)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Println(out)
	return nil
}
