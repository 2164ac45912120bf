/* SPDX-License-Identifier: MIT */
/*
 * What the benchmarks that use external meters (iperf3, fio) share: run
 * counts and series statistics, a benchmark image that carries the meters,
 * and programs started inside a card (its namespaces and cgroup, from its
 * own root) or in a network namespace on the host, each with a time limit.
 */
#ifndef MIC_BENCH_RUN_H
#define MIC_BENCH_RUN_H

#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "bench_daemon.h"

#define BENCH_MAX_RUNS 64

/* --runs N (default 5, at most BENCH_MAX_RUNS), --seconds S (a meter's
 * duration; default def_secs), --quick (3 runs of a second: shows that it
 * works, not a figure to keep). */
struct bench_opts {
	int runs;
	double secs;
	int quick;
};
/* 0, or 2 after a usage message naming cmd. */
int bench_opts_parse(int argc, char **argv, const char *cmd, double def_secs, struct bench_opts *o);
/* "5 runs" or "3 runs (--quick: not for keeping)" */
const char *bench_opts_runs(const struct bench_opts *o);

/* One figure per run. */
struct bench_series {
	double v[BENCH_MAX_RUNS];
	int n;
};
void series_add(struct bench_series *s, double v);
double series_median(const struct bench_series *s);
double series_min(const struct bench_series *s);
double series_max(const struct bench_series *s);
/* "median (min-max)" with the given printf precision. */
const char *series_fmt(const struct bench_series *s, int prec, char *buf, size_t len);
/* Ratios a[i]/b[i], run by run (both series measured in the same runs). */
void series_ratio(const struct bench_series *a, const struct bench_series *b, struct bench_series *out);
double series_ratio_median(const struct bench_series *a, const struct bench_series *b);
/* A table row "| what | micstack | baseline | ratio |", each median (min-max). */
void bench_row(FILE *out, const char *what, const struct bench_series *micstack,
	       const struct bench_series *baseline, const char *unit, int prec);
/* "met" or "not met" */
const char *bench_aim(int met);

/* Builds the card image with extra host programs (and their libraries)
 * into path: mic-mkimage --default --add PROG... from the bin directory. */
int bench_make_image(const struct bench_daemon *b, const char *path, const char *const progs[]);


/*
 * Starts argv inside the card whose OS is `os`: in its cgroups first, then
 * in all its namespaces (nsenter -a: user, mount, PID, network, UTS, IPC,
 * cgroup), so the program is the card's own from its own root, not a host
 * file.  It is not under the card OS's seccomp filter (the filter refuses
 * nothing a meter uses).  Killed after timeout_s: busybox `timeout` in the
 * card, SIGALRM on the host side.  Its stdout is readable from *out_fd
 * (out_fd NULL: discarded).
 */
pid_t bench_card_start(pid_t os, char *const argv[], int timeout_s, int *out_fd);
/* The same for a host program in the network namespace netns (-1: ours). */
pid_t bench_ns_start(int netns, char *const argv[], int timeout_s, int *out_fd);
/* Reads the whole output into buf (NUL-terminated), reaps the program;
 * 0 if it exited with status 0. */
int bench_collect(pid_t pid, int fd, char *buf, size_t len);
/* Kills (SIGKILL) and reaps a program that is no longer wanted. */
void bench_kill(pid_t pid, int fd);

/* What all threads of process pid have done so far: voluntary context
 * switches (sleeps, hence wake-ups) and CPU time in ns (sum_exec_runtime
 * from schedstat: exact, where /proc/PID/stat counts 10 ms ticks).  0, or
 * -1 if the process is gone.  Differences over a meter's run give wake-ups
 * and CPU per operation, which stay meaningful on a loaded machine where
 * latencies do not. */
int bench_task_usage(pid_t pid, long long *sleeps, long long *cpu_ns);

/* A child that holds a fresh network namespace (loopback up) until
 * killed: its pid (-1 on failure), the namespace's fd in *nsfd. */
pid_t bench_ns_holder(int *nsfd);

/* Reads fd (a PTY) until want bytes came or none for timeout_ms; the bytes
 * read. */
size_t bench_drain(int fd, size_t want, int timeout_ms);
/* Reads fd until it has been quiet for 200 ms. */
void bench_quiet(int fd);

/* The console meters of `micbench console` and `floor`, on fd (a PTY with
 * a shell at its far end).  bench_con_stream: `head -c bytes /dev/zero`
 * read back, in MB/s (0 if it fell short); with path pids, the CPU ms they
 * spent per MB of it into *path_ms_mb (the shell and the reader cost the
 * same on every side, the path between them is what a card adds). */
double bench_con_stream(int fd, size_t bytes, const pid_t *path, int npath, double *path_ms_mb);
/* keys typed one at a time, each echo read back: median and p99 in us;
 * 0, or -1 if an echo did not come. */
int bench_con_keys(int fd, int keys, double *p50, double *p99);

/* The echo meter of `micbench net` and `floor`: rounds round trips of a
 * msg-byte message on connected socket s, each timed; median and p99 in
 * us, and the percentiles with the steal during it reported on stderr
 * (and every round trip to MICBENCH_ECHO_DUMP) under the name what.  With
 * cpu >= 0 the calling thread runs on that CPU while it times, and where it
 * ran before afterwards.  0, or -1 if a round trip failed. */
int bench_echo_time(int s, size_t msg, int rounds, int cpu, const char *what, double *p50,
		    double *p99);

/* The echo's other end: accepts one connection on listening socket l and
 * sends every msg-byte message back until the peer closes. */
void bench_echo_serve(int l, size_t msg);

/* Moves the calling thread to cpu; its old set into old (if not NULL).
 * 0 or -1. */
int bench_pin(int cpu, cpu_set_t *old);

/* The first two CPUs the caller may run on, for the echo's pinned
 * baselines (docs/profile.md, the echo side by side); how many there are. */
int bench_two_cpus(int cpus[2]);

/* Waits until a socket listens on TCP port `port` in pid's network
 * namespace (/proc/PID/net/tcp); 0 or -1 after timeout_ms. */
int bench_wait_listen(pid_t pid, int port, int timeout_ms);

/* The number after "key": (or "key" :) following `after` in JSON text
 * from a meter (after NULL: from the start); -1 if absent. */
double bench_json_num(const char *json, const char *after, const char *key);

#endif
