//go:build linux && amd64

package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ebpf-sentry/ebpf-sentry/sensor"
)

func newDoctorCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Probe the kernel and say which hook and enforcer run will use",
		Long: `Probe what this kernel offers the sensor (BTF, BPF LSM and its bpf_prog_load
and sleepable bpf hooks, fentry, kprobes, syscall tracepoints, tp_btf,
bpf_probe_write_user, bpf_send_signal, ring buffer, bpf_loop, lockdown) by
loading tiny programs, and print the hook and enforcer that run will use and
what that guarantees: "denied race-free" (lsm-prog-load), "denied, user memory
TOCTOU detected after the fact" (lsm-bpf), "killed before use" (tracepoint,
tp_btf). Exits 2 when run cannot work here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if os.Geteuid() != 0 {
				return envError("doctor needs root: probing loads BPF programs")
			}
			f := sensor.ProbeKernel()
			plan, planErr := sensor.PlanFor(f)
			prov := sensor.ProbeProvenance()
			out := cmd.OutOrStdout()
			if asJSON {
				v := struct {
					*sensor.Features
					Plan          *sensor.Plan      `json:"plan,omitempty"`
					InKernelLoads string            `json:"in_kernel_loads,omitempty"`
					Error         string            `json:"error,omitempty"`
					Provenance    sensor.Provenance `json:"provenance"`
				}{Features: f, Provenance: prov}
				if planErr != nil {
					v.Error = planErr.Error()
				} else {
					v.Plan = &plan
					v.InKernelLoads = inKernelLoads(f, plan.Hook)
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(v); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				for _, p := range f.Probes {
					mark := "no"
					if p.OK {
						mark = "yes"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", p.Name, mark, p.Detail)
				}
				lockdown := f.Lockdown
				if lockdown == "" {
					lockdown = "unknown (securityfs unavailable)"
				}
				fmt.Fprintf(tw, "lockdown\t%s\t\n", lockdown)
				tw.Flush()
				fmt.Fprintln(out)
				if planErr == nil {
					fmt.Fprintf(out, "run will use: hook %s, enforcer %s, walk %s\n", plan.Hook, plan.Enforcer, plan.Walk)
					fmt.Fprintf(out, "guarantee: %s\n", plan.Guarantee)
					fmt.Fprintf(out, "lock mode: %s\n", plan.LockGuarantee)
					fmt.Fprintf(out, "32-bit loaders: %s\n", plan.Compat)
					fmt.Fprintf(out, "signals to the agent: %s\n", plan.Signals)
					fmt.Fprintf(out, "in-kernel loads (bpf_sys_bpf): %s\n", inKernelLoads(f, plan.Hook))
					fmt.Fprintf(out, "ioctl attaches (PERF_EVENT_IOC_SET_BPF): %s\n", ioctlHookLine())
					for _, n := range plan.Notes {
						fmt.Fprintf(out, "note: %s\n", n)
					}
				}
				printProvenance(out, prov)
			}
			if planErr != nil {
				return &exitError{code: exitEnvironment, err: fmt.Errorf("run cannot work on this kernel: %w", planErr)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the probes and the plan as JSON")
	return cmd
}
