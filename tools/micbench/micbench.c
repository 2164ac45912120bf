/* SPDX-License-Identifier: MIT */
/* micbench: subcommand dispatch and the options every subcommand shares. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "micbench.h"

static const struct micbench_cmd cmds[] = {
	{ "boot", "boot time, boot command to online, 1 and 8 cards", micbench_boot },
	{ "dma", "DMA engine throughput vs memcpy, and latency", micbench_dma },
	{ "console", "virtio-console throughput and latency vs a plain PTY", micbench_console },
	{ "net", "virtio-net iperf3 throughput and echo latency vs a veth pair", micbench_net },
	{ "net8", "eight cards' iperf3 at once vs eight veth pairs", micbench_net8 },
	{ "block", "virtio-block fio jobs vs the same on a host file", micbench_block },
	{ "vblk", "vhost-user-blk (qemu-storage-daemon) 4k random read vs the built-in backend", micbench_vblk },
	{ "fs", "virtio-fs (virtiofsd) throughput and metadata vs the host directory", micbench_fs },
	{ "idle", "CPU cost of an idle booted card", micbench_idle },
	{ "floor", "what a faithful card must pay here: hand-offs, hops, a model card", micbench_floor },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: micbench [--out FILE] <command> [options]\n"
		   "       micbench <command> --help\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
}

int main(int argc, char **argv)
{
	const char *out_path = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--out") && i + 1 < argc) {
			out_path = argv[++i];
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* --out is also accepted after the subcommand; it is removed from argv
	 * before the subcommand sees it. */
	int n = 0;
	char *sub[64];
	for (int k = i; k < argc && n < 63; k++) {
		if (!strcmp(argv[k], "--out") && k + 1 < argc)
			out_path = argv[++k];
		else
			sub[n++] = argv[k];
	}
	sub[n] = NULL;
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
		if (strcmp(cmds[c].name, sub[0]))
			continue;
		/* The report goes to stdout and, with --out, to the file too. */
		char *buf = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&buf, &len);
		if (!mem)
			return 1;
		int rc = cmds[c].run(n, sub, mem);
		fclose(mem);
		fwrite(buf, 1, len, stdout);
		if (out_path) {
			FILE *f = fopen(out_path, "w");
			if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
				fprintf(stderr, "micbench: %s: %s\n", out_path, strerror(errno));
				rc = rc ? rc : 1;
			}
		}
		free(buf);
		return rc;
	}
	fprintf(stderr, "micbench: unknown command '%s'\n", sub[0]);
	usage(stderr);
	return 2;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

void micbench_sort(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
}

double micbench_steal_ms(void)
{
	FILE *f = fopen("/proc/stat", "re");
	unsigned long long v[8];
	int ok = f && fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
			     &v[3], &v[4], &v[5], &v[6], &v[7]) == 8;
	if (f)
		fclose(f);
	long hz = sysconf(_SC_CLK_TCK);
	return ok && hz > 0 ? (double)v[7] * 1000.0 / (double)hz : -1;
}

void micbench_echo_report(const char *what, const double *v, const uint64_t *t0, int n,
			  double steal_ms)
{
	const char *dump = getenv("MICBENCH_ECHO_DUMP");
	if (dump) {
		FILE *f = fopen(dump, "a");
		if (f) {
			for (int i = 0; i < n; i++)
				fprintf(f, "%s %llu %.1f\n", what, (unsigned long long)t0[i], v[i]);
			fclose(f);
		}
	}
	double *s = malloc(sizeof(*s) * (size_t)n);
	if (!s)
		return;
	memcpy(s, v, sizeof(*s) * (size_t)n);
	micbench_sort(s, (size_t)n);
	fprintf(stderr,
		"ECHO %s n=%d p50 %.1f p90 %.1f p95 %.1f p99 %.1f p99.9 %.1f max %.1f us, steal %.0f ms\n",
		what, n, s[n / 2], s[n * 90 / 100], s[n * 95 / 100], s[n * 99 / 100], s[n * 999 / 1000],
		s[n - 1], steal_ms);
	free(s);
}

int micbench_echo_rounds(int dflt)
{
	const char *e = getenv("MICBENCH_ECHO_ROUNDS");
	int n = e ? atoi(e) : dflt;
	return n > 0 && n <= MICBENCH_ECHO_MAX ? n : dflt;
}
