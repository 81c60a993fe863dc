package rules

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/ebpf-sentry/ebpf-sentry/helper"

	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// helperID resolves a helper given by name (with or without bpf_) or id.
func (d *decoder) helperID(n ast.Node, field string) (int32, string, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return 0, "", false
	}
	var raw string
	switch v := n.(type) {
	case *ast.IntegerNode:
		raw = v.GetToken().Value
	case *ast.StringNode:
		raw = v.Value
	default:
		d.errorf(n, field, "want a helper name or id, got %s", kind(n))
		return 0, "", false
	}
	return d.resolveHelper(n, field, raw)
}

func (d *decoder) resolveHelper(n ast.Node, field, raw string) (int32, string, bool) {
	if id, err := strconv.ParseInt(raw, 0, 32); err == nil {
		name, known := helper.Name(int32(id))
		if !known || id <= 0 {
			d.errorf(n, field, "unknown helper id %d", id)
			return 0, "", false
		}
		return int32(id), name, true
	}
	id, known := helper.ID(raw)
	if !known || id <= 0 {
		msg := fmt.Sprintf("unknown helper %q", raw)
		if s, ok := helper.Nearest(raw); ok {
			msg += fmt.Sprintf(" (did you mean %s?)", s)
		}
		d.errorf(n, field, "%s", msg)
		return 0, "", false
	}
	name, _ := helper.Name(id)
	return id, name, true
}

func (d *decoder) parseHelperMins(n ast.Node, field string) ([]HelperMin, bool) {
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, field, "empty mapping: name helpers with their minimum call counts")
		return nil, false
	}
	var out []HelperMin
	seen := map[int32]string{}
	for _, e := range entries {
		f := join(field, e.key)
		id, name, ok1 := d.resolveHelper(e.keyN, f, e.key)
		minimum, ok2 := d.uint(e.value, f, math.MaxUint32)
		if !ok1 || !ok2 {
			ok = false
			continue
		}
		if prev, dup := seen[id]; dup {
			d.errorf(e.keyN, f, "helper %s is already listed as %q", name, prev)
			ok = false
			continue
		}
		seen[id] = e.key
		out = append(out, HelperMin{ID: id, Name: name, Min: uint32(minimum)})
	}
	return out, ok
}

func (d *decoder) parseHelperList(n ast.Node, field string) ([]HelperMin, bool) {
	items, ok := d.list(n, field, true)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		d.errorf(n, field, "empty list: nothing could match")
		return nil, false
	}
	var out []HelperMin
	for _, it := range items {
		id, name, iok := d.helperID(it, field)
		if !iok {
			ok = false
			continue
		}
		if !slices.ContainsFunc(out, func(h HelperMin) bool { return h.ID == id }) {
			out = append(out, HelperMin{ID: id, Name: name, Min: 1})
		}
	}
	return out, ok
}

func (d *decoder) parseEnumList(n ast.Node, field string, names *program.Enum) ([]uint32, bool) {
	items, ok := d.list(n, field, true)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		d.errorf(n, field, "empty list: nothing could match")
		return nil, false
	}
	var out []uint32
	for _, it := range items {
		if v, isInt := it.(*ast.IntegerNode); isInt {
			u, uok := d.uint(v, field, math.MaxUint32)
			if uok {
				out = append(out, uint32(u))
			} else {
				ok = false
			}
			continue
		}
		s, sok := d.str(it, field)
		if !sok {
			ok = false
			continue
		}
		v, known := names.Value(s)
		if !known {
			msg := fmt.Sprintf("unknown %s %q", names.What(), s)
			if near, nok := nearest(strings.ToLower(s), names.Names()); nok {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			d.errorf(it, field, "%s", msg)
			ok = false
			continue
		}
		out = append(out, v)
	}
	return out, ok
}

// kernelNameChars are the bytes the kernel accepts in a program name
// (bpf_obj_name_cpy): a pattern with any other byte can never match.
func validKernelName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

