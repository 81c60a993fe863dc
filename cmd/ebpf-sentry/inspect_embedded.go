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

// readObjects reads the programs of FILE: a BPF object, or any other file
// with BPF objects embedded (a skeleton or go:embed binary), each program's
// origin then naming where in the file its object lies. trailer reports
// embedded objects that could not be read, after the others were.
func readObjects(name string, data []byte) (progs []*program.Program, trailer, err error) {
	progs, err = program.FromELFReader(name, bytes.NewReader(data))
	if err == nil || isBPFObject(data) {
		return progs, nil, err
	}
	objs, loaders, ferr := embedded.FindAll(bytes.NewReader(data), int64(len(data)))
	var bad []string
	if len(loaders) > embedded.MaxLoaders {
		bad = append(bad, fmt.Sprintf("%d light-skeleton loader prologues, only the first %d decoded", len(loaders), embedded.MaxLoaders))
		loaders = loaders[:embedded.MaxLoaders]
	}
	for _, off := range loaders {
		l, lerr := embedded.DecodeLightSkeleton(data, off)
		if lerr != nil {
			bad = append(bad, lerr.Error())
			continue
		}
		progs = append(progs, lightPrograms(name, l)...)
	}
	if ferr != nil || len(objs) == 0 && len(progs) == 0 {
		return nil, nil, fmt.Errorf("%w; no BPF object or light skeleton embedded in its %d bytes either", err, len(data))
	}
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
		trailer = fmt.Errorf("%s: %d of %d embedded objects unreadable: %s", name, len(bad), len(objs)+len(loaders), strings.Join(bad, "; "))
		if len(progs) == 0 {
			return nil, nil, trailer
		}
	}
	return progs, trailer, nil
}

// lightPrograms makes Programs of a light skeleton's programs.
func lightPrograms(file string, l embedded.LightSkeleton) []*program.Program {
	var out []*program.Program
	for _, lp := range l.Programs {
		out = append(out, &program.Program{
			Source:             program.SourceLightSkeleton,
			Origin:             fmt.Sprintf("%s@%s, instructions at offset %#x", file, l.Where(), lp.InsnsOffset),
			Name:               lp.Name,
			Type:               lp.Type,
			ExpectedAttachType: lp.ExpectedAttachType,
			License:            lp.License,
			Insns:              lp.Insns,
			InsnCnt:            uint32(len(lp.Insns) / 8),
		})
	}
	return out
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
	Path     string                  `json:"path"`
	Object   *embedded.Object        `json:"object,omitempty"`
	Light    *embedded.LightSkeleton `json:"light_skeleton,omitempty"`
	Error    string                  `json:"error,omitempty"`
	Programs []treeProgram           `json:"programs"`
}

func (o *inspectOptions) runRecursive(cmd *cobra.Command, args []string) error {
	if len(args) != 1 || o.raw != "" {
		return &exitError{code: 2, err: errors.New("inspect --recursive: give one folder (and no --raw)")}
	}
	switch o.format {
	case "text", "json":
	default:
		return &exitError{code: 2, err: fmt.Errorf("inspect --recursive: --format %q: want text or json", o.format)}
	}
	w := bufio.NewWriterSize(cmd.OutOrStdout(), 64*1024)
	js := o.format == "json"
	if js {
		w.WriteString(`{"objects":[`)
	}
	n := 0
	stats, err := embedded.ScanTree(args[0], func(f embedded.File) error {
		todo := make([]func() (treeObject, error), 0, len(f.Objects)+len(f.Loaders))
		for _, obj := range f.Objects {
			todo = append(todo, func() (treeObject, error) { return o.judgeTreeObject(f, obj) })
		}
		for i, off := range f.Loaders {
			if i == embedded.MaxLoaders {
				todo = append(todo, func() (treeObject, error) {
					return treeObject{Path: f.Path, Programs: []treeProgram{}, Error: fmt.Sprintf("%d light-skeleton loader prologues, only the first %d decoded", len(f.Loaders), embedded.MaxLoaders)}, nil
				})
				break
			}
			todo = append(todo, func() (treeObject, error) { return o.judgeLightSkeleton(f, off) })
		}
		for _, next := range todo {
			obj, err := next()
			if err != nil {
				return err
			}
			if obj.Path == "" {
				continue // a loader prologue that is no light skeleton
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

// judgeLightSkeleton reads the whole file (bounded) to decode the light
// skeleton whose loader is at off; a prologue that decodes to nothing is
// skipped.
func (o *inspectOptions) judgeLightSkeleton(f embedded.File, off int64) (treeObject, error) {
	if f.Size > embedded.MaxObject {
		return treeObject{Path: f.Path, Light: &embedded.LightSkeleton{LoaderOffset: off, DataOffset: -1}, Programs: []treeProgram{},
			Error: fmt.Sprintf("light skeleton loader at offset %#x: file larger than %d bytes, not decoded", off, embedded.MaxObject)}, nil
	}
	data := make([]byte, f.Size)
	if _, err := f.Reader.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return treeObject{Path: f.Path, Programs: []treeProgram{}, Error: err.Error()}, nil
	}
	l, err := embedded.DecodeLightSkeleton(data, off)
	if err != nil {
		return treeObject{}, nil
	}
	obj := treeObject{Path: f.Path, Light: &l, Programs: []treeProgram{}}
	return obj, o.judgePrograms(&obj, f.Path+"@"+l.Where(), lightPrograms(f.Path, l))
}

func (o *inspectOptions) judgeTreeObject(f embedded.File, eo embedded.Object) (treeObject, error) {
	obj := treeObject{Path: f.Path, Object: &eo, Programs: []treeProgram{}}
	origin := f.Path + "@" + eo.Where()
	progs, err := program.FromELFReader(origin, io.NewSectionReader(f.Reader, eo.Offset, eo.Size))
	if err != nil {
		obj.Error = err.Error()
		return obj, nil
	}
	return obj, o.judgePrograms(&obj, origin, progs)
}

func (o *inspectOptions) judgePrograms(obj *treeObject, origin string, progs []*program.Program) error {
	for _, p := range progs {
		r := analysis.Analyze(p, &o.analysis)
		tp := treeProgram{Name: p.Name, Section: p.Section, ProgType: analysis.ProgTypeName(p.Type), Insns: r.InsnCount,
			SHA256: r.SHA256, StructOps: p.StructOps, Unresolved: p.Unresolved, LoaderErr: p.ObjectLoaderError}
		for _, j := range o.judges {
			t, d, err := j(p, r)
			if err != nil {
				return fmt.Errorf("%s: program %s: %w", origin, p.Name, err)
			}
			if d != nil {
				tp.Verdicts = append(tp.Verdicts, d)
			}
			if t != "" && o.format == "text" {
				tp.Verdicts = append(tp.Verdicts, strings.TrimRight(t, "\n"))
			}
		}
		obj.Programs = append(obj.Programs, tp)
	}
	return nil
}

func writeTreeObject(w *bufio.Writer, obj treeObject) {
	// File and symbol names in a scanned tree are untrusted.
	where := ""
	if obj.Object != nil {
		where = obj.Object.Where()
	} else if obj.Light != nil {
		where = obj.Light.Where()
	}
	fmt.Fprintf(w, "object %s@%s\n", output.Escape(obj.Path), output.Escape(where))
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
