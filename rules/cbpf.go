package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// CbpfMatch is about a classic BPF socket filter (a cbpf_attach): a rule
// whose match has one judges filters, never eBPF programs. Each present
// field must hold; a list means any of. The loader predicates (exe,
// exe_identity, uid…) and not/any apply to the process that attached it.
type CbpfMatch struct {
	Ports    []uint32 // compares one of these TCP/UDP ports
	Magic    []uint32 // compares one of these magic values (payload constants)
	MagicAny *bool    // compares at least one magic value (or none)
	Socket   []string // packet | raw | other
	Option   []string // SO_ATTACH_FILTER | SO_ATTACH_REUSEPORT_CBPF | SO_ATTACH_BPF
}

// Cbpf is what the rules see of one socket-filter attach.
type Cbpf struct {
	Option string   // SO_ATTACH_FILTER …
	Socket string   // packet | raw | other | "" (unknown)
	Ports  []uint32 // from cbpf.Analyze
	Magic  []uint32 // the values of its magic comparisons
}

var cbpfKeys = []string{"ports", "magic", "magic_any", "socket", "option"}

var cbpfSockets = []string{"packet", "raw", "other"}

var cbpfOptions = []string{"SO_ATTACH_FILTER", "SO_ATTACH_REUSEPORT_CBPF", "SO_ATTACH_BPF"}

func (d *decoder) parseCbpf(n ast.Node, field string) (*CbpfMatch, bool) {
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, field, "empty cbpf match: it would match every filter")
		return nil, false
	}
	c := &CbpfMatch{}
	var lists []entry
	for _, e := range entries {
		if e.key != "magic_any" {
			lists = append(lists, e)
			continue
		}
		b, bok := d.boolean(e.value, join(field, e.key))
		if !bok {
			ok = false
			continue
		}
		c.MagicAny = &b
	}
	lok := d.eachListItem(lists, field, cbpfKeys, true, func(key, f string, it ast.Node) bool {
		switch key {
		case "ports":
			u, uok := d.uint(it, f, math.MaxUint16)
			c.Ports = append(c.Ports, uint32(u))
			return uok
		case "magic":
			u, uok := d.uint(it, f, math.MaxUint32)
			c.Magic = append(c.Magic, uint32(u))
			return uok
		case "socket":
			return d.oneOf(it, f, cbpfSockets, &c.Socket)
		default: // option
			return d.oneOf(it, f, cbpfOptions, &c.Option)
		}
	})
	return c, ok && lok
}

// oneOf appends the string n to out if it is one of valid.
func (d *decoder) oneOf(n ast.Node, field string, valid []string, out *[]string) bool {
	s, ok := d.str(n, field)
	if !ok {
		return false
	}
	if !slices.Contains(valid, s) {
		d.errorf(n, field, "unknown value %q; valid: %s", s, strings.Join(valid, ", "))
		return false
	}
	*out = append(*out, s)
	return true
}

// eval checks c against the attach in.cbpf (nil: the input is a program).
func (c *CbpfMatch) eval(in *input) (Reason, bool) {
	f := in.cbpf
	if f == nil {
		return Reason{}, false
	}
	var parts []string
	if len(c.Option) > 0 {
		if !slices.Contains(c.Option, f.Option) {
			return Reason{}, false
		}
		parts = append(parts, "option "+f.Option)
	}
	if len(c.Socket) > 0 {
		if !slices.Contains(c.Socket, f.Socket) {
			return Reason{}, false
		}
		parts = append(parts, f.Socket+" socket")
	}
	if len(c.Ports) > 0 {
		var hit []string
		for _, p := range f.Ports {
			if slices.Contains(c.Ports, p) {
				hit = append(hit, fmt.Sprint(p))
			}
		}
		if hit == nil {
			return Reason{}, false
		}
		parts = append(parts, "port "+strings.Join(hit, ","))
	}
	if len(c.Magic) > 0 {
		var hit []string
		for _, m := range f.Magic {
			if slices.Contains(c.Magic, m) {
				hit = append(hit, fmt.Sprintf("%#x", m))
			}
		}
		if hit == nil {
			return Reason{}, false
		}
		parts = append(parts, "magic "+strings.Join(hit, ","))
	}
	if c.MagicAny != nil {
		if (len(f.Magic) > 0) != *c.MagicAny {
			return Reason{}, false
		}
		parts = append(parts, fmt.Sprintf("%d magic comparisons", len(f.Magic)))
	}
	return Reason{Predicate: "cbpf", Detail: strings.Join(parts, "; ")}, true
}

// EvaluateCbpf judges one socket-filter attach by the rules of set whose
// match is about classic filters (has cbpf), with loader the attaching
// process. Rules about programs never match a filter, and cbpf rules never
// match a program.
func EvaluateCbpf(set *Set, f *Cbpf, loader *program.Loader) Verdict {
	var v Verdict
	if set == nil || f == nil {
		return v
	}
	in := newInput(&program.Program{Loader: loader}, nil)
	in.cbpf = f
	for _, r := range set.Rules {
		if r.Match.Cbpf == nil {
			continue
		}
		why, ok := r.Match.eval(in)
		if !ok {
			continue
		}
		v.Hits = append(v.Hits, Hit{ID: r.ID, Action: r.Action, Severity: r.Severity, Tags: r.Tags,
			Description: r.Description, Why: why})
		v.Action = max(v.Action, r.Action)
	}
	return v
}
