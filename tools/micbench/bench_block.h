/* SPDX-License-Identifier: MIT */
/* fio on a card's disk and on host files: what micbench block and micbench
 * vblk share (the same job definitions, files and waits). */
#ifndef MIC_BENCH_BLOCK_H
#define MIC_BENCH_BLOCK_H

#include <sys/types.h>

#define BENCH_FIO "/usr/bin/fio"

struct bench_fio_job {
	const char *what, *rw, *bs;
	int depth;
	int write;
	int big; /* reported in MB/s rather than IOPS */
};
/* 4k random read QD32, 4k random write QD32, 1M sequential read QD8, 1M
 * sequential write QD8. */
extern const struct bench_fio_job bench_fio_jobs[4];

/* One fio job on path, in the card (os > 0) or on the host; IOPS or MB/s
 * as the job is reported, or -1. */
double bench_fio(pid_t os, const char *path, const struct bench_fio_job *j, double secs);
/* Flushes a host file and drops it from the page cache. */
void bench_drop_cache(const char *path);
/* Waits until the card's driver has made /dev/vda; 0 or -1. */
int bench_wait_vda(pid_t os);
/* A file of mib MiB of data (not zeros: nothing may compress or skip it). */
int bench_data_file(const char *path, int mib);
/* The name of the filesystem path is on ("ext4", ...). */
const char *bench_fs_name(const char *path);

#endif
