// Package testprogs lists the BPF test programs committed under testdata/
// (built by testdata/Makefile from the C sources beside them) with the
// properties other tests rely on: section, program type, size, helper and
// kfunc calls, whether this kernel loads them, and which known tool a
// malicious-style program imitates. Its own tests check every entry against
// the objects and, as root, against the running kernel.
package testprogs
