/* SPDX-License-Identifier: MIT */
/* micbench block: virtio-block throughput vs direct file I/O.  Being written. */
#include <stdio.h>

#include "micbench.h"

int micbench_block(int argc, char **argv, FILE *out)
{
	(void)argc;
	(void)argv;
	(void)out;
	fprintf(stderr, "micbench block: not implemented yet\n");
	return 1;
}
