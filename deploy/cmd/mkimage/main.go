// Command mkimage builds the ebpf-sentry container image as an OCI layout
// (make image), without a container daemon (package image).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ebpf-sentry/ebpf-sentry/deploy/image"
	"github.com/ebpf-sentry/ebpf-sentry/deploy/internal/agent"
)

func main() {
	version := flag.String("version", "0.1.0", "agent version, also the layout tag")
	out := flag.String("o", "", "OCI layout directory (default bin/image in the repository)")
	ca := flag.String("ca", image.DefaultCA, "CA bundle to ship")
	flag.Parse()
	if err := run(*version, *out, *ca); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(version, out, ca string) error {
	if out == "" {
		out = filepath.Join(agent.RootDir(), "bin", "image")
	}
	tmp, err := os.MkdirTemp("", "mkimage")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "ebpf-sentry")
	if err := agent.Build(bin, version); err != nil {
		return err
	}
	img, err := image.Build(image.Options{Binary: bin, CA: ca, Version: version})
	if err != nil {
		return err
	}
	if err := image.WriteLayout(out, version, img); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s (tag %s, %s)\n", out, version, d)
	return nil
}
