package rules

import (
	"errors"
	"fmt"
	"strings"
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
