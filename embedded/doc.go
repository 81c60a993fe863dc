// Package embedded finds eBPF ELF objects inside other files: executables
// of any architecture that carry their BPF object (libbpf skeletons, bpf2go
// objects embedded with the go:embed directive), archives, container image
// layers. It reads the file in chunks, looks for ELF headers whose machine
// is EM_BPF, and returns where each object lies and, when the file is itself
// an ELF, which section and symbol hold it.
package embedded
