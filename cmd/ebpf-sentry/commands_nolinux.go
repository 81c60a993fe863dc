//go:build !linux

package main

import "github.com/spf13/cobra"

// newScanCmd stands for scan, which lists the programs of a running Linux
// kernel (scan.go).
func newScanCmd() *cobra.Command {
	return unavailableCmd("scan", "List every BPF program loaded in the kernel, with its maps, links and owners, analysed and judged",
		"it reads the programs of a running Linux kernel")
}
