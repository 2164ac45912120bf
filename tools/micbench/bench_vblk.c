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
 * micd is micbench's child and starts qemu-storage-daemon itself
 * (disk_vhost_user_cmd), each with a parent-death signal: if micbench dies,
 * micd shuts its cards down (their disks still served) and the backend goes
 * with micd.  At the end micd is stopped and the temporary directory
 * removed.  Every step has a time limit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/proc.h"
#include "bench_block.h"
#include "bench_daemon.h"
#include "bench_run.h"
#include "micbench.h"

#define DISK_MIB 256
#define QSD "qemu-storage-daemon"

/* The script micd runs as mic1's backend (disk_vhost_user_cmd; the socket
 * in $MIC_VHOST_SOCKET): qemu-storage-daemon exporting the raw image img.
 * A script, as the command line is longer than a config line may be. */
static int qsd_script(const char *path, const char *img)
{
	if (strchr(img, '\''))
		return -1;
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "#!/bin/sh\nexec " QSD " --blockdev 'driver=file,node-name=file0,filename=%s' \\\n"
		   "    --blockdev driver=raw,node-name=disk0,file=file0 \\\n"
		   "    --export \"type=vhost-user-blk,id=exp0,node-name=disk0,addr.type=unix,"
		   "addr.path=$MIC_VHOST_SOCKET,writable=on\"\n",
		img);
	return fclose(f) || chmod(path, 0700) ? -1 : 0;
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
	char dir[200], bimg[256], vimg[256], sock[256], conf[256], cimg[256], qcmd[256];
	if (bench_tmpdir("vblk", "/var/tmp", dir, sizeof(dir)) < 0)
		return 1;
	snprintf(bimg, sizeof(bimg), "%s/builtin.img", dir);
	snprintf(vimg, sizeof(vimg), "%s/vhost.img", dir);
	snprintf(sock, sizeof(sock), "%s/vhost-blk.sock", dir);
	snprintf(conf, sizeof(conf), "%s/micd.conf", dir);
	snprintf(cimg, sizeof(cimg), "%s/card.img", dir);
	snprintf(qcmd, sizeof(qcmd), "%s/qsd.sh", dir);
	int rc = 1;
	struct bench_daemon b = { .pid = -1 };
	struct bench_series vu = { 0 }, bi = { 0 };
	const struct bench_fio_job *job = &bench_fio_jobs[0];
	FILE *cf = NULL;
	proc_exe_dir(b.bindir, sizeof(b.bindir));
	static const char *const progs[] = { BENCH_FIO, NULL };
	if (bench_make_image(&b, cimg, progs) < 0) {
		fprintf(stderr, "micbench vblk: cannot build a card image with fio\n");
		goto out;
	}
	if (bench_data_file(bimg, DISK_MIB) < 0 || bench_data_file(vimg, DISK_MIB) < 0) {
		fprintf(stderr, "micbench vblk: cannot make the images in %s: %s\n", dir, strerror(errno));
		goto out;
	}
	if (access("/usr/bin/" QSD, X_OK) < 0 || qsd_script(qcmd, vimg) < 0) {
		fprintf(stderr, "micbench vblk: no /usr/bin/" QSD " (make deps installs it), or no "
				"script %s\n", qcmd);
		goto out;
	}
	/* fio needs a larger card than the default (see bench_block.c) */
	if (!(cf = fopen(conf, "w"))) {
		fprintf(stderr, "micbench vblk: %s: %s\n", conf, strerror(errno));
		goto out;
	}
	fprintf(cf, "[mic0]\nimage = %s\naperture_mb = 1024\ndisk = %s\nnet = 0\n", cimg, bimg);
	fprintf(cf, "[mic1]\nimage = %s\naperture_mb = 1024\ndisk_vhost_user = %s\n"
		    "disk_vhost_user_cmd = %s\nnet = 0\n", cimg, sock, qcmd);
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
	unlink(bimg);
	unlink(vimg);
	unlink(sock);
	unlink(conf);
	unlink(cimg);
	unlink(qcmd);
	rmdir(dir);
	return rc;
}
