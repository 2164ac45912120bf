/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/proc.h"
#include "bench_daemon.h"

int bench_ctl_send(const struct bench_daemon *b, const char *line)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/micd.sock", b->rundir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    send(fd, line, strlen(line), MSG_NOSIGNAL) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int bench_ctl_answer(int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;
	while (n < len - 1 && (r = read(fd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	close(fd);
	return strncmp(buf, "OK", 2) ? -1 : 0;
}

int bench_ctl(const struct bench_daemon *b, const char *line)
{
	char buf[4096];
	int fd = bench_ctl_send(b, line);
	return fd < 0 ? -1 : bench_ctl_answer(fd, buf, sizeof(buf));
}

static int start(struct bench_daemon *b, const char *config, int ncards)
{
	proc_exe_dir(b->bindir, sizeof(b->bindir));
	snprintf(b->rundir, sizeof(b->rundir), "/tmp/micbench.%d", (int)getpid());
	char micd[PATH_MAX], cards[8];
	snprintf(micd, sizeof(micd), "%s/micd", b->bindir);
	snprintf(cards, sizeof(cards), "%d", ncards);
	b->pid = fork();
	if (b->pid < 0)
		return -1;
	if (b->pid == 0) {
		/* micd's log (the cards' consoles among it) only when asked */
		if (!getenv("MICBENCH_VERBOSE")) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 2);
		}
		/* a benchmark that dies takes its micd (and so its cards) along */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		/* The cards' TAPs go in a network namespace of micd's own, never
		 * the machine's, unless the caller made one for it already. */
		if (!b->keep_netns && unshare(CLONE_NEWNET) < 0)
			_exit(126);
		/* the cards' state directories (ssh host keys) are the
		 * benchmark's, removed with it, never the machine's */
		char state[sizeof(b->rundir) + 8];
		snprintf(state, sizeof(state), "%s/state", b->rundir);
		setenv("MIC_STATEDIR", state, 1);
		if (config)
			execl(micd, "micd", "--rundir", b->rundir, "--config", config, (char *)NULL);
		else
			execl(micd, "micd", "--rundir", b->rundir, "--cards", cards, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		char line[32];
		int ready = 1;
		for (int c = 0; c < ncards && ready; c++) {
			snprintf(line, sizeof(line), "wait mic%d ready 0\n", c);
			ready = bench_ctl(b, line) == 0;
		}
		if (ready)
			return 0;
		usleep(10000);
	}
	bench_daemon_stop(b);
	return -1;
}

int bench_daemon_start(struct bench_daemon *b, int ncards)
{
	return start(b, NULL, ncards);
}

int bench_daemon_start_config(struct bench_daemon *b, const char *config, int ncards)
{
	return start(b, config, ncards);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	remove(path);
	return 0;
}

void bench_daemon_stop(struct bench_daemon *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGTERM);
	waitpid(b->pid, NULL, 0);
	b->pid = -1;
	char state[sizeof(b->rundir) + 8];
	snprintf(state, sizeof(state), "%s/state", b->rundir);
	nftw(state, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	rmdir(b->rundir);
}

pid_t bench_card_os_pid_of(const struct bench_daemon *b, const char *card)
{
	char buf[8192], path[64], req[64];
	snprintf(req, sizeof(req), "status-json %s\n", card);
	int fd = bench_ctl_send(b, req);
	if (fd < 0 || bench_ctl_answer(fd, buf, sizeof(buf)) < 0)
		return -1;
	const char *p = strstr(buf, "\"firmware_pid\":");
	if (!p)
		return -1;
	int fw = atoi(p + 15);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", fw, fw);
	FILE *f = fopen(path, "r");
	int os = -1;
	if (!f || fscanf(f, "%d", &os) != 1)
		os = -1;
	if (f)
		fclose(f);
	return os;
}

pid_t bench_card_os_pid(const struct bench_daemon *b)
{
	return bench_card_os_pid_of(b, "mic0");
}

int bench_boot_config(struct bench_daemon *b, const char *name, const char *conf,
		      const char *text, int ncards)
{
	FILE *f = fopen(conf, "w");
	if (!f || fputs(text, f) < 0 || fclose(f)) {
		fprintf(stderr, "micbench %s: %s: %s\n", name, conf, strerror(errno));
		return -1;
	}
	if (bench_daemon_start_config(b, conf, ncards) < 0) {
		fprintf(stderr, "micbench %s: cannot start micd\n", name);
		return -1;
	}
	for (int i = 0; i < ncards; i++) {
		char req[32];
		snprintf(req, sizeof(req), "boot mic%d wait\n", i);
		if (bench_ctl(b, req) < 0) {
			fprintf(stderr, "micbench %s: cannot boot mic%d\n", name, i);
			return -1;
		}
	}
	return 0;
}

/* $TMPDIR/micbench-NAME.XXXXXX, made 0700 (def when TMPDIR is unset). */
int bench_tmpdir(const char *name, const char *def, char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, len, "%s/micbench-%s.XXXXXX", tmp && *tmp ? tmp : def, name);
	if (mkdtemp(dir))
		return 0;
	fprintf(stderr, "micbench %s: %s: %s\n", name, dir, strerror(errno));
	dir[0] = 0;
	return -1;
}
