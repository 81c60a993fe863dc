//go:build !(linux && amd64)

package main

import (
	"runtime"

	"github.com/spf13/cobra"
)

// sensorCommands stand for run and doctor where the sensor does not build
// (its BPF objects are compiled for Linux on amd64): the offline commands
// work here, these say why they do not.
func sensorCommands() []*cobra.Command {
	const why = "the sensor needs Linux on amd64"
	return []*cobra.Command{
		unavailableCmd("run", "Watch every BPF_PROG_LOAD, judge it and stop what the rules block", why),
		unavailableCmd("doctor", "Probe the kernel and say which hook and enforcer run will use", why),
	}
}

// unavailableCmd stands for a command this build lacks (run and doctor need
// the sensor, which is Linux on x86 only; scan reads a Linux kernel), so
// that asking for it says why instead of "unknown command".
func unavailableCmd(use, short, why string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (" + why + ")",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return envError("%s: %s; this build is for %s/%s", use, why, runtime.GOOS, runtime.GOARCH)
		},
	}
}
