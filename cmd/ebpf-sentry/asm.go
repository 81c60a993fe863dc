package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/insn"
)

// asmOptions are the asm command's flags.
type asmOptions struct {
	out    string
	disasm bool
}

func newAsmCmd() *cobra.Command {
	var o asmOptions
	cmd := &cobra.Command{
		Use:   "asm [FILE|-] [-o OUT]",
		Short: "Assemble filter.h instruction macros into raw instruction bytes, or back with --disasm",
		Long: `Assemble filter.h builder macros (BPF_MOV64_IMM(BPF_REG_1, 0), BPF_EXIT_INSN(), …;
the form "inspect --format macro" prints) into raw little-endian 8-byte instructions.
With --disasm, do the inverse: raw instructions (e.g. written by
"bpftool prog dump xlated id N file F") become one macro per line.

FILE "-" or no FILE reads stdin; without -o the result goes to stdout.
Errors name FILE:line:column (assembly) or the byte offset (--disasm).
See docs/MACROS.md for the accepted macros and expressions.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) },
	}
	f := cmd.Flags()
	f.StringVarP(&o.out, "output", "o", "", "write to OUT instead of stdout")
	f.BoolVar(&o.disasm, "disasm", false, "read raw instructions and print macros")
	return cmd
}

// writeMacros writes one macro per line in chunks, so that a huge program
// needs no single giant buffer.
func writeMacros(w io.Writer, ins []insn.Instruction, comment func(insn.Instruction) string) error {
	f := insn.MacroFormatter{Comment: comment}
	buf := make([]byte, 0, min(64<<10, 64*len(ins)))
	for len(ins) > 0 {
		n := min(1024, len(ins))
		buf = f.AppendListing(buf[:0], ins[:n])
		if _, err := w.Write(buf); err != nil {
			return err
		}
		ins = ins[n:]
	}
	return nil
}

func (o *asmOptions) run(cmd *cobra.Command, args []string) error {
	name := "-"
	if len(args) == 1 {
		name = args[0]
	}
	label := name
	var (
		in  []byte
		err error
	)
	if name == "-" {
		label = "<stdin>"
		in, err = io.ReadAll(cmd.InOrStdin())
	} else {
		in, err = os.ReadFile(name)
	}
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("asm: %w", err)}
	}

	var out []byte
	if o.disasm {
		if len(in) == 0 {
			return &exitError{code: 2, err: fmt.Errorf("asm --disasm %s: empty input, no instructions", label)}
		}
		insns, probs := insn.Decode(in)
		var f insn.MacroFormatter
		out = f.AppendListing(nil, insns)
		// Only a trailing partial slot loses bytes; every other problem
		// (unknown opcodes, reserved fields) is written exactly as BPF_RAW_INSN.
		for _, p := range probs {
			if p.Index < 0 {
				if werr := o.writeOutput(cmd, out); werr != nil {
					return werr
				}
				return &exitError{code: 2, err: fmt.Errorf("asm --disasm %s: %w", label, p)}
			}
		}
	} else {
		var a insn.Assembler
		out, err = a.Assemble(string(in))
		if err != nil {
			var list insn.AsmErrors
			if errors.As(err, &list) {
				lines := make([]string, len(list))
				for i, e := range list {
					lines[i] = label + ":" + e.Error()
				}
				err = errors.New(strings.Join(lines, "\n"))
			}
			return &exitError{code: 2, err: fmt.Errorf("asm %w", err)}
		}
	}
	return o.writeOutput(cmd, out)
}

func (o *asmOptions) writeOutput(cmd *cobra.Command, out []byte) error {
	if o.out == "" {
		if _, err := cmd.OutOrStdout().Write(out); err != nil {
			return &exitError{code: 1, err: fmt.Errorf("asm: write output: %w", err)}
		}
		return nil
	}
	if err := os.WriteFile(o.out, out, 0o644); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("asm: %w", err)}
	}
	return nil
}
