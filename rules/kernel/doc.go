// Package kernel is the Go side of the kernel rule tables defined in
// bpf/include/rules.h: the generated table, facts and result types (bpf2go),
// the instruction hash and facts walk that mirror rules_eval.h, and the
// BPF_PROG_TYPE_SYSCALL harness that runs the kernel evaluator under
// BPF_PROG_RUN so that tests can compare it with the Go evaluator.
package kernel

// The object is committed; CI regenerates it with clang-19 and fails on any
// difference, so the flags keep the clone's path out of it.
//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror -ffile-prefix-map=${PWD}/../..=." -target bpfel -output-stem ruleeval -type rules_table -type rules_rule -type rules_str -type rules_facts -type rules_result -type rules_exe -type ruleeval_input -type ruleeval_output -type rules_action -type rules_flag -type rules_prov RuleEval ../../bpf/ruleeval.bpf.c -- -I/usr/include/x86_64-linux-gnu
