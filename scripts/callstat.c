/* SPDX-License-Identifier: MIT */
/*
 * callstat: what each thread spends between and inside its system calls,
 * without a tracer (docs/profile.md, "The surplus at a fixed interleaving").
 * Linked into micd, the card OS and micbench with ld's --wrap, it times the
 * calls of the echo's data path with the TSC and, per thread, keeps:
 *   - the user time between two calls (all of a thread's own code here:
 *     these are the only calls the data path makes);
 *   - per class (call x fd type x success/error): the count, the wall time's
 *     p25 and p50, the mean user time just before the call and, with
 *     CALLSTAT_CPU set, the mean thread CPU inside the call (two extra
 *     clock_gettime calls each: heavier, so read those as shares).
 * Every 100000 calls a thread writes its figures to fd 2, one short line per
 * class (the card's UART carries lines up to 255 characters into micd's log;
 * MICBENCH_VERBOSE keeps micd's log on micbench's stderr).
 *
 *   cc -O2 -c scripts/callstat.c -o /tmp/callstat.o
 *   cmake -S . -B build-callstat -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 *     -DCMAKE_EXE_LINKER_FLAGS="/tmp/callstat.o -Wl,--wrap=read,--wrap=write,--wrap=readv,--wrap=writev,--wrap=recv,--wrap=recvfrom,--wrap=sendto,--wrap=poll,--wrap=epoll_wait"
 *   make -C build-callstat
 *   MICBENCH_VERBOSE=1 MICBENCH_ECHO_ONLY=1 taskset -c 1 build-callstat/bin/micbench net --runs 1
 *
 * A measurement build only: nothing in the product links it.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

enum { K_READ, K_WRITE, K_READV, K_WRITEV, K_RECV, K_SENDTO, K_POLL, K_EPOLL, K_N };
enum { F_PIPE, F_CHR, F_OTHER, F_N };
#define NCLASS (K_N * F_N * 2)
#define NB 600		/* 100-cycle buckets */
#define LONG 60000ull	/* cycles: a longer gap between calls was a preemption */
#define EVERY 100000

static const char *kname[K_N] = { "read", "write", "readv", "writev", "recv", "sendto", "poll", "epoll_wait" };
static const char *fname[F_N] = { "pipe", "chr", "other" };

struct cls {
	uint64_t n, gap, cpu;
	uint32_t h[NB];
};

/* One per thread: a shim has no context to pass, so thread-local it is. */
struct stat_thread {
	uint64_t last, enter, cpu0, lastgap, user, nuser, calls;
	int cpu_on;
	struct cls c[NCLASS];
	signed char fdt[1024]; /* 0 unknown, else F_* + 1; fds are not reused on the data path */
};
static __thread struct stat_thread *st;

/* The real write, for the figures themselves: through the wrapper they
 * would count as calls of the program. */
ssize_t __real_write(int fd, const void *b, size_t n);

/* A forked child starts its own figures: the copy of the parent's would
 * mix both processes' calls and carry fd types that are not the child's. */
static void forget_parent(void)
{
	st = NULL;
}

