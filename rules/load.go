package rules

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/ebpf-sentry/ebpf-sentry/helper"

	"github.com/ebpf-sentry/ebpf-sentry/internal/suggest"
	"github.com/ebpf-sentry/ebpf-sentry/program"
)

// Limits on rule input. Rule files are small; anything near these is a
// mistake or an attack on whoever runs `rules check`.
const (
	MaxFileSize   = 128 << 10 // bytes per rule file; larger sets go in a directory
	MaxFiles      = 256       // rule files per directory
	MaxRules      = 4096      // rules per set
	MaxPatternLen = 256       // bytes per string, glob or regex pattern
	MaxListLen    = 1024      // entries per list
	maxErrors     = 50        // errors reported per load; the rest are counted
	maxDepth      = 16        // not/any nesting
	kernelNameMax = 15        // BPF_OBJ_NAME_LEN and TASK_COMM_LEN minus the NUL
)

// Sentinel errors callers may branch on (with errors.Is on a LoadError).
var (
	ErrTooLarge = errors.New("too large")
	ErrEmpty    = errors.New("no rules")
)

// FieldError is one problem in a rule file, at a position, naming the field.
type FieldError struct {
	Pos   Position
	Rule  string // rule id when known
	Field string // dotted path, e.g. match.helpers.bpf_probe_read
	Msg   string
	Err   error // sentinel, when one applies
}

func (e *FieldError) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

// LoadError lists every problem found while loading rules.
type LoadError struct {
	Errs    []*FieldError
	Omitted int // further errors not listed
}

func (e *LoadError) Error() string {
	lines := make([]string, 0, len(e.Errs)+1)
	for _, fe := range e.Errs {
		lines = append(lines, fe.Error())
	}
	if e.Omitted > 0 {
		lines = append(lines, fmt.Sprintf("... and %d more errors", e.Omitted))
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes the field errors to errors.Is / errors.As.
func (e *LoadError) Unwrap() []error {
	errs := make([]error, len(e.Errs))
	for i, fe := range e.Errs {
		errs[i] = fe
	}
	return errs
}

// Load reads rules from a file or from every *.yaml / *.yml file of a
// directory (not recursive, in name order).
func Load(p string) (*Set, error) {
	st, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	if st.IsDir() {
		return LoadDir(p)
	}
	return LoadFile(p)
}

// LoadFile reads one rule file.
func LoadFile(name string) (*Set, error) {
	data, err := readCapped(name)
	if err != nil {
		return nil, err
	}
	return Parse(name, data)
}

func readCapped(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	defer f.Close()
	// Read one byte past the cap so that a huge file is refused without
	// reading it all.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load rules %s: %w", name, err)
	}
	if len(data) > MaxFileSize {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{name, 1, 1},
			Msg: fmt.Sprintf("file is larger than %d bytes: %v", MaxFileSize, ErrTooLarge), Err: ErrTooLarge}}}
	}
	return data, nil
}

// LoadDir reads every *.yaml and *.yml file of dir as one set; rule ids
// must be unique across the files.
func LoadDir(dir string) (*Set, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	var files []string
	for _, e := range entries {
		if ruleFileName(e.Name()) && isRegular(dir, e) {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{dir, 1, 1},
			Msg: "directory has no *.yaml or *.yml files: " + ErrEmpty.Error(), Err: ErrEmpty}}}
	}
	if len(files) > MaxFiles {
		return nil, &LoadError{Errs: []*FieldError{{Pos: Position{dir, 1, 1},
			Msg: fmt.Sprintf("%d rule files, at most %d: %v", len(files), MaxFiles, ErrTooLarge), Err: ErrTooLarge}}}
	}
	sort.Strings(files)
	d := &decoder{}
	var all []*Rule
	for _, f := range files {
		data, err := readCapped(f)
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) {
				d.errs = append(d.errs, le.Errs...)
				continue
			}
			return nil, err
		}
		d.file = f
		all = append(all, d.parseFile(data)...)
	}
	d.checkSet(all)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Set{Rules: all, Source: dir}, nil
}

// ruleFileName says whether a directory entry is a rule file by name:
// *.yaml or *.yml, not hidden (a Kubernetes ConfigMap volume keeps its
// real files in hidden "..<timestamp>" directories).
func ruleFileName(name string) bool {
	ext := filepath.Ext(name)
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml")
}

