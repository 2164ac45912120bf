/* SPDX-License-Identifier: MIT */
/*
 * micbench: one binary, one subcommand per area ("micbench dma ...").  To
 * add one, write bench_<name>.c with an entry point of this type and list
 * it in the table of micbench.c.  Each subcommand prints a Markdown
 * fragment to its output and keeps its runtime bounded.
 */
#ifndef MIC_MICBENCH_H
#define MIC_MICBENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct micbench_cmd {
	const char *name;
	const char *summary;
	/* argv[0] is the subcommand's name; out is stdout or --out FILE. */
	int (*run)(int argc, char **argv, FILE *out);
};

/* Sorts n doubles ascending (for medians and percentiles). */
void micbench_sort(double *v, size_t n);
/* Time the hypervisor ran something else while this machine's CPUs
 * wanted to run (all CPUs, ms; /proc/stat's steal), or -1. */
double micbench_steal_ms(void);
/* For studies of the echo's tail (docs/profile.md): n round trips v (us)
 * started at t0 (ns): percentiles and the steal to stderr, and with
 * MICBENCH_ECHO_DUMP=file every round trip ("what start_ns us") appended to
 * file, to lay beside `perf sched record -k CLOCK_MONOTONIC`. */
void micbench_echo_report(const char *what, const double *v, const uint64_t *t0, int n,
			  double steal_ms);
/* Round trips per echo: MICBENCH_ECHO_ROUNDS (1..MICBENCH_ECHO_MAX), else
 * dflt; a p99 of 2000 is its 20th worst. */
#define MICBENCH_ECHO_MAX 100000
int micbench_echo_rounds(int dflt);

int micbench_dma(int argc, char **argv, FILE *out);
int micbench_boot(int argc, char **argv, FILE *out);
int micbench_console(int argc, char **argv, FILE *out);
int micbench_net(int argc, char **argv, FILE *out);
int micbench_net8(int argc, char **argv, FILE *out);
int micbench_block(int argc, char **argv, FILE *out);
int micbench_vblk(int argc, char **argv, FILE *out);
int micbench_fs(int argc, char **argv, FILE *out);
int micbench_idle(int argc, char **argv, FILE *out);
int micbench_floor(int argc, char **argv, FILE *out);

#endif
