//go:build linux && amd64

package main

import "github.com/spf13/cobra"

// sensorCommands are the commands that run the kernel sensor: this build
// has it (its BPF objects are compiled for Linux on amd64).
func sensorCommands() []*cobra.Command { return []*cobra.Command{newRunCmd(), newDoctorCmd()} }
