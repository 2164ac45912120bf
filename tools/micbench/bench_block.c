/* SPDX-License-Identifier: MIT */
/*
 * micbench block: sequential throughput of a card's virtio-block disk
 * (card dd -> /dev/vda, the FUSE file -> virtqueues -> host backend
 * -> image file), next to the same dd on a host file of the same size on
 * the same filesystem, measured in the same run.
 *
 * Both sides run the same program, busybox dd with 1 MiB blocks and direct
 * I/O (oflag=direct conv=fsync for writes, so the data is on the host's
 * disk when dd exits; iflag=direct for reads); the card's runs in the card
 * OS's user, mount and PID namespaces (nsenter).  Wall time is taken on the host
 * around the whole command.  Before every read both files are flushed and
 * dropped from the host page cache (POSIX_FADV_DONTNEED), so reads come
 * from the disk on both sides (the host backend itself does buffered I/O,
 * so the card's reads get the host's readahead; the baseline's do not).
 *
 * The disk image, the baseline file and micd's config live in a temporary
 * directory under $TMPDIR (default /var/tmp, usually disk-backed); micd is a
 * private one with networking off.  All of it is removed at the end.
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

#include "bench_daemon.h"
#include "lib/log.h"
#include "micbench.h"

#define DISK_MIB 128
#define ROUNDS 5
#define DD_TIMEOUT_S 10

/* Runs argv (searched in PATH) with output discarded and a time limit;
 * returns the wall time in seconds, or -1 if it failed. */
static double timed_run(char *const argv[])
{
	uint64_t t0 = now_ns();
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		alarm(DD_TIMEOUT_S); /* inherited by the exec'd program */
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return (double)(now_ns() - t0) / 1e9;
}

/* dd of `mib` MiB with 1 MiB blocks, on the host or (os > 0) in the card OS's
 * namespaces.  Returns MB/s, or -1. */
static double dd(pid_t os, const char *dev, int write, int mib)
{
	char target[4200], count[32], pid[16];
	snprintf(target, sizeof(target), "%s=%s", write ? "of" : "if", dev);
	snprintf(count, sizeof(count), "count=%d", mib);
	snprintf(pid, sizeof(pid), "%d", (int)os);
	char *src = write ? "if=/dev/zero" : "of=/dev/null";
	char *const wargs[] = { "/bin/busybox", "dd", src, target, "bs=1M", count,
				"oflag=direct", "conv=fsync,notrunc", NULL };
	char *const rargs[] = { "/bin/busybox", "dd", src, target, "bs=1M", count,
				"iflag=direct", NULL };
	char *const *args = write ? wargs : rargs;
	char *argv[16];
	int n = 0;
	if (os > 0) {
		char *pre[] = { "nsenter", "-t", pid, "-U", "-m", "-p", "--" };
		for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
			argv[n++] = pre[i];
	}
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	double s = timed_run(argv);
	return s > 0 ? (double)mib * 1048576.0 / s / 1e6 : -1;
}

/* Flushes a host file and drops it from the page cache. */
static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}


