// SPDX-License-Identifier: GPL-2.0
/*
 * Runs the light skeleton of lskelpayload.bpf.o (bpftool gen skeleton -L):
 * its loader program, a BPF_PROG_TYPE_SYSCALL program run with
 * BPF_PROG_TEST_RUN, creates the map and loads lskel_payload with
 * bpf_sys_bpf from inside the kernel; then the payload is attached to its
 * raw tracepoint. Prints "attached PROG_FD" and holds everything until
 * stdin closes; exit 1: the load failed, 2: the attach failed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "lskelpayload.lskel.h"

int main(void)
{
	struct lskelpayload *skel = lskelpayload__open_and_load();
	char c;

	if (!skel) {
		fprintf(stderr, "light skeleton load failed\n");
		return 1;
	}
	if (lskelpayload__attach(skel)) {
		fprintf(stderr, "attach failed\n");
		lskelpayload__destroy(skel);
		return 2;
	}
	printf("attached %d\n", skel->progs.lskel_payload.prog_fd);
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	lskelpayload__destroy(skel);
	return 0;
}
