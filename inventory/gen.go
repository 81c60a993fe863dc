package inventory

// The iter/bpf_prog program of the hidden-program cross-view (bpf/iter.bpf.c).
//go:generate go tool bpf2go -cc clang-19 -target bpfel -output-stem iter -cflags "-O2 -g -Wall -Werror -ffile-prefix-map=${PWD}/..=. -I/usr/include/x86_64-linux-gnu" Iter ../bpf/iter.bpf.c
