package main

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// inspect --explain and rules check --explain OBJ: what each rule would do
// to a program, with the predicates that hold and the near misses.

// addInspectExplainFlag gives inspect --explain and its judge.
func addInspectExplainFlag(cmd *cobra.Command, o *inspectOptions) {
	cmd.Flags().BoolVar(&o.rules.explain, "explain", false,
		"with --rules: show what every rule would do to each program: matches, allowlisted matches and near misses, with the predicates that hold (and their instructions) and those that fail")
	o.judges = append(o.judges, o.rules.explainInspected)
}

// addRulesCheckExplain gives rules check --explain OBJ.
func addRulesCheckExplain(check *cobra.Command) {
	var explainOn string
	check.Flags().StringVar(&explainOn, "explain", "",
		"after checking, explain what the rules would do to each program of the ELF object `OBJ`")
	run := check.RunE
	check.RunE = func(cmd *cobra.Command, args []string) error {
		if err := run(cmd, args); err != nil || explainOn == "" {
			return err
		}
		return explainObject(cmd, args, explainOn)
	}
}

func (ir *inspectRules) explainInspected(p *program.Program, r *analysis.Report) (string, any, error) {
	if !ir.explain {
		return "", nil, nil
	}
	if ir.path == "" {
		return "", nil, errors.New("--explain needs --rules (e.g. --rules @defaults)")
	}
	ir.once.Do(func() { ir.set, ir.err = loadRuleArg(ir.path) })
	if ir.err != nil {
		return "", nil, fmt.Errorf("--rules: %w", ir.err)
	}
	es := rules.Explain(ir.set, p, r)
	return rules.FormatExplanations(es), map[string]any{"explain": es}, nil
}

// explainObject explains every rule set of args on every program of obj.
func explainObject(cmd *cobra.Command, args []string, obj string) error {
	name, data, err := readInput(cmd, obj)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("rules check --explain %s: %w", name, err)}
	}
	progs, err := program.FromELFReader(name, bytes.NewReader(data))
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("rules check --explain: %w", err)}
	}
	w := cmd.OutOrStdout()
	for _, arg := range args {
		set, err := loadRuleArg(arg)
		if err != nil {
			return &exitError{code: 1, err: err} // check reported it already
		}
		for _, p := range progs {
			fmt.Fprintf(w, "\n%s on %s program %s:\n", arg, name, p.Name)
			w.Write([]byte(rules.FormatExplanations(rules.Explain(set, p, analysis.Analyze(p, nil)))))
		}
	}
	return nil
}