// isRegular says whether e is a regular file or a symlink to one: a
// ConfigMap volume presents each key as a symlink through "..data".
func isRegular(dir string, e os.DirEntry) bool {
	if e.Type().IsRegular() {
		return true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	return err == nil && st.Mode().IsRegular()
}

// Parse reads rules from the contents of a file; name is used in errors.
func Parse(name string, data []byte) (*Set, error) {
	d := &decoder{file: name}
	rules := d.parseFile(data)
	d.checkSet(rules)
	if err := d.err(); err != nil {
		return nil, err
	}
	return &Set{Rules: rules, Source: name}, nil
}

// decoder walks the YAML syntax tree by hand: that gives every error its
// exact position and field, catches unknown keys and wrong types, and never
// expands anchors or aliases (no billion-laughs).
type decoder struct {
	file    string
	errs    []*FieldError
	omitted int
	rule    string // id of the rule being decoded, for errors
}

func (d *decoder) err() error {
	if len(d.errs) == 0 {
		return nil
	}
	return &LoadError{Errs: d.errs, Omitted: d.omitted}
}

func (d *decoder) posOf(n ast.Node) Position {
	// A mapping's own token is a ':'; people look for its first key.
	switch v := n.(type) {
	case *ast.MappingNode:
		if len(v.Values) > 0 && v.Values[0].Key != nil {
			n = v.Values[0].Key
		}
	case *ast.MappingValueNode:
		if v.Key != nil {
			n = v.Key
		}
	}
	if n != nil {
		if tk := n.GetToken(); tk != nil && tk.Position != nil {
			return Position{d.file, tk.Position.Line, tk.Position.Column}
		}
	}
	return Position{d.file, 1, 1}
}

func (d *decoder) add(fe *FieldError) {
	if len(d.errs) >= maxErrors {
		d.omitted++
		return
	}
	d.errs = append(d.errs, fe)
}

func (d *decoder) errorf(n ast.Node, field, format string, args ...any) {
	d.add(&FieldError{Pos: d.posOf(n), Rule: d.rule, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) parseFile(data []byte) (rules []*Rule) {
	if len(data) > MaxFileSize {
		d.add(&FieldError{Pos: Position{d.file, 1, 1},
			Msg: fmt.Sprintf("file is %d bytes, at most %d: %v", len(data), MaxFileSize, ErrTooLarge), Err: ErrTooLarge})
		return nil
	}
	// go-yaml is third-party code fed untrusted input: a panic in it must
	// become an error about this file, not take the sensor down.
	defer func() {
		if r := recover(); r != nil {
			d.add(&FieldError{Pos: Position{d.file, 1, 1}, Msg: fmt.Sprintf("YAML parser failed: %v", r)})
			rules = nil
		}
	}()
	if !utf8Valid(data) {
		d.add(&FieldError{Pos: Position{d.file, 1, 1}, Msg: "file is not valid UTF-8 text"})
		return nil
	}
	if !d.textOK(data) {
		return nil
	}
	toks := lexer.Tokenize(string(data))
	if !d.shapeOK(toks) {
		return nil
	}
	f, err := parser.Parse(toks, 0)
	if err != nil {
		d.add(d.syntaxError(err))
		return nil
	}
	var body ast.Node
	for i, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if _, ok := doc.Body.(*ast.CommentGroupNode); ok {
			continue
		}
		if body != nil {
			d.errorf(doc.Body, "", "a rule file holds one YAML document (found document %d)", i+1)
			return nil
		}
		body = doc.Body
	}
	if body == nil {
		d.add(&FieldError{Pos: Position{d.file, 1, 1}, Msg: "empty file: " + ErrEmpty.Error(), Err: ErrEmpty})
		return nil
	}
	items, ok := d.list(body, "", false)
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.add(&FieldError{Pos: d.posOf(body), Msg: "empty list: " + ErrEmpty.Error(), Err: ErrEmpty})
		return nil
	}
	for i, item := range items {
		if r := d.parseRule(item, i); r != nil {
			rules = append(rules, r)
		}
	}
	return rules
}

// go-yaml takes time quadratic (or worse) in nesting depth, line length and
// the number of keys of a mapping (16,000 nested "[" took 18 s, 20,000 keys
// 8 s). Rule files are small and shallow, so the text and then the token
// stream are checked against these bounds before the parser runs; larger
// rule sets are split into files of a directory.
const (
	maxFlowDepth    = 32    // nested [ and {
	maxStructColumn = 160   // column of a "-", ":" or "?": bounds block nesting
	maxTokens       = 50000 // tokens per file
	maxLines        = 4000
	maxLineLen      = 1024
)

// textOK bounds what go-yaml's scanner sees, in one linear pass: its cost
// grows faster than linearly with line length, line count and nesting.
func (d *decoder) textOK(data []byte) bool {
	line, col, depth := 1, 0, 0
	var quote byte
	comment := false
	for i, c := range data {
		col++
		if c == '\n' {
			line, col, quote, comment = line+1, 0, 0, false
			if line > maxLines {
				d.add(&FieldError{Pos: Position{d.file, line, 1}, Msg: fmt.Sprintf("more than %d lines: %v", maxLines, ErrTooLarge), Err: ErrTooLarge})
				return false
			}
			continue
		}
		if col > maxLineLen {
			d.add(&FieldError{Pos: Position{d.file, line, col}, Msg: fmt.Sprintf("line longer than %d bytes", maxLineLen)})
			return false
		}
		switch {
		case comment:
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || data[i-1] == ' ' || data[i-1] == '\t'):
			comment = true
		case c == '[' || c == '{':
			// Brackets in plain scalars (a regex) count too: the limit is far
			// above what a rule file needs, so that only costs exactness.
			depth++
			if depth > maxFlowDepth {
				d.add(&FieldError{Pos: Position{d.file, line, col}, Msg: fmt.Sprintf("[ and { nested more than %d deep", maxFlowDepth)})
				return false
			}
		case c == ']' || c == '}':
			depth = max(0, depth-1)
		}
	}
	return true
}