__attribute__((constructor)) static void callstat_init(void)
{
	pthread_atfork(NULL, NULL, forget_parent);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fd_type(int fd)
{
	if (fd < 0 || fd >= 1024)
		return F_OTHER;
	if (!st->fdt[fd]) {
		struct stat s;
		int t = F_OTHER;
		if (fstat(fd, &s) == 0)
			t = S_ISFIFO(s.st_mode) ? F_PIPE : S_ISCHR(s.st_mode) ? F_CHR : F_OTHER;
		st->fdt[fd] = (signed char)(t + 1);
	}
	return st->fdt[fd] - 1;
}

static int pct(const struct cls *c, int num, int den)
{
	uint64_t m = 0;
	for (int i = 0; i < NB; i++)
		if ((m += c->h[i]) * (uint64_t)den >= c->n * (uint64_t)num)
			return i * 100 + 50;
	return NB * 100;
}

static void dump(void)
{
	char l[200];
	long tid = syscall(SYS_gettid);
	int n = snprintf(l, sizeof(l), "CS %ld user %lu nuser %lu calls %lu\n", tid,
			 (unsigned long)st->user, (unsigned long)st->nuser, (unsigned long)st->calls);
	if (__real_write(2, l, (size_t)n) < 0)
		return;
	for (int i = 0; i < NCLASS; i++) {
		const struct cls *c = &st->c[i];
		if (c->n < 100)
			continue;
		n = snprintf(l, sizeof(l), "CS %ld %s.%s.%s n=%lu p25=%d p50=%d gap=%lu cpu_ns=%lu\n", tid,
			     kname[i / (F_N * 2)], fname[i / 2 % F_N], i % 2 ? "err" : "ok",
			     (unsigned long)c->n, pct(c, 1, 4), pct(c, 1, 2), (unsigned long)(c->gap / c->n),
			     (unsigned long)(c->cpu / c->n));
		if (__real_write(2, l, (size_t)n) < 0)
			return;
	}
}

static int pre(void)
{
	if (!st) {
		st = calloc(1, sizeof(*st));
		if (!st)
			return 0;
		st->cpu_on = getenv("CALLSTAT_CPU") != NULL;
	}
	uint64_t t = __rdtsc();
	st->lastgap = 0;
	if (st->last) {
		uint64_t g = t - st->last;
		if (g < LONG) {
			st->user += g;
			st->nuser++;
			st->lastgap = g;
		}
	}
	if (st->cpu_on)
		st->cpu0 = thread_cpu_ns();
	st->enter = __rdtsc();
	return 1;
}

static void post(int kind, int fd, long ret)
{
	uint64_t d = __rdtsc() - st->enter;
	struct cls *c = &st->c[(kind * F_N + (fd >= 0 ? fd_type(fd) : F_OTHER)) * 2 + (ret < 0)];
	if (st->cpu_on)
		c->cpu += thread_cpu_ns() - st->cpu0;
	c->n++;
	c->gap += st->lastgap;
	c->h[d < LONG ? d / 100 : NB - 1]++;
	if (++st->calls % EVERY == 0)
		dump();
	st->last = __rdtsc();
}

#define WRAP(ret, name, kind, fd, params, args)                    \
	ret __real_##name params;                                  \
	ret __wrap_##name params                                   \
	{                                                          \
		if (!pre())                                        \
			return __real_##name args;                 \
		ret r = __real_##name args;                        \
		post(kind, fd, (long)r);                           \
		return r;                                          \
	}

WRAP(ssize_t, read, K_READ, fd, (int fd, void *b, size_t n), (fd, b, n))
WRAP(ssize_t, write, K_WRITE, fd, (int fd, const void *b, size_t n), (fd, b, n))
WRAP(ssize_t, readv, K_READV, fd, (int fd, const struct iovec *v, int n), (fd, v, n))
WRAP(ssize_t, writev, K_WRITEV, fd, (int fd, const struct iovec *v, int n), (fd, v, n))
WRAP(ssize_t, recv, K_RECV, fd, (int fd, void *b, size_t n, int f), (fd, b, n, f))
WRAP(ssize_t, recvfrom, K_RECV, fd,
     (int fd, void *b, size_t n, int f, struct sockaddr *a, socklen_t *l), (fd, b, n, f, a, l))
WRAP(ssize_t, sendto, K_SENDTO, fd,
     (int fd, const void *b, size_t n, int f, const struct sockaddr *a, socklen_t l), (fd, b, n, f, a, l))
WRAP(int, poll, K_POLL, -1, (struct pollfd *p, nfds_t n, int t), (p, n, t))
WRAP(int, epoll_wait, K_EPOLL, -1, (int e, struct epoll_event *v, int m, int t), (e, v, m, t))
