// SPDX-License-Identifier: GPL-2.0
/*
 * A program that carries exechijack.bpf.o as a light skeleton (bpftool gen
 * skeleton -L): the loader program and a data blob holding the real
 * programs, no ELF object. Built by testdata/Makefile, never run by tests:
 * they find and decode the embedded programs (package embedded).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "exechijack.lskel.h"

int main(void)
{
	struct exechijack *skel = exechijack__open_and_load();

	if (!skel)
		return 1;
	exechijack__destroy(skel);
	return 0;
}
