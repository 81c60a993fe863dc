// Command ebpf-sentry watches every eBPF program loaded on a Linux host,
// analyses it, judges it with rules and stops the malicious ones.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// exitError carries an exit code through cobra without printing usage.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes of run (and doctor, scan) besides 0 and 1.
const (
	exitEnvironment = 2 // not root, kernel lacks a feature, enforcer refused
	exitRunning     = 3 // another instance holds the lock
)

func envError(format string, args ...any) error {
	return &exitError{code: exitEnvironment, err: fmt.Errorf(format, args...)}
}

// newRootCmd builds the whole command tree. Every command is made by its
// newXxxCmd constructor with flags on an options value it owns, so each
// call starts from the defaults (the tests build one tree per run).
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ebpf-sentry",
		Short:         "Watch, analyse, judge and stop eBPF programs as they are loaded",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var logLevel string
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level: debug|info|warn|error")
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
			return fmt.Errorf("--log-level: %w", err)
		}
		slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})))
		return nil
	}
	root.AddCommand(sensorCommands()...) // run, doctor: commands_sensor.go
	root.AddCommand(newScanCmd())        // commands_linux.go
	root.AddCommand(
		newInspectCmd(),
		newAsmCmd(),
		newRulesCmd(),
		newFleetCmd(),
		newAllowlistCmd(),
		newCbpfCmd(),
		&cobra.Command{
			Use:   "version",
			Short: "Print the version",
			Args:  cobra.NoArgs,
			Run:   func(cmd *cobra.Command, args []string) { fmt.Fprintln(cmd.OutOrStdout(), "ebpf-sentry", version) },
		},
	)
	return root
}

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "ebpf-sentry:", err)
		code := 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		os.Exit(code)
	}
}
