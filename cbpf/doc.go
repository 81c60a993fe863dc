// Package cbpf decodes classic BPF programs (the struct sock_filter arrays
// of a struct sock_fprog that setsockopt(SO_ATTACH_FILTER) takes) and
// disassembles them exactly as "tcpdump -d" prints them.
package cbpf
