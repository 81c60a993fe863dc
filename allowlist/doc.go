// Package allowlist is the list of program fingerprints that lock mode
// lets load (`run --mode learn` writes it, `run --mode lock` enforces it in
// the kernel): its file format, atomic saving, and the list, diff, approve
// and prune operations of the `allowlist` command.
package allowlist
