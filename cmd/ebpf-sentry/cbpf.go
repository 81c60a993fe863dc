package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/cbpf"
)

func newCbpfCmd() *cobra.Command {
	var ddd bool
	var format string
	cmd := &cobra.Command{
		Use:   "cbpf FILE|-",
		Short: "Disassemble a classic BPF filter as tcpdump -d does, and say what it tests",
		Long: `Read a classic BPF program (struct sock_filter array, 8 bytes per
instruction, as passed to setsockopt(SO_ATTACH_FILTER); or with --ddd the
output of "tcpdump -ddd"), print it as "tcpdump -d" does, and list what it
compares: ports, and magic values past the transport header (BPFDoor-style
packet triggers).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return &exitError{code: 2, err: fmt.Errorf("cbpf: --format %q: want text or json", format)}
			}
			name, data, err := readInput(cmd, args[0])
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("cbpf %s: %w", name, err)}
			}
			var ins []cbpf.Instruction
			if ddd {
				ins, err = cbpf.ParseDDD(bytes.NewReader(data))
			} else {
				ins, err = cbpf.Decode(data)
			}
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("cbpf %s: %w", name, err)}
			}
			a := cbpf.Analyze(ins)
			w := cmd.OutOrStdout()
			if format == "json" {
				lines := strings.Split(strings.TrimSuffix(cbpf.Disassemble(ins), "\n"), "\n")
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					Insns       int            `json:"insn_cnt"`
					Disassembly []string       `json:"disassembly"`
					Analysis    *cbpf.Analysis `json:"analysis"`
				}{len(ins), lines, a})
			}
			fmt.Fprint(w, cbpf.Disassemble(ins))
			fmt.Fprintf(w, "ports: %v\n", a.Ports)
			for _, m := range a.Magic {
				fmt.Fprintf(w, "magic: insn %d: %s %s (%d bytes) %#x\n", m.Insn, m.Op, m.Load, m.Size, m.Value)
			}
			if !a.Accepts {
				fmt.Fprintln(w, "accepts: never (every path returns 0)")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&ddd, "ddd", false, `the input is "tcpdump -ddd" text, not raw sock_filter bytes`)
	cmd.Flags().StringVar(&format, "format", "text", "text|json")
	return cmd
}
