// Package program defines Program, the value every later stage works on: an eBPF
// program's metadata and its raw instructions, whether it was captured by the
// sensor, read from an ELF object, read from a raw dump or fetched from the kernel.
package program