func (d *decoder) shapeOK(toks token.Tokens) bool {
	if len(toks) > maxTokens {
		d.add(&FieldError{Pos: Position{d.file, 1, 1}, Msg: fmt.Sprintf("more than %d YAML tokens: %v", maxTokens, ErrTooLarge), Err: ErrTooLarge})
		return false
	}
	depth := 0
	for _, tk := range toks {
		pos := Position{d.file, 1, 1}
		if tk.Position != nil {
			pos.Line, pos.Column = tk.Position.Line, tk.Position.Column
		}
		switch tk.Type {
		case token.SequenceStartType, token.MappingStartType:
			depth++
			if depth > maxFlowDepth {
				d.add(&FieldError{Pos: pos, Msg: fmt.Sprintf("[ and { nested more than %d deep", maxFlowDepth)})
				return false
			}
		case token.SequenceEndType, token.MappingEndType:
			depth--
		case token.SequenceEntryType, token.MappingValueType, token.MappingKeyType:
			if pos.Column > maxStructColumn {
				d.add(&FieldError{Pos: pos, Msg: fmt.Sprintf("nested too deeply: structure past column %d", maxStructColumn)})
				return false
			}
		}
	}
	return true
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

// syntaxError turns a go-yaml error into a FieldError at its token.
func (d *decoder) syntaxError(err error) *FieldError {
	fe := &FieldError{Pos: Position{d.file, 1, 1}, Msg: "YAML syntax: " + err.Error()}
	var te interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &te) {
		fe.Msg = "YAML syntax: " + te.GetMessage()
		if tk := te.GetToken(); tk != nil && tk.Position != nil {
			fe.Pos.Line, fe.Pos.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return fe
}

func (d *decoder) checkSet(rules []*Rule) {
	if len(rules) > MaxRules {
		d.add(&FieldError{Pos: rules[MaxRules].Pos, Msg: fmt.Sprintf("%d rules, at most %d: %v", len(rules), MaxRules, ErrTooLarge), Err: ErrTooLarge})
	}
	seen := map[string]*Rule{}
	for _, r := range rules {
		if first, ok := seen[r.ID]; ok {
			d.add(&FieldError{Pos: r.Pos, Rule: r.ID, Field: "id", Msg: "duplicate id, first defined at " + first.Pos.String()})
			continue
		}
		seen[r.ID] = r
	}
}

// kind names a node's YAML type for "want X, got Y" messages.
func kind(n ast.Node) string {
	switch n.(type) {
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode, nil:
		return "nothing (null)"
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.AnchorNode:
		return "an anchor"
	case *ast.AliasNode:
		return "an alias"
	case *ast.TagNode:
		return "a tagged value"
	}
	return "something else"
}

// plain refuses the YAML features rule files do not need.
func (d *decoder) plain(n ast.Node, field string) (ast.Node, bool) {
	switch n.(type) {
	case *ast.AnchorNode, *ast.AliasNode:
		d.errorf(n, field, "anchors and aliases are not supported in rule files")
		return nil, false
	case *ast.TagNode:
		d.errorf(n, field, "YAML tags are not supported in rule files")
		return nil, false
	case *ast.MergeKeyNode:
		d.errorf(n, field, "merge keys are not supported in rule files")
		return nil, false
	}
	return n, true
}

func (d *decoder) str(n ast.Node, field string) (string, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return "", false
	}
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value != nil {
			return v.Value.Value, true
		}
		return "", true
	}
	d.errorf(n, field, "want a string, got %s", kind(n))
	return "", false
}

