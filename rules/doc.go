// Package rules is ebpf-sentry's detection rule language: YAML rule files
// (schema and loader with file:line:column errors), the evaluator that judges
// a program and its analysis and explains why a rule matched, the compiler of
// the enforceable subset into the kernel tables of bpf/include/rules.h, the
// embedded default rule set, and a Store that reloads rules atomically.
package rules
