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
var (
	inspectExplain bool
	rulesExplainOn string
)

func init() {
	inspectCmd.Flags().BoolVar(&inspectExplain, "explain", false,
		"with --rules: show what every rule would do to each program: matches, allowlisted matches and near misses, with the predicates that hold (and their instructions) and those that fail")
	inspectJudges = append(inspectJudges, explainInspected)

	rulesCheckCmd.Flags().StringVar(&rulesExplainOn, "explain", "",
		"after checking, explain what the rules would do to each program of the ELF object `OBJ`")
	check := rulesCheckCmd.RunE
	rulesCheckCmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil || rulesExplainOn == "" {
			return err
		}
		return explainObject(cmd, args, rulesExplainOn)
	}
}

func explainInspected(p *program.Program, r *analysis.Report) (string, any, error) {
	if !inspectExplain {
		return "", nil, nil
	}
	if inspectRules == "" {
		return "", nil, errors.New("--explain needs --rules (e.g. --rules @defaults)")
	}
	inspectRuleOnce.Do(func() { inspectRuleSet, inspectRuleErr = loadRuleArg(inspectRules) })
	if inspectRuleErr != nil {
		return "", nil, fmt.Errorf("--rules: %w", inspectRuleErr)
	}
	es := rules.Explain(inspectRuleSet, p, r)
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
