package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/ebpf-sentry/ebpf-sentry/internal/suggest"
)

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