var nameKeys = []string{"exact", "prefix", "glob", "regex"}

// parseNamePatterns reads prog_name: a mapping of pattern kinds, or a string
// or list of strings meaning exact names.
func (d *decoder) parseNamePatterns(n ast.Node, field string) (*StringPatterns, bool) {
	p := &StringPatterns{}
	ok := true
	if _, isMap := n.(*ast.MappingNode); !isMap {
		if _, isMV := n.(*ast.MappingValueNode); !isMV {
			items, lok := d.list(n, field, true)
			if !lok {
				return nil, false
			}
			for _, it := range items {
				if s, sok := d.exactName(it, field, "name", true); sok {
					p.Exact = append(p.Exact, s)
				} else {
					ok = false
				}
			}
			return p, ok && d.nonEmpty(n, field, p)
		}
	}
	entries, mok := d.mapping(n, field)
	if !mok {
		return nil, false
	}
	ok = d.eachListItem(entries, field, nameKeys, false, func(key, f string, it ast.Node) bool {
		switch key {
		case "exact":
			s, sok := d.exactName(it, f, "name", true)
			p.Exact = append(p.Exact, s)
			return sok
		case "prefix":
			s, sok := d.exactName(it, f, "prefix", true)
			p.Prefix = append(p.Prefix, s)
			return sok
		case "glob":
			s, sok := d.glob(it, f)
			if sok && s.minLen() > kernelNameMax {
				d.errorf(it, f, "glob %q can never match: kernel program names are at most %d characters", s.Pattern, kernelNameMax)
				sok = false
			}
			p.Glob = append(p.Glob, s)
			return sok
		default: // regex
			re, sok := d.regex(it, f)
			if sok {
				if m := regexMinLen(re); m > kernelNameMax {
					d.errorf(it, f, "regex %q can never match: it needs %d bytes and kernel program names are at most %d", re.String(), m, kernelNameMax)
					sok = false
				}
			}
			p.Regex = append(p.Regex, re)
			return sok
		}
	})
	return p, ok && d.nonEmpty(n, field, p)
}

// regexMinLen is the fewest bytes any match of re has (UTF-8 literals
// counted by their encoded length).
func regexMinLen(re *regexp.Regexp) int {
	t, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return 0
	}
	return syntaxMinLen(t.Simplify())
}

func syntaxMinLen(t *syntax.Regexp) int {
	switch t.Op {
	case syntax.OpLiteral:
		return len(string(t.Rune))
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1
	case syntax.OpCapture, syntax.OpPlus:
		return syntaxMinLen(t.Sub[0])
	case syntax.OpRepeat:
		return t.Min * syntaxMinLen(t.Sub[0])
	case syntax.OpConcat:
		n := 0
		for _, s := range t.Sub {
			n += syntaxMinLen(s)
		}
		return n
	case syntax.OpAlternate:
		n := -1
		for _, s := range t.Sub {
			if m := syntaxMinLen(s); n < 0 || m < n {
				n = m
			}
		}
		return max(n, 0)
	}
	return 0 // star, quest, empty, anchors, boundaries
}

func (d *decoder) nonEmpty(n ast.Node, field string, p *StringPatterns) bool {
	if len(p.Exact)+len(p.Prefix)+len(p.Glob)+len(p.Contains)+len(p.Regex) == 0 {
		d.errorf(n, field, "no patterns: nothing could match")
		return false
	}
	return true
}

// exactName checks a name or prefix that is compared with a kernel name
// (prog_name, comm): at most 15 bytes, else it could never match.
func (d *decoder) exactName(n ast.Node, field, what string, progName bool) (string, bool) {
	s, ok := d.pattern(n, field)
	if !ok {
		return "", false
	}
	if len(s) > kernelNameMax {
		d.errorf(n, field, "%s %q can never match: kernel names are at most %d characters (libbpf loads longer ELF names as %q)",
			what, s, kernelNameMax, s[:kernelNameMax])
		return "", false
	}
	if progName {
		if !validKernelName(s) {
			d.errorf(n, field, "%s %q can never match: the kernel accepts only letters, digits, '_' and '.' in program names", what, s)
			return "", false
		}
	}
	return s, true
}

