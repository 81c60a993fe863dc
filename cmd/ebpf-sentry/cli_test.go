package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ebpf-sentry/ebpf-sentry/analysis"
)

// runCLI runs "ebpf-sentry ARGS" with stdin and returns stdout, the error
// text and the exit code; every flag of the tree is back at its default
// afterwards, so no test sees the flags of the one before.
func runCLI(t testing.TB, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	var out bytes.Buffer
	root.SetArgs(args)
	root.SetIn(bytes.NewReader(stdin))
	root.SetOut(&out)
	defer func() {
		root.SetArgs(nil)
		root.SetIn(nil)
		root.SetOut(nil)
		resetFlags()
	}()
	err := root.Execute()
	if err == nil {
		return out.String(), "", 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	return out.String(), err.Error(), code
}

// resetFlags puts every flag of the package-level command tree back to its
// default.
func resetFlags() {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				sv.Replace(nil)
			} else {
				f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	inspectOpts.analysis = analysis.Options{}
}
