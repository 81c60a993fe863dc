package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
	"github.com/ebpf-sentry/ebpf-sentry/program"
	"github.com/ebpf-sentry/ebpf-sentry/rules"
)

// defaultsArg names the embedded default rule set where a path is expected.
const defaultsArg = "@defaults"

func loadRuleArg(arg string) (*rules.Set, error) {
	if arg == "" || arg == defaultsArg {
		return rules.Defaults()
	}
	return rules.Load(arg)
}

// newRulesCmd builds rules and its subcommands: check (with --explain,
// rules_explain.go), list, keygen and publish (policy.go).
func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Validate and list detection rules",
	}
	check := newRulesCheckCmd()
	addRulesCheckExplain(check)
	cmd.AddCommand(check, newRulesListCmd(), newRulesKeygenCmd(), newRulesPublishCmd())
	return cmd
}

func newRulesCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE|DIR...",
		Short: "Validate rule files; say per rule whether the kernel enforces it",
		Long: `Validate rule files or directories (every *.yaml / *.yml in them). Every error
names file:line:column and the field; the exit status is 1 when any rule is
invalid. For valid rules, print where each is evaluated: in the kernel (a block
is enforced at load time) or in user space (alert-only), and why.
` + defaultsArg + ` checks the embedded default rules.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := 0
			for _, arg := range args {
				set, err := loadRuleArg(arg)
				if err != nil {
					bad++
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d rules OK\n", arg, len(set.Rules))
				writePlacements(cmd.OutOrStdout(), set)
			}
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("rules check: %d of %d inputs invalid", bad, len(args))}
			}
			return nil
		},
	}
}

func writePlacements(w io.Writer, set *rules.Set) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACTION\tSEVERITY\tWHERE")
	c := rules.Compile(set)
	for i, r := range set.Rules {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Action, r.Severity, c.Placements[i].Reason)
	}
	tw.Flush()
	// Rules that judge attaches or groups: when the kernel judges them,
	// and what a block does on each hook family.
	first := true
	for i, r := range set.Rules {
		if !r.Match.HasAttachMatcher() && r.Scope != rules.ScopeGroup {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nWhen rules on attach targets or loader groups are judged:")
			first = false
		}
		e := rules.EnforcementOf(r, c.Placements[i])
		fmt.Fprintf(w, "%s [%s]\n  at load:   %s: %s\n  at attach: %s: %s\n", r.ID, r.Action, e.Load.Where, e.Load.Detail, e.Attach.Where, e.Attach.Detail)
	}
}

func newRulesListCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list [FILE|DIR]",
		Short: "Print the effective rule set (the embedded defaults when none is given)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			arg := defaultsArg
			if len(args) == 1 {
				arg = args[0]
			}
			set, err := loadRuleArg(arg)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("rules list: %w", err)}
			}
			c := rules.Compile(set)
			if asJSON {
				type ruleDoc struct {
					ID          string          `json:"id"`
					Description string          `json:"description,omitempty"`
					Severity    rules.Severity  `json:"severity"`
					Action      rules.Action    `json:"action"`
					Tags        []string        `json:"tags,omitempty"`
					Match       string          `json:"match"`
					Source      string          `json:"source"`
					Placement   rules.Placement `json:"placement"`
				}
				docs := make([]ruleDoc, len(set.Rules))
				for i, r := range set.Rules {
					docs[i] = ruleDoc{r.ID, r.Description, r.Severity, r.Action, r.Tags, r.Summary(), r.Pos.String(), c.Placements[i]}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(docs)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# %s: %d rules, %d enforced in the kernel\n", set.Source, len(set.Rules), len(c.Slots))
			for i, r := range set.Rules {
				fmt.Fprintf(w, "\n%s  [%s, %s]  %s\n", r.ID, r.Action, r.Severity, strings.Join(r.Tags, " "))
				if r.Description != "" {
					fmt.Fprintf(w, "  %s\n", r.Description)
				}
				fmt.Fprintf(w, "  match: %s\n", r.Summary())
				fmt.Fprintf(w, "  where: %s\n", c.Placements[i].Reason)
				fmt.Fprintf(w, "  from:  %s\n", r.Pos)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// inspectRules is inspect --rules (judge every inspected program) and
// --explain (rules_explain.go); the set is loaded once per run.
type inspectRules struct {
	path    string
	explain bool
	once    sync.Once
	set     *rules.Set
	err     error
}

// addInspectRuleFlags gives inspect --rules and --explain and their judges.
func addInspectRuleFlags(cmd *cobra.Command, o *inspectOptions) {
	cmd.Flags().StringVar(&o.rules.path, "rules", "",
		"judge each program with the rules in FILE or DIR ("+defaultsArg+": the embedded defaults) and show the verdict")
	o.judges = append(o.judges, o.rules.judgeInspected)
	addInspectExplainFlag(cmd, o)
}

func (ir *inspectRules) judgeInspected(p *program.Program, r *analysis.Report) (string, any, error) {
	if ir.path == "" {
		return "", nil, nil
	}
	ir.once.Do(func() { ir.set, ir.err = loadRuleArg(ir.path) })
	if ir.err != nil {
		return "", nil, fmt.Errorf("--rules: %w", ir.err)
	}
	if ir.set == nil {
		return "", nil, errors.New("--rules: no rule set")
	}
	v := rules.Evaluate(ir.set, p, r)
	return rules.FormatVerdict(v), v, nil
}
