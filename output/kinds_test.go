package output

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ebpf-sentry/ebpf-sentry/internal/testutils"
)

// The kind registry (kinds.go) is the one place a kind is declared; these
// tests name every other piece a registered kind still lacks, and every
// kind that a schema or the docs mention without registering it.

// kindSources is what the tests read: both schemas and docs/EVENTS.md.
type kindSources struct {
	schema, ecs map[string]any
	doc         string
}

func readKindSources(t *testing.T) kindSources {
	t.Helper()
	var s kindSources
	for name, dst := range map[string]*map[string]any{"event.schema.json": &s.schema, "event-ecs.schema.json": &s.ecs} {
		b, err := os.ReadFile(testutils.Root() + "/docs/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("docs/%s: %v", name, err)
		}
	}
	b, err := os.ReadFile(testutils.Root() + "/docs/EVENTS.md")
	if err != nil {
		t.Fatal(err)
	}
	s.doc = string(b)
	return s
}

// at follows a path of object keys through decoded JSON.
func at(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// strs is a JSON array of strings (or one string, for "const").
func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// ruleKinds are the kinds an allOf rule's "if" names, with what its "then"
// requires.
type schemaRule struct {
	kinds, required []string
}

func schemaRules(schema map[string]any) []schemaRule {
	var out []schemaRule
	all, _ := schema["allOf"].([]any)
	for _, r := range all {
		ev := at(r, "if", "properties", "event")
		kinds := append(strs(at(ev, "const")), strs(at(ev, "enum"))...)
		out = append(out, schemaRule{kinds, strs(at(r, "then", "required"))})
	}
	return out
}

func eventJSONFields() map[string]bool {
	fields := map[string]bool{}
	typ := reflect.TypeFor[Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		fields[name] = true
	}
	return fields
}

func ecsAction(k Kind) string { return strings.ReplaceAll(string(k), "_", "-") }

// kindTableRow is the row of docs/EVENTS.md's kind table for a spec.
func kindTableRow(s KindSpec) string {
	return "| `" + string(s.Kind) + "` | `" + s.Section + "` | " + s.ECS.Kind + " / " + s.ECS.Category + " / " + s.ECS.Type + " | " + s.Doc + " |"
}

// kindTableHeader opens docs/EVENTS.md's kind table.
const kindTableHeader = "| kind | section | ECS kind / category / type | what it reports |\n|---|---|---|---|\n"

// kindTableOf is the kind table of docs/EVENTS.md: its header and rows.
func kindTableOf(doc string) string {
	_, rest, ok := strings.Cut(doc, kindTableHeader)
	if !ok {
		return ""
	}
	if end := strings.Index(rest, "\n\n"); end >= 0 {
		rest = rest[:end+1]
	}
	return kindTableHeader + rest
}

// docHeadingKinds are the kinds that a heading of docs/EVENTS.md names in
// backticks (a word of lower-case letters and underscores).
func docHeadingKinds(doc string) map[string]bool {
	out := map[string]bool{}
	for _, h := range regexp.MustCompile("(?m)^#+ .*$").FindAllString(doc, -1) {
		for _, m := range regexp.MustCompile("`([a-z]+(?:_[a-z]+)*)`").FindAllStringSubmatch(h, -1) {
			out[m[1]] = true
		}
	}
	return out
}

func docExampleKinds(doc string) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\{"schema_version":"[0-9.]+","event":"([a-z_]+)"`).FindAllStringSubmatch(doc, -1) {
		out[m[1]] = true
	}
	return out
}

// TestEveryRegisteredKindIsComplete: a kind in the registry has its section
// type, its place in both schemas, its section of docs/EVENTS.md with an
// example and its table row, an ECS mapping, and a sample in everyEvent
// (which TestEveryEventKindMatchesTheSchema validates).
func TestEveryRegisteredKindIsComplete(t *testing.T) {
	src := readKindSources(t)
	fields := eventJSONFields()
	rules := schemaRules(src.schema)
	kindEnum := strs(at(src.schema, "properties", "event", "enum"))
	ecsEvent := at(src.ecs, "properties", "event", "properties")
	headings, examples := docHeadingKinds(src.doc), docExampleKinds(src.doc)
	samples := map[Kind]*Event{}
	for _, ev := range everyEvent() {
		samples[ev.Event] = ev
	}
	if len(Kinds()) == 0 {
		t.Fatal("no kind registered")
	}
	for _, s := range Kinds() {
		t.Run(string(s.Kind), func(t *testing.T) {
			if s.Section == "" || s.Doc == "" || s.ECS.Kind == "" || s.ECS.Category == "" || s.ECS.Type == "" || s.ecs == nil {
				t.Errorf("kinds.go: the row of %s lacks a field (Section, Doc, ECS class or ecs mapper): %+v", s.Kind, s)
			}
			if strings.Contains(s.Doc, "|") || strings.Contains(s.Doc, "\n") {
				t.Errorf("kinds.go: the Doc of %s must be one line without |", s.Kind)
			}
			if !fields[s.Section] {
				t.Errorf("output.Event has no field with json tag %q (the section type of %s)", s.Section, s.Kind)
			}
			// docs/event.schema.json
			if !slices.Contains(kindEnum, string(s.Kind)) {
				t.Errorf("docs/event.schema.json: properties.event.enum lacks %q", s.Kind)
			}
			if at(src.schema, "$defs", s.Section) == nil || at(src.schema, "properties", s.Section) == nil {
				t.Errorf("docs/event.schema.json: no $defs.%s or properties.%s (the section of %s)", s.Section, s.Section, s.Kind)
			}
			required := false
			for _, r := range rules {
				if slices.Contains(r.kinds, string(s.Kind)) && slices.Contains(r.required, s.Section) {
					required = true
				}
			}
			if !required {
				t.Errorf("docs/event.schema.json: no allOf rule {if event is %q, then required [%q], the other sections false}", s.Kind, s.Section)
			}
			// docs/event-ecs.schema.json
			if !slices.Contains(strs(at(ecsEvent, "action", "enum")), ecsAction(s.Kind)) {
				t.Errorf("docs/event-ecs.schema.json: event.action enum lacks %q", ecsAction(s.Kind))
			}
			for what, v := range map[string]string{"kind": s.ECS.Kind, "category": s.ECS.Category, "type": s.ECS.Type} {
				allowed := strs(at(ecsEvent, what, "enum"))
				if what != "kind" {
					allowed = strs(at(ecsEvent, what, "items", "enum"))
				}
				if !slices.Contains(allowed, v) {
					t.Errorf("docs/event-ecs.schema.json: event.%s does not allow %q (the ECS class of %s)", what, v, s.Kind)
				}
			}
			// docs/EVENTS.md
			if !headings[string(s.Kind)] {
				t.Errorf("docs/EVENTS.md: no heading names `%s` (give the kind its section)", s.Kind)
			}
			if !examples[string(s.Kind)] {
				t.Errorf("docs/EVENTS.md: no JSON example of %s", s.Kind)
			}
			if !strings.Contains(kindTableOf(src.doc), kindTableRow(s)+"\n") {
				t.Errorf("docs/EVENTS.md: the kind table lacks the row\n%s", kindTableRow(s))
			}
			// the ECS mapping, on a sample
			ev := samples[s.Kind]
			if ev == nil {
				t.Fatalf("output/schema_test.go: everyEvent has no sample of %s", s.Kind)
			}
			e := ToECS(ev)
			if e.Event.Action != ecsAction(s.Kind) || len(e.Event.Category) == 0 || e.Event.Category[0] != s.ECS.Category ||
				len(e.Event.Type) == 0 || e.Message == "" {
				t.Errorf("ToECS(%s) = action %q, category %v, type %v, message %q: want the kind's ECS class %+v and a message",
					s.Kind, e.Event.Action, e.Event.Category, e.Event.Type, e.Message, s.ECS)
			}
		})
	}
}

// TestOnlyRegisteredKindsAreNamed: the schemas, docs/EVENTS.md and the Kind
// consts of this package name no kind that the registry lacks.
func TestOnlyRegisteredKindsAreNamed(t *testing.T) {
	src := readKindSources(t)
	registered := func(k string) bool { _, ok := LookupKind(Kind(k)); return ok }
	for _, k := range strs(at(src.schema, "properties", "event", "enum")) {
		if !registered(k) {
			t.Errorf("docs/event.schema.json: properties.event.enum names %q, which output/kinds.go does not register", k)
		}
	}
	for _, r := range schemaRules(src.schema) {
		for _, k := range r.kinds {
			if !registered(k) {
				t.Errorf("docs/event.schema.json: an allOf rule names %q, which output/kinds.go does not register", k)
			}
		}
	}
	for _, a := range strs(at(src.ecs, "properties", "event", "properties", "action", "enum")) {
		if !registered(strings.ReplaceAll(a, "-", "_")) {
			t.Errorf("docs/event-ecs.schema.json: event.action %q is no registered kind", a)
		}
	}
	for k := range docExampleKinds(src.doc) {
		if !registered(k) {
			t.Errorf("docs/EVENTS.md: an example of %q, which output/kinds.go does not register", k)
		}
	}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| `").FindAllStringSubmatch(kindTableOf(src.doc), -1) {
		if !registered(m[1]) {
			t.Errorf("docs/EVENTS.md: the kind table has a row for %q, which output/kinds.go does not register", m[1])
		}
	}
	// Every const of type Kind declared in this package is registered.
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(node ast.Node) bool {
			vs, ok := node.(*ast.ValueSpec)
			if !ok {
				return true
			}
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Kind" {
				return true
			}
			for i, v := range vs.Values {
				lit, ok := v.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					continue
				}
				n++
				if k := strings.Trim(lit.Value, "\"`"); !registered(k) {
					t.Errorf("%s: const %s = %s is not registered in output/kinds.go's kindTable", name, vs.Names[i].Name, lit.Value)
				}
			}
			return true
		})
	}
	if n != len(Kinds()) {
		t.Errorf("%d Kind consts in package output, %d registered kinds", n, len(Kinds()))
	}
}
