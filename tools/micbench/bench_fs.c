/* SPDX-License-Identifier: MIT */
/*
 * micbench fs: a host directory shared with the card through virtio-fs
 * (card process -> the card's FUSE mount -> its driver -> virtqueues ->
 * virtiofsd -> the directory), next to the same work done on the host in
 * a directory of the same filesystem, measured in the same run.
 *
 * Both sides run the same busybox programs; the card's run in the card
 * OS's user, mount and PID namespaces (nsenter).  Sequential: dd of 64 MiB
 * in 1 MiB blocks, writes ended by fsync, reads with O_DIRECT after both
 * files were dropped from the host page cache (so the card's kernel does
 * not serve the read from its own cache of the FUSE file; virtiofsd reads
 * through the host's page cache, with its readahead).  Metadata: a busybox
 * shell creates N small files, `ls -l` stats them all, `rm -r` removes
 * them.  Best of ROUNDS, card and host alternating.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "lib/clock.h"
#include "micbench.h"

#define CARD_ROOT (1u << 30)

#define FILE_MIB 64
#define NFILES 500
#define ROUNDS 3
#define RUN_TIMEOUT_S 60

/* Runs busybox argv on the host, or (os > 0) in the card OS's namespaces;
 * the wall time in seconds, or -1 if it failed. */
