package loaderrun

// The BPF_PROG_TEST_RUN bracket (bpf/loaderrun.bpf.c).
//go:generate go tool bpf2go -cc clang-19 -target bpfel -output-stem loaderrun -type loaderrun_event -cflags "-O2 -g -Wall -Werror -ffile-prefix-map=${PWD}/..=. -I/usr/include/x86_64-linux-gnu" Loaderrun ../bpf/loaderrun.bpf.c
