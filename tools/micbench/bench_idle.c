/* SPDX-License-Identifier: MIT */
/*
 * micbench idle: what an idle booted card costs the host.  One card (the
 * default image, network and console on, nothing attached) is booted and
 * left alone; over windows of --seconds the CPU time of every micd thread
 * and of every process below micd (the card's firmware, OS, shell, ssh
 * server) is summed from /proc/<pid>/task/<tid>/schedstat (run time in ns),
 * and reported as a percentage of one core.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "bench_run.h"
#include "lib/clock.h"

#define MAX_PROCS 65536
#define MAX_NAMES 64

struct names {
	char name[MAX_NAMES][20];
	uint64_t ns[MAX_NAMES];
	int n;
};

static void name_add(struct names *t, const char *name, uint64_t ns)
{
	int i = 0;
	while (i < t->n && strcmp(t->name[i], name))
		i++;
	if (i == t->n) {
		if (t->n == MAX_NAMES)
			return;
		snprintf(t->name[t->n++], sizeof(t->name[0]), "%s", name);
	}
	t->ns[i] += ns;
}

/* Run time of every thread of pid, in ns; per thread name into names. */
static uint64_t proc_ns(int pid, struct names *names, int sign)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	uint64_t sum = 0;
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char p[96], comm[32] = "";
		unsigned long long ns = 0;
		snprintf(p, sizeof(p), "/proc/%d/task/%d/schedstat", pid, atoi(e->d_name));
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &ns) != 1)
			ns = 0;
		fclose(f);
		snprintf(p, sizeof(p), "/proc/%d/task/%d/comm", pid, atoi(e->d_name));
		if ((f = fopen(p, "re"))) {
			if (fgets(comm, sizeof(comm), f))
				comm[strcspn(comm, "\n")] = 0;
			fclose(f);
		}
		sum += ns;
		if (names) /* sign -1: the window's start is subtracted */
			name_add(names, comm, sign > 0 ? ns : (uint64_t)-(int64_t)ns);
	}
	if (d)
		closedir(d);
	return sum;
}

/* CPU ns of micd's threads and of every process below it. */
static void account(int micd, uint64_t *host, uint64_t *card, struct names *names, int sign)
{
	static int pid[MAX_PROCS], ppid[MAX_PROCS];
	static char below[MAX_PROCS];
	int n = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) && n < MAX_PROCS) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		char p[64], buf[512];
		snprintf(p, sizeof(p), "/proc/%d/stat", atoi(e->d_name));
		FILE *f = fopen(p, "re");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = 0;
		const char *c = strrchr(buf, ')'); /* the name may hold anything */
		int pp;
		if (c && sscanf(c + 2, "%*c %d", &pp) == 1) {
			pid[n] = atoi(e->d_name);
			ppid[n++] = pp;
		}
	}
	if (d)
		closedir(d);
	memset(below, 0, (size_t)n);
	for (int changed = 1; changed;) {
		changed = 0;
		for (int i = 0; i < n; i++) {
			if (below[i])
				continue;
			int up = ppid[i] == micd;
			for (int k = 0; k < n && !up; k++)
				up = below[k] && pid[k] == ppid[i];
			if (up)
				below[i] = changed = 1;
		}
	}
	*host = proc_ns(micd, names, sign);
	*card = 0;
	for (int i = 0; i < n; i++)
		if (below[i])
			*card += proc_ns(pid[i], names, sign);
}

int micbench_idle(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "idle", 2, &o))
		return 2;
	struct bench_daemon b = { .pid = -1 };
	if (bench_daemon_start(&b, 1) < 0 || bench_ctl(&b, "boot mic0 wait\n") < 0) {
		fprintf(stderr, "micbench idle: cannot start micd and boot mic0\n");
		bench_daemon_stop(&b);
		return 1;
	}
	sleep(1); /* the boot's own work is done */
	struct bench_series host = { 0 }, card = { 0 }, all = { 0 };
	struct names names = { 0 };
	for (int k = 0; k < o.runs; k++) {
		uint64_t h0, c0, h1, c1, t0 = now_ns();
		account(b.pid, &h0, &c0, &names, -1);
		usleep((useconds_t)(o.secs * 1e6));
		account(b.pid, &h1, &c1, &names, 1);
		double wall = (double)(now_ns() - t0);
		/* a process that ended in the window takes its time with it */
		double h = h1 > h0 ? (double)(h1 - h0) : 0, c = c1 > c0 ? (double)(c1 - c0) : 0;
		series_add(&host, 100 * h / wall);
		series_add(&card, 100 * c / wall);
		series_add(&all, 100 * (h + c) / wall);
	}
	bench_daemon_stop(&b);
	char a[96];
	fprintf(out, "### Idle cost: one booted card, nothing attached\n\n");
	fprintf(out, "CPU time (schedstat run time of every thread) over %s of %.0f s each, as %% of one "
		     "core; median (min-max). micd: all its threads (with one card: the control loop, "
		     "the card's device threads and DMA workers); card: every process below micd "
		     "(firmware, card OS, shell, ssh server).\n\n",
		bench_opts_runs(&o), o.secs);
	fprintf(out, "| part | %% of a core |\n|---|---|\n");
	fprintf(out, "| micd (host side of the card) | %s |\n", series_fmt(&host, 3, a, sizeof(a)));
	fprintf(out, "| card processes | %s |\n", series_fmt(&card, 3, a, sizeof(a)));
	fprintf(out, "| total | %s |\n", series_fmt(&all, 3, a, sizeof(a)));
	/* where it goes, over all windows: the busiest thread names */
	fprintf(out, "\nBusiest threads over all windows:");
	for (int shown = 0; shown < 5; shown++) {
		int best = -1;
		for (int i = 0; i < names.n; i++)
			if ((int64_t)names.ns[i] > 0 && (best < 0 || names.ns[i] > names.ns[best]))
				best = i;
		if (best < 0)
			break;
		fprintf(out, "%s `%s` %.1f ms", shown ? "," : "", names.name[best], names.ns[best] / 1e6);
		names.ns[best] = 0;
	}
	fprintf(out, ".\n\nAim (issue 12): under 1%% of a core: %s.\n", bench_aim(series_median(&all) < 1.0));
	return 0;
}
