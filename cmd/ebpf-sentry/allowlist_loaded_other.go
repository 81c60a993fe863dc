//go:build !linux

package main

import (
	"errors"

	"github.com/ebpf-sentry/ebpf-sentry/allowlist"
)

// diffAgainstLoaded needs the kernel's program list: Linux only.
func diffAgainstLoaded(*allowlist.List) (loadedDiff, error) {
	return loadedDiff{}, errors.New("allowlist diff --loaded reads the programs loaded in the kernel: Linux only")
}
