/* SPDX-License-Identifier: MIT */
/*
 * micbench vblk: the same card disk served two ways, measured in the same
 * run.  Card mic0's /dev/vda is served by micd's built-in virtio-block
 * backend, card mic1's by qemu-storage-daemon over vhost-user (micd the
 * front end); both are raw image files of the same size and data on the
 * same filesystem, so the comparison is about the transport and the
 * backend, not an image format.  The job is micbench block's 4k random
 * read at QD32 (bench_fio_jobs[0]), alternating between the two cards job
 * by job, the order swapped every run.
 *
 * qemu-storage-daemon and micd are micbench's children with a parent-death
 * signal, so they go with micbench however it ends; both are stopped and the
 * temporary directory removed at the end.  Every step has a time limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_block.h"
#include "bench_daemon.h"
#include "bench_run.h"
#include "micbench.h"

#define DISK_MIB 256
#define QSD "qemu-storage-daemon"

/* Starts qemu-storage-daemon exporting the raw image img on the unix
 * socket sock, its output in log; waits until the socket exists.  pid or
 * -1. */
static pid_t qsd_start(const char *img, const char *sock, const char *log)
{
	char file[400], exp[400];
	snprintf(file, sizeof(file), "driver=file,node-name=file0,filename=%s", img);
	snprintf(exp, sizeof(exp),
		 "type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,addr.path=%s,writable=on", sock);
	pid_t parent = getpid(), p = fork();
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDONLY);
		if (fd < 0 || null < 0)
			_exit(126);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* micbench is already gone */
			_exit(126);
		execlp(QSD, QSD, "--blockdev", file, "--blockdev", "driver=raw,node-name=disk0,file=file0",
		       "--export", exp, (char *)NULL);
		_exit(127);
	}
	if (p < 0)
		return -1;
	struct stat st;
	for (int i = 0; i < 200; i++) {
		if (stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))
			return p;
		if (waitpid(p, NULL, WNOHANG) == p)
			return -1;
		usleep(25000);
	}
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
	return -1;
}

/* SIGTERM, then SIGKILL if it is still there after 3 s. */
static void qsd_stop(pid_t p)
{
	if (p <= 0)
		return;
	kill(p, SIGTERM);
	for (int i = 0; i < 60; i++) {
		if (waitpid(p, NULL, WNOHANG) == p)
			return;
		usleep(50000);
	}
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
}

