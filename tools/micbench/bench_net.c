/* SPDX-License-Identifier: MIT */
/* micbench net: virtio-net throughput vs a veth pair.  Being written. */
#include <stdio.h>

#include "micbench.h"

int micbench_net(int argc, char **argv, FILE *out)
{
	(void)argc;
	(void)argv;
	(void)out;
	fprintf(stderr, "micbench net: not implemented yet\n");
	return 1;
}
