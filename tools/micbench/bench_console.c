/* SPDX-License-Identifier: MIT */
/*
 * micbench console: throughput and round-trip latency through a card's
 * virtio-console (card shell -> card PTY -> virtqueues -> host PTY), next to
 * a plain PTY pair on the host running the same programs, measured in the
 * same run.
 *
 * Throughput: `head -c N /dev/zero` on the far side, bytes counted on ours.
 * Latency: one key typed, its echo read back (the shell's line editor
 * echoes it), 200 times.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "bench_run.h"
#include "lib/log.h"
#include "micbench.h"

#define TP_BYTES (8u << 20)
#define LAT_KEYS 200

/* The baseline: a busybox shell on a plain PTY pair on the host. */
static int plain_pty(pid_t *child)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	char pts[64];
	if (m < 0 || grantpt(m) || unlockpt(m) || ptsname_r(m, pts, sizeof(pts)))
		return -1;
	*child = fork();
	if (*child == 0) {
		setsid();
		int s = open(pts, O_RDWR);
		ioctl(s, TIOCSCTTY, 0);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		char *const envp[] = { "PS1=host# ", "TERM=linux", "PATH=/bin:/usr/bin", NULL };
		execve("/bin/busybox", (char *const[]){ "sh", "-i", NULL }, envp);
		_exit(127);
	}
	return m;
}

static int open_console(struct bench_daemon *b)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/mic0/console", b->rundir);
	int fd = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct termios t;
	tcgetattr(fd, &t);
	cfmakeraw(&t);
	tcsetattr(fd, TCSANOW, &t);
	return fd;
}

int micbench_console(int argc, char **argv, FILE *out)
{
	struct bench_opts o;
	if (bench_opts_parse(argc, argv, "console", 1, &o))
		return 2;
	struct bench_daemon b = { .pid = -1 };
	if (bench_daemon_start(&b, 1) < 0 || bench_ctl(&b, "boot mic0 wait\n") < 0) {
		fprintf(stderr, "micbench console: cannot start micd and boot mic0\n");
		bench_daemon_stop(&b);
		return 1;
	}
	int con = open_console(&b);
	pid_t sh = -1;
	int pty = plain_pty(&sh);
	if (con < 0 || pty < 0) {
		fprintf(stderr, "micbench console: %s\n", strerror(errno));
		bench_daemon_stop(&b);
		return 1;
	}
	usleep(200000);
	/* Card and plain PTY alternate within each run, so both see the same
	 * load; [0] is the card's, [1] the baseline's. */
	struct bench_series tp[2] = { 0 }, p50[2] = { 0 }, p99[2] = { 0 }, path_cpu = { 0 };
	pid_t path[2] = { b.pid, bench_card_os_pid(&b) };
	int rc = 0;
	for (int k = 0; k < o.runs && !rc; k++) {
		for (int i = 0; i < 2 && !rc; i++) {
			int fd = i ? pty : con;
			double pm = -1, t = bench_con_stream(fd, TP_BYTES, path, i ? 0 : 2, &pm), med, pct99;
			if (pm > 0)
				series_add(&path_cpu, pm);
			if (bench_con_keys(fd, LAT_KEYS, &med, &pct99) < 0)
				med = pct99 = -1;
			if (t <= 0 || med <= 0) {
				fprintf(stderr, "micbench console: run %d (%s) failed\n", k + 1,
					i ? "plain PTY" : "card");
				rc = 1;
			}
			series_add(&tp[i], t);
			series_add(&p50[i], med);
			series_add(&p99[i], pct99);
		}
	}
	if (!rc) {
		fprintf(out, "### Console: card shell through virtio-console vs a plain host PTY\n\n");
		fprintf(out, "Throughput: `head -c %u /dev/zero` in the shell, read from the host end; "
			     "key echo: one key typed, its echo read back, %d keys per run. %s, card and "
			     "plain PTY alternating; median (min-max); the ratio is taken run by run.\n\n",
			TP_BYTES, LAT_KEYS, bench_opts_runs(&o));
		fprintf(out, "| measure | virtio-console | plain PTY pair | ratio |\n|---|---|---|---|\n");
		bench_row(out, "throughput", &tp[0], &tp[1], "MB/s", 1);
		bench_row(out, "key echo round trip, p50", &p50[0], &p50[1], "us", 1);
		bench_row(out, "key echo round trip, p99", &p99[0], &p99[1], "us", 1);
		if (path_cpu.n) {
			char f[64];
			fprintf(out, "\nCPU of the card's path (micd and the card OS) per MB of the "
				     "stream: %s ms (`micbench floor` gives the model card's).\n",
				series_fmt(&path_cpu, 1, f, sizeof(f)));
		}
		fprintf(out, "\nAims (issue 12, on the median ratio): key echo at most 1.5x: %s; "
			     "throughput at least 1.0: %s.\n",
			bench_aim(series_ratio_median(&p50[0], &p50[1]) <= 1.5),
			bench_aim(series_ratio_median(&tp[0], &tp[1]) >= 1.0));
	}
	close(con);
	close(pty);
	if (sh > 0) {
		kill(sh, SIGKILL);
		waitpid(sh, NULL, 0);
	}
	bench_daemon_stop(&b);
	return rc;
}
