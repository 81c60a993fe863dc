//go:build !(linux && amd64)

package main

import "github.com/spf13/cobra"

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