int micbench_vblk(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "vblk", 3, &o))
		return 2;
	if (geteuid() != 0) {
		fprintf(stderr, "micbench vblk: needs root (micd, namespaces)\n");
		return 1;
	}
	const char *tmp = getenv("TMPDIR");
	char dir[200], bimg[256], vimg[256], sock[256], log[256], conf[256], cimg[256];
	snprintf(dir, sizeof(dir), "%s/micbench-vblk.XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "micbench vblk: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(bimg, sizeof(bimg), "%s/builtin.img", dir);
	snprintf(vimg, sizeof(vimg), "%s/vhost.img", dir);
	snprintf(sock, sizeof(sock), "%s/vhost-blk.sock", dir);
	snprintf(log, sizeof(log), "%s/qsd.log", dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", dir);
	snprintf(cimg, sizeof(cimg), "%s/card.img", dir);
	int rc = 1;
	pid_t qsd = -1;
	struct bench_daemon b = { .pid = -1 };
	struct bench_series vu = { 0 }, bi = { 0 };
	const struct bench_fio_job *job = &bench_fio_jobs[0];
	FILE *cf = NULL;
	ssize_t n = readlink("/proc/self/exe", b.bindir, sizeof(b.bindir) - 1);
	b.bindir[n > 0 ? n : 0] = 0;
	if (strrchr(b.bindir, '/'))
		*strrchr(b.bindir, '/') = 0;
	static const char *const progs[] = { BENCH_FIO, NULL };
	if (bench_make_image(&b, cimg, progs) < 0) {
		fprintf(stderr, "micbench vblk: cannot build a card image with fio\n");
		goto out;
	}
	if (bench_data_file(bimg, DISK_MIB) < 0 || bench_data_file(vimg, DISK_MIB) < 0) {
		fprintf(stderr, "micbench vblk: cannot make the images in %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if ((qsd = qsd_start(vimg, sock, log)) < 0) {
		fprintf(stderr, "micbench vblk: qemu-storage-daemon did not start (make deps installs it; "
				"its log was %s)\n", log);
		goto out;
	}
	/* fio needs a larger card than the default (see bench_block.c) */
	if (!(cf = fopen(conf, "w"))) {
		fprintf(stderr, "micbench vblk: %s: %s\n", conf, strerror(errno));
		goto out;
	}
	fprintf(cf, "[mic0]\nimage = %s\naperture_mb = 1024\ndisk = %s\nnet = 0\n", cimg, bimg);
	fprintf(cf, "[mic1]\nimage = %s\naperture_mb = 1024\ndisk_vhost_user = %s\nnet = 0\n", cimg, sock);
	if (fclose(cf)) {
		fprintf(stderr, "micbench vblk: %s: %s\n", conf, strerror(errno));
		goto out;
	}
	if (bench_daemon_start_config(&b, conf, 2) < 0 || bench_ctl(&b, "boot mic0 wait\n") < 0 ||
	    bench_ctl(&b, "boot mic1 wait\n") < 0) {
		fprintf(stderr, "micbench vblk: cannot start micd and boot mic0 and mic1\n");
		goto out;
	}
	pid_t os_bi = bench_card_os_pid_of(&b, "mic0"), os_vu = bench_card_os_pid_of(&b, "mic1");
	if (os_bi <= 0 || os_vu <= 0 || bench_wait_vda(os_bi) < 0 || bench_wait_vda(os_vu) < 0) {
		fprintf(stderr, "micbench vblk: a card has no /dev/vda\n");
		goto out;
	}
	for (int k = 0; k < o.runs; k++) {
		double v = -1, h = -1;
		for (int i = 0; i < 2; i++) {
			/* which side goes first alternates run by run */
			if ((i + k) % 2 == 0) {
				bench_drop_cache(vimg);
				v = bench_fio(os_vu, "/dev/vda", job, o.secs);
			} else {
				bench_drop_cache(bimg);
				h = bench_fio(os_bi, "/dev/vda", job, o.secs);
			}
		}
		if (v < 0 || h < 0) {
			fprintf(stderr, "micbench vblk: run %d failed (vhost-user %.0f, built-in %.0f)\n", k + 1,
				v, h);
			goto out;
		}
		series_add(&vu, v);
		series_add(&bi, h);
	}
	if (bench_ctl(&b, "shutdown mic0 wait\n") < 0 || bench_ctl(&b, "shutdown mic1 wait\n") < 0)
		fprintf(stderr, "micbench vblk: a card did not shut down cleanly\n");
	fprintf(out, "### vhost-user-blk (qemu-storage-daemon) vs the built-in virtio-block backend\n\n");
	fprintf(out, "fio %s (`micbench block`'s job: libaio, `--direct=1`, time-based %.0f s) in the "
		     "card on `/dev/vda`, two cards of one micd: one disk served by micd's built-in "
		     "backend, the other by qemu-storage-daemon over vhost-user (a raw image, "
		     "`driver=file` + `driver=raw`, its default cache mode: buffered I/O like the "
		     "built-in backend's pread). Both images %d MiB of the same data on the same %s "
		     "filesystem, dropped from the host page cache before every job. %s, the two "
		     "alternating (order swapped every run); median (min-max); the ratio "
		     "vhost-user / built-in is taken run by run.\n\n",
		job->what, o.secs, DISK_MIB, bench_fs_name(dir), bench_opts_runs(&o));
	fprintf(out, "| job | vhost-user (qemu-storage-daemon) | built-in backend | ratio |\n"
		     "|---|---|---|---|\n");
	bench_row(out, job->what, &vu, &bi, "IOPS", 0);
	rc = 0;
out:
	bench_daemon_stop(&b);
	qsd_stop(qsd);
	unlink(bimg);
	unlink(vimg);
	unlink(sock);
	unlink(log);
	unlink(conf);
	unlink(cimg);
	rmdir(dir);
	return rc;
}
