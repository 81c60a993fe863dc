//go:build linux && amd64

package main

import (
	"fmt"
	"io"

	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printProvenance is doctor's account of signed programs, BPF tokens and
// the BPF keyring (docs/PROVENANCE.md).
func printProvenance(out io.Writer, p sensor.Provenance) {
	fmt.Fprintf(out, "signed programs: %s (verifies: %s): %s\n", yesNo(p.Signing.Fields), yesNo(p.Signing.Verifies), p.Signing.How)
	fmt.Fprintf(out, "bpf tokens: %s: %s\n", yesNo(p.Tokens), p.TokensHow)
	sealed := "unknown"
	if p.Sealed != nil {
		sealed = yesNo(*p.Sealed)
	}
	if !p.BPFKeyring {
		sealed = "not applicable"
	}
	fmt.Fprintf(out, "bpf keyring: %s, sealed: %s: %s\n", yesNo(p.BPFKeyring), sealed, p.BPFKeyringHow)
}
