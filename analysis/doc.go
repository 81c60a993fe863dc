// Package analysis derives what a program does from its instructions: helpers
// with call counts, kfuncs, sub-program and tail calls, map references, strings
// and a relocation-independent fingerprint.
package analysis
