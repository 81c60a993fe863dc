package capture

// The setsockopt tracepoint program (bpf/cbpf.bpf.c).
//go:generate go tool bpf2go -cc clang-19 -target bpfel -output-stem cbpf -type cbpf_event -cflags "-O2 -g -Wall -Werror -ffile-prefix-map=${PWD}/../..=. -I/usr/include/x86_64-linux-gnu" Cbpf ../../bpf/cbpf.bpf.c
