/* SPDX-License-Identifier: MIT */
/*
 * micbench block: fio on a card's virtio-block disk (card fio -> /dev/vda,
 * the FUSE file -> virtqueues -> host backend -> image file), next to the
 * same fio job on a host file of the same size on the same filesystem,
 * measured in the same run.
 *
 * Jobs: 4k random read and write at queue depth 32, 1M sequential read and
 * write at queue depth 8; libaio, direct I/O, time-based.  The card's fio is
 * the card's own (the benchmark image carries it), run in the card's
 * namespaces and cgroup; the baseline's is the host's.  Both files are
 * filled with data first (holes would be read for free) and are flushed and
 * dropped from the host page cache before every job.
 *
 * What direct I/O means on each side: in the card, O_DIRECT on the FUSE file
 * bypasses the card's page cache and FUSE passes each request on (libaio's
 * requests stay asynchronous: libfuse negotiates async direct I/O), at most
 * 8 in flight in the card's driver; the host backend then does buffered
 * pread/pwrite on the image, so the card's requests meet the host's page
 * cache, while the baseline's go to the host's disk.  That is the design
 * (3.13), and the report says so next to the figures.
 *
 * The disk image, the baseline file, the card image and micd's config live
 * in a temporary directory under $TMPDIR (default /var/tmp, usually
 * disk-backed); micd is a private one with networking off.  All of it is
 * removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/proc.h"
#include "bench_block.h"
#include "bench_daemon.h"
#include "bench_run.h"
#include "lib/log.h"
#include "micbench.h"

#define DISK_MIB 256

const struct bench_fio_job bench_fio_jobs[] = {
	{ "4k random read, QD32", "randread", "4k", 32, 0, 0 },
	{ "4k random write, QD32", "randwrite", "4k", 32, 1, 0 },
	{ "1M sequential read, QD8", "read", "1M", 8, 0, 1 },
	{ "1M sequential write, QD8", "write", "1M", 8, 1, 1 },
};
#define NJOBS 4

double bench_fio(pid_t os, const char *path, const struct bench_fio_job *j, double secs)
{
	char f[320], rw[32], bs[16], qd[16], rt[32];
	snprintf(f, sizeof(f), "--filename=%s", path);
	snprintf(rw, sizeof(rw), "--rw=%s", j->rw);
	snprintf(bs, sizeof(bs), "--bs=%s", j->bs);
	snprintf(qd, sizeof(qd), "--iodepth=%d", j->depth);
	snprintf(rt, sizeof(rt), "--runtime=%.0f", secs);
	char *const argv[] = { BENCH_FIO, "--name=micbench", f, rw, bs, qd, "--ioengine=libaio", "--direct=1",
			       "--time_based", rt, "--output-format=json", NULL };
	int fd, to = (int)secs + 30;
	pid_t p = os > 0 ? bench_card_start(os, argv, to, &fd) : bench_ns_start(-1, argv, to, &fd);
	static char buf[1 << 18];
	if (p < 0 || bench_collect(p, fd, buf, sizeof(buf)) < 0)
		return -1;
	const char *dir = j->write ? "write" : "read";
	double v = j->big ? bench_json_num(buf, dir, "bw_bytes") / 1e6 : bench_json_num(buf, dir, "iops");
	return v > 0 ? v : -1;
}

void bench_drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}


int bench_wait_vda(pid_t os)
{
	char *const argv[] = { "/bin/busybox", "test", "-e", "/dev/vda", NULL };
	char buf[64];
	for (int i = 0; i < 100; i++) {
		int fd;
		pid_t p = bench_card_start(os, argv, 5, &fd);
		if (p > 0 && bench_collect(p, fd, buf, sizeof(buf)) == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

int bench_data_file(const char *path, int mib)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	static char buf[1 << 20];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 2654435761u >> 13);
	int rc = 0;
	for (int i = 0; i < mib && !rc; i++) {
		buf[0] = (char)i;
		rc = write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf) ? 0 : -1;
	}
	if (fsync(fd) < 0)
		rc = -1;
	close(fd);
	return rc;
}

const char *bench_fs_name(const char *path)
{
	static const struct {
		long magic;
		const char *name;
	} fs[] = {
		{ 0xEF53, "ext4" },	 { 0x58465342, "xfs" },	      { 0x9123683E, "btrfs" },
		{ 0x01021994, "tmpfs" }, { 0x794c7630, "overlayfs" }, { 0x2FC12FC1, "zfs" },
		{ 0xF2F52010, "f2fs" },
	};
	struct statfs s;
	if (statfs(path, &s) < 0)
		return "unknown filesystem";
	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		if ((long)s.f_type == fs[i].magic)
			return fs[i].name;
	return "unknown filesystem";
}

int micbench_block(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "block", 3, &o))
		return 2;
	if (geteuid() != 0) {
		fprintf(stderr, "micbench block: needs root (micd, namespaces)\n");
		return 1;
	}
	char dir[256], img[300], base[300], conf[300], cimg[300];
	if (bench_tmpdir("block", "/var/tmp", dir, sizeof(dir)) < 0)
		return 1;
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(base, sizeof(base), "%s/host.img", dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", dir);
	snprintf(cimg, sizeof(cimg), "%s/card.img", dir);
	int rc = 1;
	struct bench_daemon b = { .pid = -1 };
	struct bench_series card[NJOBS] = { 0 }, host[NJOBS] = { 0 };
	proc_exe_dir(b.bindir, sizeof(b.bindir));
	static const char *const progs[] = { BENCH_FIO, NULL };
	if (bench_make_image(&b, cimg, progs) < 0) {
		fprintf(stderr, "micbench block: cannot build a card image with fio\n");
		goto out;
	}
	if (bench_data_file(img, DISK_MIB) < 0 || bench_data_file(base, DISK_MIB) < 0) {
		fprintf(stderr, "micbench block: cannot make files in %s: %s\n", dir, strerror(errno));
		goto out;
	}
	/* fio and its libraries (about 90 MB, in the image and unpacked in
	 * the card's tmpfs root) need a larger card than the default */
	char text[700];
	snprintf(text, sizeof(text), "[mic0]\nimage = %s\naperture_mb = 1024\ndisk = %s\nnet = 0\n",
		 cimg, img);
	if (bench_boot_config(&b, "block", conf, text, 1) < 0)
		goto out;
	pid_t os = bench_card_os_pid(&b);
	if (os <= 0 || bench_wait_vda(os) < 0) {
		fprintf(stderr, "micbench block: the card has no /dev/vda\n");
		goto out;
	}
	/* Card and host alternate, job by job, so both see the same load. */
	for (int k = 0; k < o.runs; k++) {
		for (size_t j = 0; j < NJOBS; j++) {
			bench_drop_cache(img);
			double c = bench_fio(os, "/dev/vda", &bench_fio_jobs[j], o.secs);
			bench_drop_cache(base);
			double h = bench_fio(0, base, &bench_fio_jobs[j], o.secs);
			if (c < 0 || h < 0) {
				fprintf(stderr, "micbench block: run %d, %s failed (card %.0f, host %.0f)\n",
					k + 1, bench_fio_jobs[j].what, c, h);
				goto out;
			}
			series_add(&card[j], c);
			series_add(&host[j], h);
		}
	}
	/* Clean shutdown: the card flushes and detaches its disk. */
	if (bench_ctl(&b, "shutdown mic0 wait\n") < 0)
		fprintf(stderr, "micbench block: mic0 did not shut down cleanly\n");
	fprintf(out, "### Block: fio on virtio-block (card /dev/vda) vs a host file\n\n");
	fprintf(out, "fio, libaio, `--direct=1`, time-based %.0f s per job; the card's fio from the "
		     "card's image in its namespaces and cgroup, on `/dev/vda`; the baseline the same job "
		     "on a host file; both %d MiB of data on the same %s filesystem, flushed and dropped "
		     "from the host page cache before every job. %s, card and host alternating job by "
		     "job; median (min-max); the ratio is taken run by run. Direct I/O in the card "
		     "bypasses the card's page cache only: the host backend reads and writes the image "
		     "with buffered pread/pwrite (one fdatasync per flush), so the card's requests meet "
		     "the host's page cache, the baseline's go to the disk; the card's driver keeps at "
		     "most 8 requests in flight whatever the queue depth.\n\n",
		o.secs, DISK_MIB, bench_fs_name(dir), bench_opts_runs(&o));
	fprintf(out, "| job | virtio-block | host file | ratio |\n|---|---|---|---|\n");
	for (size_t j = 0; j < NJOBS; j++)
		bench_row(out, bench_fio_jobs[j].what, &card[j], &host[j], bench_fio_jobs[j].big ? "MB/s" : "IOPS", 0);
	fprintf(out, "\nAims (issue 12, on the median ratio): 4k random read at least 0.9: %s; "
		     "4k random write at least 0.8: %s; 1M sequential read and write at least 0.9: %s, %s. "
		     "The write ratios flatter the card: its writes end in the host's page cache, the "
		     "baseline's on the disk.\n",
		bench_aim(series_ratio_median(&card[0], &host[0]) >= 0.9),
		bench_aim(series_ratio_median(&card[1], &host[1]) >= 0.8),
		bench_aim(series_ratio_median(&card[2], &host[2]) >= 0.9),
		bench_aim(series_ratio_median(&card[3], &host[3]) >= 0.9));
	rc = 0;
out:
	bench_daemon_stop(&b);
	unlink(img);
	unlink(base);
	unlink(conf);
	unlink(cimg);
	rmdir(dir);
	return rc;
}