func (d *decoder) glob(n ast.Node, field string) (Glob, bool) {
	s, ok := d.pattern(n, field)
	if !ok {
		return Glob{}, false
	}
	g, err := CompileGlob(s)
	if err != nil {
		d.errorf(n, field, "bad glob %q: %v", s, err)
		return Glob{}, false
	}
	return g, true
}

func (d *decoder) regex(n ast.Node, field string) (*regexp.Regexp, bool) {
	s, ok := d.pattern(n, field)
	if !ok {
		return nil, false
	}
	// Go's regexp is RE2: matching is linear in the input, so no pattern can
	// make evaluation slow; the length cap bounds compilation.
	re, err := regexp.Compile(s)
	if err != nil {
		d.errorf(n, field, "bad regex %q: %v", s, err)
		return nil, false
	}
	return re, true
}

var stringKeys = []string{"contains", "regex"}

func (d *decoder) parseStringPatterns(n ast.Node, field string) (*StringPatterns, bool) {
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	p := &StringPatterns{}
	ok = d.eachListItem(entries, field, stringKeys, false, func(key, f string, it ast.Node) bool {
		if key == "contains" {
			s, sok := d.pattern(it, f)
			p.Contains = append(p.Contains, s)
			return sok
		}
		re, sok := d.regex(it, f)
		p.Regex = append(p.Regex, re)
		return sok
	})
	return p, ok && d.nonEmpty(n, field, p)
}

var loaderKeys = []string{"comm", "exe", "uid", "cgroup", "exe_identity"}

func (d *decoder) parseLoader(n ast.Node, field string) (*LoaderMatch, bool) {
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	l := &LoaderMatch{}
	ok = d.eachListItem(entries, field, loaderKeys, true, func(key, f string, it ast.Node) bool {
		switch key {
		case "comm":
			s, sok := d.exactName(it, f, "comm", false)
			l.Comm = append(l.Comm, s)
			return sok
		case "exe":
			s, sok := d.glob(it, f)
			l.Exe = append(l.Exe, s)
			return sok
		case "uid":
			u, uok := d.uint(it, f, math.MaxUint32)
			l.UID = append(l.UID, uint32(u))
			return uok
		case "exe_identity":
			e, eok := d.parseExeIdentity(it, f)
			l.ExeIdentity = append(l.ExeIdentity, e)
			return eok
		default: // cgroup
			u, uok := d.uint(it, f, math.MaxUint64)
			l.Cgroup = append(l.Cgroup, u)
			return uok
		}
	})
	if ok && len(entries) == 0 {
		d.errorf(n, field, "empty loader match")
		ok = false
	}
	return l, ok
}

var exeIdentityKeys = []string{"inode", "dev", "sha256"}

var devPattern = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)