static double run_bb(pid_t os, char *const args[])
{
	char pid[16];
	char *argv[24];
	int n = 0;
	snprintf(pid, sizeof(pid), "%d", (int)os);
	if (os > 0) {
		char *pre[] = { "nsenter", "-t", pid, "-U", "-m", "-p", "--" };
		for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
			argv[n++] = pre[i];
	}
	argv[n++] = "/bin/busybox";
	for (int i = 0; args[i] && n < 23; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	uint64_t t0 = now_ns();
	pid_t p = fork();
	if (p < 0)
		return -1;
	if (p == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		alarm(RUN_TIMEOUT_S);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	if (waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return (double)(now_ns() - t0) / 1e9;
}

static void drop_cache(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	fdatasync(fd);
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
	close(fd);
}

struct fs_result {
	double wr, rd;          /* MB/s, best */
	double create, stat, rm; /* seconds for NFILES, best */
};

static void best_rate(double *b, double v)
{
	if (v < 0 || *b < 0)
		*b = -1;
	else if (v > *b)
		*b = v;
}

static void best_time(double *b, double v)
{
	if (v < 0 || *b < 0)
		*b = -1;
	else if (*b == 0 || v < *b)
		*b = v;
}

/* One round in dir (the card's /mnt, or the host's baseline directory);
 * hostfile: the same file as the host sees it, to drop from its cache. */
static void round_in(pid_t os, const char *dir, const char *hostfile, struct fs_result *r)
{
	char of[300], iff[300], count[32], script[800], mdir[260];
	snprintf(of, sizeof(of), "of=%s/seq", dir);
	snprintf(iff, sizeof(iff), "if=%s/seq", dir);
	snprintf(count, sizeof(count), "count=%d", FILE_MIB);
	char *const wr[] = { "dd", "if=/dev/zero", of, "bs=1M", count, "conv=fsync", NULL };
	double s = run_bb(os, wr);
	best_rate(&r->wr, s > 0 ? FILE_MIB * 1048576.0 / s / 1e6 : -1);
	drop_cache(hostfile);
	char *const rd[] = { "dd", iff, "of=/dev/null", "bs=1M", "iflag=direct", NULL };
	s = run_bb(os, rd);
	best_rate(&r->rd, s > 0 ? FILE_MIB * 1048576.0 / s / 1e6 : -1);
	snprintf(mdir, sizeof(mdir), "%s/meta", dir);
	snprintf(script, sizeof(script),
		 "mkdir %s && cd %s && i=0 && while [ $i -lt %d ]; do echo x > f$i; i=$((i+1)); done",
		 mdir, mdir, NFILES);
	char *const mk[] = { "sh", "-c", script, NULL };
	best_time(&r->create, run_bb(os, mk));
	char *const ls[] = { "ls", "-l", mdir, NULL };
	best_time(&r->stat, run_bb(os, ls));
	char *const rm[] = { "rm", "-r", mdir, NULL };
	best_time(&r->rm, run_bb(os, rm));
	unlink(hostfile);
}

int micbench_fs(int argc, char **argv, FILE *out)
{
	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: micbench fs\n");
		return 2;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "micbench fs: needs root (micd, virtiofsd, namespaces)\n");
		return 1;
	}
	char dir[200], share[240], host[240], conf[240], sfile[260], hfile[260];
	if (bench_tmpdir("fs", "/var/tmp", dir, sizeof(dir)) < 0)
		return 1;
	snprintf(share, sizeof(share), "%s/share", dir);
	snprintf(host, sizeof(host), "%s/host", dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", dir);
	snprintf(sfile, sizeof(sfile), "%s/seq", share);
	snprintf(hfile, sizeof(hfile), "%s/seq", host);
	int rc = 1;
	struct bench_daemon b = { .pid = -1 };
	struct fs_result card = { 0 }, base = { 0 };
	/* virtiofsd is the card's root, host uid CARD_ROOT (named here, not
	 * left to micd's default): it reaches the share through dir and owns
	 * it (docs/architecture.md 3.22). */
	if (chmod(dir, 0711) < 0 || mkdir(share, 0755) < 0 ||
	    chown(share, CARD_ROOT, CARD_ROOT) < 0 || mkdir(host, 0755) < 0) {
		fprintf(stderr, "micbench fs: cannot make %s: %s\n", dir, strerror(errno));
		goto out;
	}
	char text[400];
	snprintf(text, sizeof(text), "[mic0]\nfs = bench:%s\nidmap_base = %u\nnet = 0\n", share,
		 CARD_ROOT);
	if (bench_boot_config(&b, "fs", conf, text, 1) < 0)
		goto out;
	pid_t os = bench_card_os_pid(&b);
	char *const mnt[] = { "sh", "-lc", "mount -t virtiofs bench /mnt", NULL };
	if (os <= 0 || run_bb(os, mnt) < 0) {
		fprintf(stderr, "micbench fs: the card cannot mount the share\n");
		goto out;
	}
	for (int i = 0; i < ROUNDS; i++) {
		round_in(os, "/mnt", sfile, &card);
		round_in(0, host, hfile, &base);
	}
	if (card.wr <= 0 || card.rd <= 0 || card.create <= 0 || card.stat <= 0 || card.rm <= 0 ||
	    base.wr <= 0 || base.rd <= 0 || base.create <= 0 || base.stat <= 0 || base.rm <= 0) {
		fprintf(stderr, "micbench fs: a run failed\n");
		goto out;
	}
	char *const umnt[] = { "sh", "-lc", "umount /mnt", NULL };
	run_bb(os, umnt);
	bench_ctl(&b, "shutdown mic0 wait\n");
	fprintf(out, "### virtio-fs: a host directory in the card (virtiofsd) vs the same directory on the host\n\n");
	fprintf(out, "busybox on both sides. Sequential: `dd` of %d MiB in 1 MiB blocks (writes "
		     "`conv=fsync`, reads `iflag=direct` after dropping the file from the host page "
		     "cache). Metadata: a shell loop creates %d one-line files, `ls -l` stats them, "
		     "`rm -r` removes them. Best of %d, card and host alternating; the card's share "
		     "and the host's directory on the same filesystem. Ratio: host time / card time "
		     "(1.00 = as fast as the host).\n\n",
		FILE_MIB, NFILES, ROUNDS);
	fprintf(out, "| measure | virtio-fs | host | ratio |\n|---|---|---|---|\n");
	fprintf(out, "| sequential write | %.0f MB/s | %.0f MB/s | %.2f |\n", card.wr, base.wr,
		card.wr / base.wr);
	fprintf(out, "| sequential read | %.0f MB/s | %.0f MB/s | %.2f |\n", card.rd, base.rd,
		card.rd / base.rd);
	fprintf(out, "| create %d files | %.0f ms | %.0f ms | %.2f |\n", NFILES, card.create * 1e3,
		base.create * 1e3, base.create / card.create);
	fprintf(out, "| stat %d files (`ls -l`) | %.0f ms | %.0f ms | %.2f |\n", NFILES,
		card.stat * 1e3, base.stat * 1e3, base.stat / card.stat);
	fprintf(out, "| remove %d files | %.0f ms | %.0f ms | %.2f |\n", NFILES, card.rm * 1e3,
		base.rm * 1e3, base.rm / card.rm);
	rc = 0;
out:
	bench_daemon_stop(&b);
	unlink(sfile);
	unlink(hfile);
	unlink(conf);
	rmdir(share);
	rmdir(host);
	rmdir(dir);
	return rc;
}
