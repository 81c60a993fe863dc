// Package loaderrun brackets every run of a BPF_PROG_TYPE_SYSCALL program
// (BPF_PROG_TEST_RUN). Such a program can load programs with bpf_sys_bpf,
// the light skeleton's loader, and those loads never enter the bpf() system
// call that the syscall hooks watch. Each bracket says who ran which
// syscall program and when, so that user space can fetch the programs that
// appeared meanwhile by id and judge them; in stop mode the caller is
// stopped (SIGSTOP, queued at the run's exit) before it returns to user
// space, until user space resumes or kills it.
package loaderrun