// parseExeIdentity reads {inode: N, dev: "MAJ:MIN", sha256: hex}; inode
// and dev are required (the kernel matches on them), sha256 is optional.
func (d *decoder) parseExeIdentity(n ast.Node, field string) (ExeIdentity, bool) {
	var e ExeIdentity
	entries, ok := d.mapping(n, field)
	if !ok {
		return e, false
	}
	var hasIno, hasDev bool
	for _, en := range entries {
		f := join(field, en.key)
		switch en.key {
		case "inode":
			u, uok := d.uint(en.value, f, math.MaxUint64)
			if !uok {
				ok = false
			} else if u == 0 {
				d.errorf(en.value, f, "inode 0 names no file")
				ok = false
			}
			e.Inode, hasIno = u, true
		case "dev":
			s, sok := d.str(en.value, f)
			m := devPattern.FindStringSubmatch(s)
			if !sok || m == nil {
				if sok {
					d.errorf(en.value, f, "dev %q: want MAJOR:MINOR, as `stat -c %%Hd:%%Ld FILE` prints it", s)
				}
				ok = false
				continue
			}
			major, _ := strconv.ParseUint(m[1], 10, 32)
			minor, _ := strconv.ParseUint(m[2], 10, 32)
			if major >= 1<<12 || minor >= 1<<20 {
				d.errorf(en.value, f, "dev %q: the kernel's dev_t holds majors below 4096 and minors below 1048576", s)
				ok = false
				continue
			}
			e.Dev, hasDev = KernelDev(uint32(major), uint32(minor)), true
		case "sha256":
			s, sok := d.str(en.value, f)
			if sok && !sha256Pattern.MatchString(s) {
				d.errorf(en.value, f, "sha256 %q: want 64 lowercase hex digits", s)
				sok = false
			}
			e.SHA256 = s
			ok = ok && sok
		default:
			d.unknownKey(en, field, exeIdentityKeys)
			ok = false
		}
	}
	if ok && (!hasIno || !hasDev) {
		d.errorf(n, field, "exe_identity needs inode and dev (the kernel matches on both); sha256 is optional")
		ok = false
	}
	return e, ok
}

var rangeKeys = []string{"min", "max"}

func (d *decoder) parseRange(n ast.Node, field string) (*Range, bool) {
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	r := &Range{Max: math.MaxUint32}
	for _, e := range entries {
		f := join(field, e.key)
		switch e.key {
		case "min", "max":
			u, uok := d.uint(e.value, f, math.MaxUint32)
			if !uok {
				ok = false
				continue
			}
			if e.key == "min" {
				r.Min = uint32(u)
			} else {
				r.Max = uint32(u)
			}
		default:
			d.unknownKey(e, field, rangeKeys)
			ok = false
		}
	}
	if ok && r.Min > r.Max {
		d.errorf(n, field, "min %d is above max %d: nothing could match", r.Min, r.Max)
		ok = false
	}
	if ok && len(entries) == 0 {
		d.errorf(n, field, "empty range: give min, max or both")
		ok = false
	}
	return r, ok
}

var allowKeys = []string{"sha256", "tag", "insn_hash"}

var (
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	tagPattern    = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

func (d *decoder) parseAllow(n ast.Node, field string) []Allow {
	items, ok := d.list(n, field, false)
	if !ok {
		return nil
	}
	var out []Allow
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		entries, ok := d.mapping(it, f)
		if !ok {
			continue
		}
		if len(entries) != 1 {
			d.errorf(it, f, "give exactly one of sha256, tag, insn_hash per entry")
			continue
		}
		e := entries[0]
		ef := join(f, e.key)
		s, ok := d.str(e.value, ef)
		if !ok {
			continue
		}
		s = strings.ToLower(s)
		switch e.key {
		case "sha256":
			if !sha256Pattern.MatchString(s) {
				d.errorf(e.value, ef, "want 64 hex digits, got %q", s)
				continue
			}
			out = append(out, Allow{SHA256: s})
		case "tag":
			if !tagPattern.MatchString(s) {
				d.errorf(e.value, ef, "want 16 hex digits, got %q", s)
				continue
			}
			out = append(out, Allow{Tag: s})
		case "insn_hash":
			h, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
			if err != nil || !strings.HasPrefix(s, "0x") {
				d.errorf(e.value, ef, "want a 64-bit hex number written 0x…, got %q", s)
				continue
			}
			out = append(out, Allow{InsnHash: h, HasHash: true})
		default:
			d.unknownKey(e, f, allowKeys)
		}
	}
	return out
}

func (d *decoder) parseGlobs(n ast.Node, field string) ([]Glob, bool) {
	items, ok := d.list(n, field, true)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		d.errorf(n, field, "empty list: nothing could match")
		return nil, false
	}
	var out []Glob
	for _, it := range items {
		s, gok := d.glob(it, field)
		ok = ok && gok
		out = append(out, s)
	}
	return out, ok
}
