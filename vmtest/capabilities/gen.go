package capabilities

// -g keeps the BTF that LSM and CO-RE loading need; -ffile-prefix-map strips the
// checkout's path from it so regenerating anywhere gives the same bytes.
//go:generate go tool bpf2go -cc clang-19 -target amd64 -output-stem probes -cflags "-O2 -g -Wall -Werror -ffile-prefix-map=${PWD}=. -I/usr/include/x86_64-linux-gnu" probes bpf/probes.bpf.c