/* Waits until the card's driver has made /dev/vda. */
static int wait_vda(pid_t os)
{
	char pid[16];
	snprintf(pid, sizeof(pid), "%d", (int)os);
	char *const argv[] = { "nsenter", "-t", pid, "-U", "-m", "--", "/bin/busybox", "test", "-e",
			       "/dev/vda", NULL };
	for (int i = 0; i < 100; i++) {
		if (timed_run(argv) >= 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

static int make_file(const char *path, int mib)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = fd < 0 || ftruncate(fd, (off_t)mib << 20) < 0 ? -1 : 0;
	if (fd >= 0)
		close(fd);
	return rc;
}

static const char *fs_name(const char *path)
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

struct block_result {
	double wr, rd; /* best of ROUNDS, MB/s */
};

static void keep_best(double *best, double v)
{
	if (v < 0 || *best < 0)
		*best = -1;
	else if (v > *best)
		*best = v;
}

int micbench_block(int argc, char **argv, FILE *out)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: micbench block\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "micbench block: needs root (micd, namespaces)\n");
		return 1;
	}
	const char *tmp = getenv("TMPDIR");
	char dir[256], img[300], base[300], conf[300];
	snprintf(dir, sizeof(dir), "%s/micbench-block.XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "micbench block: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(img, sizeof(img), "%s/disk.img", dir);
	snprintf(base, sizeof(base), "%s/host.img", dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", dir);
	int rc = 1;
	struct bench_daemon b = { .pid = -1 };
	struct block_result card = { 0 }, host = { 0 };
	FILE *cf = NULL;
	if (make_file(img, DISK_MIB) < 0 || make_file(base, DISK_MIB) < 0 ||
	    !(cf = fopen(conf, "w"))) {
		fprintf(stderr, "micbench block: cannot make files in %s: %s\n", dir, strerror(errno));
		goto out;
	}
	fprintf(cf, "[mic0]\ndisk = %s\nnet = 0\n", img);
	if (fclose(cf)) {
		fprintf(stderr, "micbench block: %s: %s\n", conf, strerror(errno));
		goto out;
	}
	if (bench_daemon_start_config(&b, conf, 1) < 0 || bench_ctl(&b, "boot mic0 wait\n") < 0) {
		fprintf(stderr, "micbench block: cannot start micd and boot mic0\n");
		goto out;
	}
	pid_t os = bench_card_os_pid(&b);
	if (os <= 0 || wait_vda(os) < 0) {
		fprintf(stderr, "micbench block: the card has no /dev/vda\n");
		goto out;
	}
	/* Alternate card and host so both see the same load; best of ROUNDS. */
	for (int i = 0; i < ROUNDS; i++) {
		keep_best(&card.wr, dd(os, "/dev/vda", 1, DISK_MIB));
		keep_best(&host.wr, dd(0, base, 1, DISK_MIB));
		drop_cache(img);
		drop_cache(base);
		keep_best(&card.rd, dd(os, "/dev/vda", 0, DISK_MIB));
		keep_best(&host.rd, dd(0, base, 0, DISK_MIB));
	}
	if (card.wr <= 0 || card.rd <= 0 || host.wr <= 0 || host.rd <= 0) {
		fprintf(stderr, "micbench block: a dd failed (card %.0f/%.0f, host %.0f/%.0f MB/s)\n",
			card.wr, card.rd, host.wr, host.rd);
		goto out;
	}
	/* Clean shutdown: the card flushes and detaches its disk. */
	if (bench_ctl(&b, "shutdown mic0 wait\n") < 0)
		fprintf(stderr, "micbench block: mic0 did not shut down cleanly\n");
	fprintf(out, "### Block: sequential I/O through virtio-block (card /dev/vda) vs a host file\n\n");
	fprintf(out, "busybox dd, %d MiB in 1 MiB blocks, direct I/O (writes `oflag=direct "
		     "conv=fsync`, reads `iflag=direct` after dropping both files from the host page "
		     "cache); %d MiB image and baseline file on the same %s filesystem; wall time "
		     "around the whole command, best of %d, card and host alternating. The card's "
		     "requests reach the image through the host backend's buffered pread/pwrite "
		     "(with the kernel's readahead) and one fdatasync per flush; the baseline's "
		     "bypass the page cache.\n\n",
		DISK_MIB, DISK_MIB, fs_name(dir), ROUNDS);
	fprintf(out, "| measure | virtio-block | host file | ratio |\n|---|---|---|---|\n");
	fprintf(out, "| sequential write | %.0f MB/s | %.0f MB/s | %.2f |\n", card.wr, host.wr,
		card.wr / host.wr);
	fprintf(out, "| sequential read | %.0f MB/s | %.0f MB/s | %.2f |\n", card.rd, host.rd,
		card.rd / host.rd);
	rc = 0;
out:
	bench_daemon_stop(&b);
	unlink(img);
	unlink(base);
	unlink(conf);
	rmdir(dir);
	return rc;
}