// pattern is a string with the pattern length cap.
func (d *decoder) pattern(n ast.Node, field string) (string, bool) {
	s, ok := d.str(n, field)
	if !ok {
		return "", false
	}
	if len(s) > MaxPatternLen {
		d.errorf(n, field, "pattern is %d bytes, at most %d", len(s), MaxPatternLen)
		return "", false
	}
	if s == "" {
		d.errorf(n, field, "empty pattern")
		return "", false
	}
	return s, true
}

func (d *decoder) uint(n ast.Node, field string, max uint64) (uint64, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return 0, false
	}
	v, isInt := n.(*ast.IntegerNode)
	if !isInt {
		d.errorf(n, field, "want a non-negative integer, got %s", kind(n))
		return 0, false
	}
	var u uint64
	switch x := v.Value.(type) {
	case int64:
		if x < 0 {
			d.errorf(n, field, "want a non-negative integer, got %d", x)
			return 0, false
		}
		u = uint64(x)
	case uint64:
		u = x
	default:
		d.errorf(n, field, "want a non-negative integer")
		return 0, false
	}
	if u > max {
		d.errorf(n, field, "%d is out of range (at most %d)", u, max)
		return 0, false
	}
	return u, true
}

func (d *decoder) boolean(n ast.Node, field string) (bool, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return false, false
	}
	if v, isBool := n.(*ast.BoolNode); isBool {
		return v.Value, true
	}
	d.errorf(n, field, "want true or false, got %s", kind(n))
	return false, false
}

// list returns a list's items; when scalarOK, a single scalar is a list of one.
func (d *decoder) list(n ast.Node, field string, scalarOK bool) ([]ast.Node, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return nil, false
	}
	switch v := n.(type) {
	case *ast.SequenceNode:
		if len(v.Values) > MaxListLen {
			d.errorf(n, field, "%d entries, at most %d", len(v.Values), MaxListLen)
			return nil, false
		}
		return v.Values, true
	case *ast.StringNode, *ast.LiteralNode, *ast.IntegerNode:
		if scalarOK {
			return []ast.Node{n}, true
		}
	}
	d.errorf(n, field, "want a list, got %s", kind(n))
	return nil, false
}

// entry is one key: value of a mapping.
type entry struct {
	key   string
	keyN  ast.Node
	value ast.Node
}

