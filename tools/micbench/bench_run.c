/* SPDX-License-Identifier: MIT */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_run.h"
#include "lib/clock.h"
#include "hw/sandbox.h"
#include "micbench.h"

int bench_opts_parse(int argc, char **argv, const char *cmd, double def_secs, struct bench_opts *o)
{
	*o = (struct bench_opts){ .runs = 5, .secs = def_secs };
	int runs = 0;
	double secs = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick")) {
			o->quick = 1;
		} else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
			runs = atoi(argv[++i]);
			if (runs < 1 || runs > BENCH_MAX_RUNS)
				goto usage;
		} else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
			secs = atof(argv[++i]);
			if (!(secs >= 1 && secs <= 60))
				goto usage;
		} else {
			goto usage;
		}
	}
	if (o->quick) {
		o->runs = 3;
		o->secs = 1;
	}
	if (runs)
		o->runs = runs;
	if (secs)
		o->secs = secs;
	return 0;
usage:
	fprintf(stderr,
		"usage: micbench %s [--runs N] [--seconds S] [--quick]\n"
		"  --runs N     runs, alternating micstack and baseline (default 5, at most %d)\n"
		"  --seconds S  duration of each meter run, 1..60 (default %.0f)\n"
		"  --quick      3 runs of 1 s: shows it works, figures not for keeping\n",
		cmd, BENCH_MAX_RUNS, def_secs);
	return 2;
}

const char *bench_opts_runs(const struct bench_opts *o)
{
	static char buf[64];
	snprintf(buf, sizeof(buf), "%d runs%s", o->runs, o->quick ? " (--quick: figures not for keeping)" : "");
	return buf;
}

void series_add(struct bench_series *s, double v)
{
	if (s->n < BENCH_MAX_RUNS)
		s->v[s->n++] = v;
}

static void sorted(const struct bench_series *s, double *out)
{
	memcpy(out, s->v, (size_t)s->n * sizeof(*out));
	micbench_sort(out, (size_t)s->n);
}

double series_median(const struct bench_series *s)
{
	double v[BENCH_MAX_RUNS];
	if (!s->n)
		return 0;
	sorted(s, v);
	return s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
}

double series_min(const struct bench_series *s)
{
	double m = s->n ? s->v[0] : 0;
	for (int i = 1; i < s->n; i++)
		m = s->v[i] < m ? s->v[i] : m;
	return m;
}

double series_max(const struct bench_series *s)
{
	double m = s->n ? s->v[0] : 0;
	for (int i = 1; i < s->n; i++)
		m = s->v[i] > m ? s->v[i] : m;
	return m;
}

const char *series_fmt(const struct bench_series *s, int prec, char *buf, size_t len)
{
	if (!s->n)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.*f (%.*f-%.*f)", prec, series_median(s), prec, series_min(s), prec,
			 series_max(s));
	return buf;
}

void series_ratio(const struct bench_series *a, const struct bench_series *b, struct bench_series *out)
{
	out->n = 0;
	for (int i = 0; i < a->n && i < b->n; i++)
		if (b->v[i] > 0)
			series_add(out, a->v[i] / b->v[i]);
}

