// Package startabort tells a Go program's start-up abort from its other
// failures, and reruns a command that died of one. The linux/386 Go runtime
// executes INT3 when one of its start-up system calls fails or a self-check
// does not hold (set_thread_area, sigaltstack, rt_sigprocmask, munmap, the
// new thread's stack check after clone), before its signal handlers exist:
// the process dies of SIGTRAP without printing a byte. It was seen once, on
// the first 32-bit exec of a TCG VM (6.12, CI), and never in the same
// boot's later execs: a failure of the emulated start-up, not of what the
// program was run for. Only that death is retried, a bounded number of
// times, and each one is kept with the kernel's "trap int3" line so the next
// one says where it struck; any other failure is the caller's as it was.
package startabort