func (d *decoder) mapping(n ast.Node, field string) ([]entry, bool) {
	n, ok := d.plain(n, field)
	if !ok {
		return nil, false
	}
	var values []*ast.MappingValueNode
	switch v := n.(type) {
	case *ast.MappingNode:
		values = v.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{v}
	default:
		d.errorf(n, field, "want a mapping, got %s", kind(n))
		return nil, false
	}
	if len(values) > MaxListLen {
		d.errorf(n, field, "%d keys, at most %d", len(values), MaxListLen)
		return nil, false
	}
	seen := map[string]bool{}
	out := make([]entry, 0, len(values))
	for _, mv := range values {
		var key string
		switch k := mv.Key.(type) {
		case *ast.StringNode:
			key = k.Value
		case *ast.IntegerNode:
			key = k.GetToken().Value
		default:
			d.errorf(mv.Key, field, "keys must be plain strings or numbers, got %s", kind(mv.Key))
			continue
		}
		if seen[key] {
			d.errorf(mv.Key, join(field, key), "duplicate key")
			continue
		}
		seen[key] = true
		out = append(out, entry{key: key, keyN: mv.Key, value: mv.Value})
	}
	return out, true
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

// unknownKey reports a key that is not one of known, with the nearest one.
func (d *decoder) unknownKey(e entry, field string, known []string) {
	msg := "unknown key"
	if s, ok := nearest(e.key, known); ok {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	msg += "; valid keys: " + strings.Join(known, ", ")
	d.errorf(e.keyN, join(field, e.key), "%s", msg)
}

// nearest returns the candidate with the smallest edit distance to s, if
// it is plausibly a typo.
func nearest(s string, candidates []string) (string, bool) {
	return suggest.Closest(s, slices.Values(candidates))
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

var ruleKeys = []string{"id", "description", "severity", "action", "tags", "match", "allow"}

func (d *decoder) parseRule(n ast.Node, index int) *Rule {
	d.rule = ""
	defer func() { d.rule = "" }()
	field := fmt.Sprintf("[%d]", index)
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil
	}
	r := &Rule{Pos: d.posOf(n), Severity: -1}
	before := len(d.errs) + d.omitted
	// The id first, so that every other error names the rule.
	for _, e := range entries {
		if e.key == "id" {
			if id, ok := d.str(e.value, "id"); ok {
				if !idPattern.MatchString(id) {
					d.errorf(e.value, "id", "%q is not a valid id (letters, digits, '.', '_', '-'; at most 64; starting with a letter or digit)", id)
				} else {
					r.ID = id
					d.rule = id
				}
			}
		}
	}
	var matchN ast.Node
	for _, e := range entries {
		switch e.key {
		case "id":
		case "description":
			r.Description, _ = d.str(e.value, e.key)
		case "severity":
			if s, ok := d.str(e.value, e.key); ok {
				r.Severity = parseSeverity(s)
				if r.Severity < 0 {
					d.errorf(e.value, e.key, "unknown severity %q; valid: info, low, medium, high, critical", s)
				}
			}
		case "action":
			if s, ok := d.str(e.value, e.key); ok {
				switch s {
				case "alert":
					r.Action = ActionAlert
				case "block":
					r.Action = ActionBlock
				default:
					d.errorf(e.value, e.key, "unknown action %q; valid: alert, block", s)
				}
			}
		case "tags":
			items, _ := d.list(e.value, e.key, true)
			for _, it := range items {
				if s, ok := d.pattern(it, e.key); ok {
					r.Tags = append(r.Tags, s)
				}
			}
		case "match":
			matchN = e.value
			if m, ok := d.parseMatch(e.value, "match", 0); ok {
				r.Match = *m
			}
		case "allow":
			r.Allow = d.parseAllow(e.value, e.key)
		default:
			d.unknownKey(e, "", ruleKeys)
		}
	}
	for _, req := range []struct {
		key     string
		missing bool
	}{{"id", r.ID == "" && !hasKey(entries, "id")}, {"severity", !hasKey(entries, "severity")},
		{"action", !hasKey(entries, "action")}, {"match", matchN == nil}} {
		if req.missing {
			d.errorf(n, req.key, "missing (required)")
		}
	}
	if len(d.errs)+d.omitted != before {
		return nil
	}
	return r
}

func hasKey(entries []entry, key string) bool {
	return slices.ContainsFunc(entries, func(e entry) bool { return e.key == key })
}

func parseSeverity(s string) Severity {
	for sev := SeverityInfo; sev <= SeverityCritical; sev++ {
		if sev.String() == s {
			return sev
		}
	}
	return -1
}

var matchKeys = []string{"helpers", "helpers_mode", "helpers_only", "helpers_any", "prog_name", "prog_type",
	"attach_type", "attach_to", "gpl_compatible", "insn_count", "kfuncs", "map_types", "tail_calls",
	"strings", "loader", "not", "any"}

func (d *decoder) parseMatch(n ast.Node, field string, depth int) (*Match, bool) {
	if depth > maxDepth {
		d.errorf(n, field, "not/any nested more than %d deep", maxDepth)
		return nil, false
	}
	entries, ok := d.mapping(n, field)
	if !ok {
		return nil, false
	}
	if len(entries) == 0 {
		d.errorf(n, field, "empty match: it would match every program")
		return nil, false
	}
	m := &Match{}
	good := true
	fail := func() { good = false }
	for _, e := range entries {
		f := join(field, e.key)
		switch e.key {
		case "helpers":
			m.Helpers, ok = d.parseHelperMins(e.value, f)
		case "helpers_mode":
			var s string
			if s, ok = d.str(e.value, f); ok {
				switch s {
				case "all":
					m.HelpersMode = HelpersAll
				case "called":
					m.HelpersMode = HelpersCalled
				default:
					d.errorf(e.value, f, "unknown mode %q; valid: all, called", s)
					ok = false
				}
			}
		case "helpers_only":
			m.HelpersOnly, ok = d.boolean(e.value, f)
		case "helpers_any":
			m.HelpersAny, ok = d.parseHelperList(e.value, f)
		case "prog_name":
			m.ProgName, ok = d.parseNamePatterns(e.value, f)
		case "prog_type":
			m.ProgType, ok = d.parseEnumList(e.value, f, program.ProgTypes)
		case "attach_type":
			m.AttachType, ok = d.parseEnumList(e.value, f, program.AttachTypes)
		case "map_types":
			m.MapTypes, ok = d.parseEnumList(e.value, f, program.MapTypes)
		case "attach_to":
			m.AttachTo, ok = d.parseGlobs(e.value, f)
		case "gpl_compatible":
			var b bool
			if b, ok = d.boolean(e.value, f); ok {
				m.GPL = &b
			}
		case "tail_calls":
			var b bool
			if b, ok = d.boolean(e.value, f); ok {
				m.TailCalls = &b
			}
		case "insn_count":
			m.InsnCount, ok = d.parseRange(e.value, f)
		case "kfuncs":
			var items []ast.Node
			if items, ok = d.list(e.value, f, true); ok {
				for _, it := range items {
					if s, sok := d.pattern(it, f); sok {
						m.Kfuncs = append(m.Kfuncs, s)
					} else {
						ok = false
					}
				}
			}
		case "strings":
			m.Strings, ok = d.parseStringPatterns(e.value, f)
		case "loader":
			m.Loader, ok = d.parseLoader(e.value, f)
		case "not":
			m.Not, ok = d.parseMatch(e.value, f, depth+1)
			if ok && m.Not.hasComm() {
				d.errorf(e.value, f, "loader.comm cannot be an exception: any process can take any comm (prctl PR_SET_NAME); "+
					"allowlist a loader by loader.exe_identity {inode, dev, sha256} or a program by allow")
				ok = false
			}
		case "any":
			var items []ast.Node
			if items, ok = d.list(e.value, f, false); ok {
				if len(items) == 0 {
					d.errorf(e.value, f, "empty list: nothing could match")
					ok = false
				}
				for i, it := range items {
					sub, sok := d.parseMatch(it, fmt.Sprintf("%s[%d]", f, i), depth+1)
					if sok {
						m.Any = append(m.Any, *sub)
					} else {
						ok = false
					}
				}
			}
		default:
			var handled bool
			if handled, ok = d.parseProvenanceKey(e, f, m); !handled {
				d.unknownKey(e, field, append(slices.Clone(matchKeys), provenanceKeys...))
			}
		}
		if !ok {
			fail()
		}
	}
	if good && len(m.Helpers) == 0 && hasKey(entries, "helpers_mode") {
		d.errorf(n, join(field, "helpers_mode"), "needs helpers")
		good = false
	}
	return m, good
}

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

// eachListItem walks a mapping whose values are lists: it reports unknown
// keys, values that are not lists and (with forbidEmpty) empty lists, and
// calls item for every element of the others. It reports whether all of it,
// and every item call, was well-formed.
func (d *decoder) eachListItem(entries []entry, field string, keys []string, forbidEmpty bool, item func(key, f string, it ast.Node) bool) bool {
	ok := true
	for _, e := range entries {
		f := join(field, e.key)
		if !slices.Contains(keys, e.key) {
			d.unknownKey(e, field, keys)
			ok = false
			continue
		}
		items, lok := d.list(e.value, f, true)
		if !lok {
			ok = false
			continue
		}
		if forbidEmpty && len(items) == 0 {
			d.errorf(e.value, f, "empty list: nothing could match")
			ok = false
			continue
		}
		for _, it := range items {
			if !item(e.key, f, it) {
				ok = false
			}
		}
	}
	return ok
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

// hasComm reports whether m, or anything nested in it, tests loader.comm.
func (m *Match) hasComm() bool {
	if m == nil {
		return false
	}
	if m.Loader != nil && len(m.Loader.Comm) > 0 {
		return true
	}
	for i := range m.Any {
		if m.Any[i].hasComm() {
			return true
		}
	}
	return m.Not.hasComm()
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
