package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/embedded"
	"github.com/ebpf-sentry/ebpf-sentry/output"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

var inspectRecursive bool

func init() {
	inspectCmd.Flags().BoolVar(&inspectRecursive, "recursive", false,
		"FILE is a folder: find every BPF object in every file under it (executables included) and show each program's verdict")
}

// readObjects reads the programs of FILE: a BPF object, or any other file
// with BPF objects embedded (a skeleton or go:embed binary), each program's
// origin then naming where in the file its object lies. trailer reports
// embedded objects that could not be read, after the others were.
func readObjects(name string, data []byte) (progs []*program.Program, trailer, err error) {
	progs, err = program.FromELFReader(name, bytes.NewReader(data))
	if err == nil || isBPFObject(data) {
		return progs, nil, err
	}
	objs, ferr := embedded.Find(bytes.NewReader(data), int64(len(data)))
	if ferr != nil || len(objs) == 0 {
		return nil, nil, fmt.Errorf("%w; no BPF object embedded in its %d bytes either", err, len(data))
	}
	var bad []string
	for _, o := range objs {
		origin := name + "@" + o.Where()
		ps, err := program.FromELFReader(origin, bytes.NewReader(data[o.Offset:o.Offset+o.Size]))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		progs = append(progs, ps...)
	}
	if len(bad) > 0 {
		trailer = fmt.Errorf("%s: %d of %d embedded objects unreadable: %s", name, len(bad), len(objs), strings.Join(bad, "; "))
		if len(progs) == 0 {
			return nil, nil, trailer
		}
	}
	return progs, trailer, nil
}

// isBPFObject tells whether data claims to be a BPF ELF object itself
// (machine EM_BPF or EM_NONE in its header), so that its errors are its own.
func isBPFObject(data []byte) bool {
	if len(data) < 20 || !bytes.HasPrefix(data, []byte("\x7fELF")) {
		return false
	}
	m := uint16(data[18]) | uint16(data[19])<<8
	if data[5] == 2 { // big-endian
		m = uint16(data[19]) | uint16(data[18])<<8
	}
	return m == 247 || m == 0
}

// treeProgram is one program of --recursive output.
type treeProgram struct {
	Name       string               `json:"name"`
	Section    string               `json:"section,omitempty"`
	ProgType   string               `json:"prog_type"`
	Insns      int                  `json:"insn_count"`
	SHA256     string               `json:"sha256"`
	StructOps  *program.StructOps   `json:"struct_ops,omitempty"`
	Unresolved []program.Unresolved `json:"unresolved,omitempty"`
	LoaderErr  string               `json:"object_loader_error,omitempty"`
	Verdicts   []any                `json:"verdict,omitempty"`
}

type treeObject struct {
	Path     string          `json:"path"`
	Object   embedded.Object `json:"object"`
	Error    string          `json:"error,omitempty"`
	Programs []treeProgram   `json:"programs"`
}

func runInspectRecursive(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || inspectOpts.raw != "" {
		return &exitError{code: 2, err: errors.New("inspect --recursive: give one folder (and no --raw)")}
	}
	switch inspectOpts.format {
	case "text", "json":
	default:
		return &exitError{code: 2, err: fmt.Errorf("inspect --recursive: --format %q: want text or json", inspectOpts.format)}
	}
	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
	js := inspectOpts.format == "json"
	if js {
		w.WriteString(`{"objects":[`)
	}
	n := 0
	stats, err := embedded.ScanTree(args[0], func(f embedded.File) error {
		for _, o := range f.Objects {
			obj, err := judgeTreeObject(f, o)
			if err != nil {
				return err
			}
			if js {
				if n > 0 {
					w.WriteByte(',')
				}
				b, err := json.Marshal(obj)
				if err != nil {
					return err
				}
				w.Write(b)
			} else {
				writeTreeObject(w, obj)
			}
			n++
		}
		return nil
	})
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("inspect --recursive %s: %w", args[0], err)}
	}
	if js {
		tail, _ := json.Marshal(stats)
		w.WriteString("],")
		w.Write(tail[1:])
		w.WriteByte('\n')
	} else {
		fmt.Fprintf(w, "scanned %d files, %d bytes: %d BPF objects\n", stats.Files, stats.Bytes, n)
		for _, e := range stats.Errors {
			fmt.Fprintf(w, "unreadable: %s\n", output.Escape(e))
		}
	}
	if err := w.Flush(); err != nil {
		return &exitError{code: 1, err: fmt.Errorf("inspect: write output: %w", err)}
	}
	if len(stats.Errors) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("inspect --recursive %s: %d files or folders unreadable (listed above)", args[0], len(stats.Errors))}
	}
	return nil
}

func judgeTreeObject(f embedded.File, o embedded.Object) (treeObject, error) {
	obj := treeObject{Path: f.Path, Object: o, Programs: []treeProgram{}}
	origin := f.Path + "@" + o.Where()
	progs, err := program.FromELFReader(origin, io.NewSectionReader(f.Reader, o.Offset, o.Size))
	if err != nil {
		obj.Error = err.Error()
		return obj, nil
	}
	for _, p := range progs {
		r := analysis.Analyze(p, &inspectOpts.analysis)
		tp := treeProgram{Name: p.Name, Section: p.Section, ProgType: analysis.ProgTypeName(p.Type), Insns: r.InsnCount,
			SHA256: r.SHA256, StructOps: p.StructOps, Unresolved: p.Unresolved, LoaderErr: p.ObjectLoaderError}
		for _, j := range inspectJudges {
			t, d, err := j(p, r)
			if err != nil {
				return obj, fmt.Errorf("%s: program %s: %w", origin, p.Name, err)
			}
			if d != nil {
				tp.Verdicts = append(tp.Verdicts, d)
			}
			if t != "" && inspectOpts.format == "text" {
				tp.Verdicts = append(tp.Verdicts, strings.TrimRight(t, "\n"))
			}
		}
		obj.Programs = append(obj.Programs, tp)
	}
	return obj, nil
}

func writeTreeObject(w *bufio.Writer, obj treeObject) {
	// File and symbol names in a scanned tree are untrusted.
	fmt.Fprintf(w, "object %s@%s\n", output.Escape(obj.Path), output.Escape(obj.Object.Where()))
	if obj.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", output.Escape(obj.Error))
	}
	for _, p := range obj.Programs {
		fmt.Fprintf(w, "  program %s  section %s  type %s  insns %d  sha256 %s\n", output.Escape(p.Name), output.Escape(p.Section), p.ProgType, p.Insns, p.SHA256)
		if p.StructOps != nil {
			fmt.Fprintf(w, "    struct_ops: %s\n", structOpsText(p.StructOps))
		}
		if p.LoaderErr != "" {
			fmt.Fprintf(w, "    read directly (the object loader refused the object)\n")
		}
		for _, u := range p.Unresolved {
			fmt.Fprintf(w, "    unresolved: %s\n", output.Escape(u.String()))
		}
		for _, v := range p.Verdicts {
			if s, ok := v.(string); ok {
				for _, line := range strings.Split(s, "\n") {
					fmt.Fprintf(w, "    %s\n", line)
				}
			}
		}
	}
}
