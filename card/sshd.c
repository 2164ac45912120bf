/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "card/sshd.h"

#define DROPBEAR "/usr/sbin/dropbear"
#define RESTART_MS 1000

struct cos_sshd {
	struct cos *os;
	/* dropbear's messages go to the card log, not to the console the
	 * card OS's own log is copied to: a user's shell is no place for them */
	struct cardlog log;
	pid_t pid;
	/* one pipe for every server started: sessions of a server that died
	 * may still write to it */
	int logfd, logw;
	char line[400];
	size_t len;
	struct cos_timer *retry;
};

static void start(struct cos_sshd *s);

static void flush_line(struct cos_sshd *s)
{
	if (s->len)
		cardlog(&s->log, "%.*s", (int)s->len, s->line);
	s->len = 0;
}

static void on_log(void *ctx, uint32_t events)
{
	struct cos_sshd *s = ctx;
	char buf[1024];
	ssize_t n;
	(void)events;
	while ((n = read(s->logfd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' || s->len == sizeof(s->line))
				flush_line(s);
			if (buf[i] != '\n')
				s->line[s->len++] = buf[i];
		}
}

static void on_retry(void *ctx)
{
	struct cos_sshd *s = ctx;
	cos_timer_stop(s->os->loop, s->retry);
	s->retry = NULL;
	if (!s->os->halting)
		start(s);
}

static void on_server_exit(void *ctx, pid_t pid, int status)
{
	struct cos_sshd *s = ctx;
	(void)pid;
	s->pid = 0;
	if (s->os->halting)
		return;
	cardlog(&s->os->log, "sshd exited (status %#x): restarting in %d ms", status, RESTART_MS);
	/* a server that cannot start must not spin the card's one loop */
	s->retry = cos_timer_start(s->os->loop, RESTART_MS, RESTART_MS, on_retry, s);
}

static void start(struct cos_sshd *s)
{
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		if (null < 0 || dup2(null, 0) < 0 || dup2(s->logw, 1) < 0 || dup2(s->logw, 2) < 0)
			_exit(127);
		/* Nothing of the card runtime: no hardware fd, doorbell or FUSE
		 * session reaches the server or the shells it starts. */
		syscall(SYS_close_range, 3, ~0u, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* -F -E: in the foreground, messages on stderr (the card log);
		 * -s: keys only, the card's root has no password */
		char *const argv[] = { "dropbear", "-F", "-E", "-s", "-r", COS_SSHD_HOSTKEY, "-p", "22",
				       "-P", "/run/dropbear.pid", NULL };
		char *const envp[] = { "PATH=/bin:/sbin:/usr/bin:/usr/sbin", NULL };
		execve(DROPBEAR, argv, envp);
		_exit(127);
	}
	if (pid < 0) {
		cardlog(&s->os->log, "sshd: fork: %s", strerror(errno));
		return;
	}
	s->pid = pid;
	cos_on_exit(s->os->loop, pid, on_server_exit, s);
	cardlog(&s->os->log, "sshd: dropbear on port 22 (pid %d)", pid);
}

void cos_sshd_start(struct cos *c)
{
	if (access(DROPBEAR, X_OK) < 0)
		return; /* an image without ssh */
	if (access(COS_SSHD_HOSTKEY, R_OK) < 0) {
		cardlog(&c->log, "sshd: no host key from the host (%s): not started",
			COS_SSHD_HOSTKEY);
		return;
	}
	struct cos_sshd *s = calloc(1, sizeof(*s));
	if (!s)
		return;
	s->os = c;
	int p[2] = { -1, -1 };
	if (pipe2(p, O_CLOEXEC) < 0 || fcntl(p[0], F_SETFL, O_NONBLOCK) < 0 ||
	    cos_watch(c->loop, p[0], EPOLLIN, on_log, s) < 0) {
		cardlog(&c->log, "sshd: log pipe: %s", strerror(errno));
		if (p[0] >= 0) {
			close(p[0]);
			close(p[1]);
		}
		free(s);
		return;
	}
	s->logfd = p[0];
	s->logw = p[1];
	cardlog_open(&s->log, &c->hw, c->bp.log_addr, c->bp.log_size, "sshd");
	c->sshd = s;
	start(s);
}

void cos_sshd_stop(struct cos *c)
{
	struct cos_sshd *s = c->sshd;
	if (!s)
		return;
	if (s->retry)
		cos_timer_stop(c->loop, s->retry);
	if (s->pid > 0) {
		cos_on_exit_cancel(c->loop, s->pid);
		kill(s->pid, SIGKILL);
	}
	on_log(s, EPOLLIN);
	flush_line(s);
	cos_unwatch(c->loop, s->logfd);
	close(s->logfd);
	close(s->logw);
	free(s);
	c->sshd = NULL;
}