int bench_make_image(const struct bench_daemon *b, const char *path, const char *const progs[])
{
	char mk[PATH_MAX], rt[PATH_MAX];
	snprintf(mk, sizeof(mk), "%s/mic-mkimage", b->bindir);
	snprintf(rt, sizeof(rt), "%s/mic-card", b->bindir);
	char *argv[40] = { mk, "-o", (char *)path, "--default", "--runtime", rt };
	int n = 6;
	for (int i = 0; progs[i] && n < 36; i++) {
		if (access(progs[i], X_OK) < 0) {
			fprintf(stderr, "micbench: %s is missing (make deps installs it)\n", progs[i]);
			return -1;
		}
		argv[n++] = "--add";
		argv[n++] = (char *)progs[i];
	}
	argv[n] = NULL;
	pid_t p = fork();
	if (p == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		execv(mk, argv);
		_exit(127);
	}
	int st;
	return p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

/* Moves the calling process into every cgroup of process os (but the
 * hierarchies' roots, which hold no limits). */
static int join_cgroups(pid_t os)
{
	char path[64], line[1024], dir[PATH_MAX];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)os);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int rc = 0;
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || !strcmp(c2 + 1, "/") || !strncmp(c1 + 1, "name=", 5))
			continue;
		*c2 = 0;
		/* a v1 hierarchy is found by its first controller */
		char *ctrl = c1 + 1;
		ctrl[strcspn(ctrl, ",")] = 0;
		if (sandbox_cgroup_dir(ctrl[0] ? ctrl : NULL, c2 + 1, dir, sizeof(dir) - 16, NULL, 0) < 0)
			continue;
		strcat(dir, "/cgroup.procs");
		int fd = open(dir, O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, "0", 1) != 1)
			rc = -1;
		if (fd >= 0)
			close(fd);
	}
	fclose(f);
	return rc;
}

static pid_t start(pid_t os, int netns, char *const argv[], int timeout_s, int *out_fd)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(out_fd ? p[1] : null, 1);
		dup2(null, 0);
		if (!getenv("MICBENCH_VERBOSE"))
			dup2(null, 2);
		/* own process group: bench_kill reaches nsenter's child too */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (os > 0) {
			if (join_cgroups(os) < 0)
				_exit(125);
			char pid[16], secs[16];
			snprintf(pid, sizeof(pid), "%d", (int)os);
			snprintf(secs, sizeof(secs), "%d", timeout_s);
			char *a[64] = { "nsenter", "-t", pid, "-a", "--", "/bin/busybox", "timeout",
					"-s", "KILL", secs };
			int n = 10;
			for (int i = 0; argv[i] && n < 63; i++)
				a[n++] = argv[i];
			a[n] = NULL;
			alarm((unsigned)timeout_s + 5);
			/* the card's files are not the host's: a host TMPDIR
			 * (iperf3 makes a file there) names nothing in the card */
			unsetenv("TMPDIR");
			execvp("nsenter", a);
			_exit(127);
		}
		if (netns >= 0 && setns(netns, CLONE_NEWNET) < 0)
			_exit(126);
		alarm((unsigned)timeout_s);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	setpgid(pid, pid);
	if (out_fd)
		*out_fd = p[0];
	else
		close(p[0]);
	return pid;
}

pid_t bench_card_start(pid_t os, char *const argv[], int timeout_s, int *out_fd)
{
	return os > 0 ? start(os, -1, argv, timeout_s, out_fd) : -1;
}

pid_t bench_ns_start(int netns, char *const argv[], int timeout_s, int *out_fd)
{
	return start(-1, netns, argv, timeout_s, out_fd);
}

int bench_collect(pid_t pid, int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	while ((r = read(fd, buf + n, len - 1 - n)) > 0 || (r < 0 && errno == EINTR))
		if (r > 0 && (n += (size_t)r) == len - 1)
			break;
	buf[n] = 0;
	close(fd);
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -1;
}

void bench_kill(pid_t pid, int fd)
{
	if (pid <= 0)
		return;
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	if (fd >= 0)
		close(fd);
	waitpid(pid, NULL, 0);
}

int bench_task_usage(pid_t pid, long long *sleeps, long long *cpu_ns)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	*sleeps = *cpu_ns = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char f[128], line[128];
		long long v;
		snprintf(f, sizeof(f), "%s/%.20s/status", path, e->d_name);
		FILE *st = fopen(f, "re");
		while (st && fgets(line, sizeof(line), st))
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1)
				*sleeps += v;
		if (st)
			fclose(st);
		snprintf(f, sizeof(f), "%s/%.20s/schedstat", path, e->d_name);
		st = fopen(f, "re");
		if (st && fscanf(st, "%lld", &v) == 1)
			*cpu_ns += v;
		if (st)
			fclose(st);
	}
	closedir(d);
	return 0;
}

