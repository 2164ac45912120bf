/* SPDX-License-Identifier: MIT */
/*
 * micbench boot: time from the boot command to "online", over 20 boots, for
 * 1 and 8 cards booted concurrently.  Starts its own micd in a private run
 * directory.  Baseline, measured in the same run: starting a process in the
 * same five new namespaces (clone + exec of a static binary + wait), the
 * floor under any card OS start.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/proc.h"
#include "bench_daemon.h"
#include "micbench.h"

struct stats {
	double median, min, p90, max;
};

static struct stats stats_of(double *v, int n)
{
	micbench_sort(v, (size_t)n);
	return (struct stats){ v[n / 2], v[0], v[(n * 9) / 10 < n ? (n * 9) / 10 : n - 1], v[n - 1] };
}

/* One round: boot every card concurrently, time each answer. */
static int boot_round(struct bench_daemon *b, int ncards, double *per_card, double *all)
{
	int fds[8];
	char line[32], buf[4096];
	uint64_t t0 = now_ns();
	for (int c = 0; c < ncards; c++) {
		snprintf(line, sizeof(line), "boot mic%d wait\n", c);
		if ((fds[c] = bench_ctl_send(b, line)) < 0)
			return -1;
	}
	struct pollfd p[8];
	int left = ncards;
	for (int c = 0; c < ncards; c++)
		p[c] = (struct pollfd){ .fd = fds[c], .events = POLLIN };
	while (left) {
		if (poll(p, (nfds_t)ncards, 10000) <= 0)
			return -1;
		for (int c = 0; c < ncards; c++) {
			if (p[c].fd < 0 || !p[c].revents)
				continue;
			per_card[c] = (double)(now_ns() - t0) / 1e6;
			if (bench_ctl_answer(p[c].fd, buf, sizeof(buf)))
				return -1;
			p[c].fd = -1;
			left--;
		}
	}
	*all = (double)(now_ns() - t0) / 1e6;
	for (int c = 0; c < ncards; c++) {
		snprintf(line, sizeof(line), "shutdown mic%d wait\n", c);
		if (bench_ctl(b, line))
			return -1;
	}
	return 0;
}

/* The floor: clone into the card OS's namespaces, exec, exit, reap. */
static double ns_spawn_ms(void)
{
	uint64_t t0 = now_ns();
	pid_t pid = proc_clone(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWIPC,
			       NULL);
	if (pid == 0) {
		execl("/bin/busybox", "true", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return (double)(now_ns() - t0) / 1e6;
}

int micbench_boot(int argc, char **argv, FILE *out)
{
	enum { BOOTS = 20 };
	int rounds = BOOTS;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: micbench boot [--rounds N]\n");
			return 2;
		}
	}
	if (rounds < 1 || rounds > 1000)
		rounds = BOOTS;
	struct bench_daemon b = { .pid = -1 };

	double base[BOOTS * 5];
	int nbase = rounds * 5 < BOOTS * 5 ? rounds * 5 : BOOTS * 5;
	for (int i = 0; i < nbase; i++)
		base[i] = ns_spawn_ms();
	struct stats bs = stats_of(base, nbase);

	fprintf(out, "### Boot time (boot command to online), %d boots\n\n", rounds);
	fprintf(out, "Baseline: a process started in the same five new namespaces (clone, exec, "
		     "exit): median %.2f ms.\n\n",
		bs.median);
	fprintf(out, "| cards | per-card median | min | p90 | max | all online (median) | "
		     "median / baseline |\n|---|---|---|---|---|---|---|\n");
	int rc = 0;
	const int counts[] = { 1, 8 };
	for (unsigned k = 0; k < 2 && !rc; k++) {
		int nc = counts[k];
		double *per = calloc((size_t)(rounds * nc), sizeof(double));
		double *all = calloc((size_t)rounds, sizeof(double));
		if (!per || !all || bench_daemon_start(&b, nc) < 0) {
			fprintf(stderr, "micbench boot: cannot start micd with %d cards\n", nc);
			rc = 1;
		}
		for (int r = 0; !rc && r < rounds; r++) {
			if (boot_round(&b, nc, per + r * nc, all + r) < 0) {
				fprintf(stderr, "micbench boot: a boot failed (round %d)\n", r);
				rc = 1;
			}
			fprintf(stderr, "\rboot: %d card(s), round %d/%d", nc, r + 1, rounds);
		}
		fprintf(stderr, "\n");
		bench_daemon_stop(&b);
		if (!rc) {
			struct stats ps = stats_of(per, rounds * nc);
			struct stats as = stats_of(all, rounds);
			fprintf(out, "| %d | %.2f ms | %.2f | %.2f | %.2f | %.2f ms | %.1fx |\n", nc,
				ps.median, ps.min, ps.p90, ps.max, as.median, ps.median / bs.median);
		}
		free(per);
		free(all);
	}
	return rc;
}
