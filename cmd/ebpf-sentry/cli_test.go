package main

import (
	"bytes"
	"errors"
	"testing"
)

// runCLI runs "ebpf-sentry ARGS" with stdin on a command tree built for this
// run alone (newRootCmd), so no test sees the flags of the one before, and
// returns stdout, the error text and the exit code.
func runCLI(t testing.TB, stdin []byte, args ...string) (string, string, int) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(bytes.NewReader(stdin))
	root.SetOut(&out)
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