pid_t bench_ns_holder(int *nsfd)
{
	int p[2];
	*nsfd = -1;
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char c = unshare(CLONE_NEWNET) < 0 || system("ip link set lo up") ? 'E' : 'R';
		if (write(p[1], &c, 1) != 1 || c != 'R')
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	char c = 0, path[64];
	if (pid > 0 && (read(p[0], &c, 1) != 1 || c != 'R')) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(p[0]);
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
	if (pid > 0 && (*nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	return pid;
}

size_t bench_drain(int fd, size_t want, int timeout_ms)
{
	char buf[65536];
	size_t got = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (got < want && poll(&p, 1, timeout_ms) == 1) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

void bench_quiet(int fd)
{
	while (bench_drain(fd, SIZE_MAX, 200) > 0)
		;
}

/* CPU ms the processes pids[0..n) have used so far (schedstat). */
static double cpu_ms(const pid_t *pids, int n)
{
	double ms = 0;
	for (int i = 0; i < n; i++) {
		long long sleeps, ns;
		if (pids[i] > 0 && bench_task_usage(pids[i], &sleeps, &ns) == 0)
			ms += (double)ns / 1e6;
	}
	return ms;
}

double bench_con_stream(int fd, size_t bytes, const pid_t *path, int npath, double *path_ms_mb)
{
	char cmd[64];
	bench_quiet(fd);
	double c0 = cpu_ms(path, npath);
	snprintf(cmd, sizeof(cmd), "head -c %zu /dev/zero\n", bytes);
	uint64_t t0 = now_ns();
	if (write(fd, cmd, strlen(cmd)) < 0)
		return 0;
	size_t got = bench_drain(fd, bytes + strlen(cmd) + 1, 10000);
	double s = (double)(now_ns() - t0) / 1e9;
	if (npath)
		*path_ms_mb = (cpu_ms(path, npath) - c0) / ((double)bytes / 1e6);
	bench_quiet(fd);
	return got >= bytes ? (double)bytes / s / 1e6 : 0;
}

int bench_con_keys(int fd, int keys, double *p50, double *p99)
{
	double *v = malloc(sizeof(*v) * (size_t)keys);
	int rc = v ? 0 : -1;
	bench_quiet(fd);
	for (int i = 0; i < keys && !rc; i++) {
		uint64_t t0 = now_ns();
		if (write(fd, "x", 1) != 1 || bench_drain(fd, 1, 2000) < 1)
			rc = -1;
		v[i] = (double)(now_ns() - t0) / 1e3;
		if (i % 50 == 49 && write(fd, "\025", 1) == 1) /* Ctrl-U: clear the line */
			bench_quiet(fd);
	}
	if (write(fd, "\025", 1) == 1)
		bench_quiet(fd);
	if (!rc) {
		micbench_sort(v, (size_t)keys);
		*p50 = v[keys / 2];
		*p99 = v[keys * 99 / 100];
	}
	free(v);
	return rc;
}

int bench_echo_time(int s, size_t msg, int rounds, int cpu, const char *what, double *p50,
		    double *p99)
{
	cpu_set_t old;
	if (cpu >= 0 && bench_pin(cpu, &old) < 0)
		return -1;
	double *v = malloc(sizeof(*v) * (size_t)rounds);
	uint64_t *ts = malloc(sizeof(*ts) * (size_t)rounds);
	char *b = calloc(1, msg);
	int i = 0;
	double steal = micbench_steal_ms();
	for (; v && ts && b && i < rounds; i++) {
		uint64_t t0 = now_ns();
		if (write(s, b, msg) != (ssize_t)msg || recv(s, b, msg, MSG_WAITALL) != (ssize_t)msg)
			break;
		ts[i] = t0;
		v[i] = (double)(now_ns() - t0) / 1e3;
	}
	int rc = i == rounds ? 0 : -1;
	if (!rc) {
		micbench_echo_report(what, v, ts, rounds, micbench_steal_ms() - steal);
		micbench_sort(v, (size_t)rounds);
		*p50 = v[rounds / 2];
		*p99 = v[rounds * 99 / 100];
	}
	free(v);
	free(ts);
	free(b);
	if (cpu >= 0 && sched_setaffinity(0, sizeof(old), &old) < 0)
		rc = -1;
	return rc;
}

void bench_echo_serve(int l, size_t msg)
{
	int s = accept(l, NULL, NULL), one = 1;
	if (s < 0)
		return;
	char *b = malloc(msg);
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ssize_t n;
	while (b && (n = recv(s, b, msg, MSG_WAITALL)) > 0 && write(s, b, (size_t)n) == n)
		;
	free(b);
	close(s);
}

int bench_pin(int cpu, cpu_set_t *old)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (old && sched_getaffinity(0, sizeof(*old), old) < 0)
		return -1;
	return sched_setaffinity(0, sizeof(set), &set);
}

int bench_two_cpus(int cpus[2])
{
	cpu_set_t mine;
	int n = 0;
	cpus[0] = cpus[1] = -1;
	if (sched_getaffinity(0, sizeof(mine), &mine) == 0)
		for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
			if (CPU_ISSET(c, &mine))
				cpus[n++] = c;
	return n;
}

int bench_wait_listen(pid_t pid, int port, int timeout_ms)
{
	char path[64], line[256], want[16];
	snprintf(path, sizeof(path), "/proc/%d/net/tcp", (int)pid);
	snprintf(want, sizeof(want), ":%04X", port);
	for (int t = 0; t < timeout_ms; t += 10) {
		FILE *f = fopen(path, "re");
		if (!f)
			return -1;
		int found = 0;
		while (!found && fgets(line, sizeof(line), f)) {
			/* "  0: 0100007F:1451 00000000:0000 0A ..." local address, state */
			char local[64], st[8];
			if (sscanf(line, "%*s %63s %*s %7s", local, st) == 2 && !strcmp(st, "0A") &&
			    strstr(local, want) && strlen(strstr(local, want)) == 5)
				found = 1;
		}
		fclose(f);
		if (found)
			return 0;
		usleep(10000);
	}
	return -1;
}

double bench_json_num(const char *json, const char *after, const char *key)
{
	const char *p = json;
	char k[128];
	/* after names a key (followed by a colon), not a string value */
	if (after) {
		snprintf(k, sizeof(k), "\"%s\"", after);
		for (;;) {
			if (!(p = strstr(p, k)))
				return -1;
			p += strlen(k);
			while (isspace((unsigned char)*p))
				p++;
			if (*p == ':')
				break;
		}
	}
	snprintf(k, sizeof(k), "\"%s\"", key);
	while ((p = strstr(p, k))) {
		p += strlen(k);
		while (isspace((unsigned char)*p))
			p++;
		if (*p != ':')
			continue;
		char *end;
		double v = strtod(p + 1, &end);
		return end == p + 1 ? -1 : v;
	}
	return -1;
}

const char *bench_aim(int met)
{
	return met ? "met" : "not met";
}

void bench_row(FILE *out, const char *what, const struct bench_series *c,
		const struct bench_series *v, const char *unit, int prec)
{
	char a[96], b[96], q[96];
	struct bench_series ratio;
	series_ratio(c, v, &ratio);
	const char *sp = *unit ? " " : "";
	fprintf(out, "| %s | %s%s%s | %s%s%s | %s |\n", what, series_fmt(c, prec, a, sizeof(a)), sp,
		unit, series_fmt(v, prec, b, sizeof(b)), sp, unit, series_fmt(&ratio, 2, q, sizeof(q)));
}

double series_ratio_median(const struct bench_series *c, const struct bench_series *v)
{
	struct bench_series r;
	series_ratio(c, v, &r);
	return series_median(&r);
}
