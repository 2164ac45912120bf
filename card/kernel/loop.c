/* SPDX-License-Identifier: MIT */
/* The card OS's event loop (card/kernel/loop.h): epoll over watched fds,
 * a signalfd for child exits and termination, a timerfd per timer. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "card/kernel/loop.h"

struct watch {
	int fd;
	uint32_t events; /* as the owner asked */
	cos_fd_fn fn;    /* NULL once unwatched; freed when no batch holds it */
	void *ctx;
	int running;     /* its callback is on the stack */
	int muted;       /* taken off epoll while running (see loop.h) */
	struct watch *next;
};

struct child {
	pid_t pid;
	cos_exit_fn fn;
	void *ctx;
	struct child *next;
};

struct cos_timer {
	int fd;
	cos_timer_fn fn;
	void *ctx;
};

struct cos_loop {
	int epfd, sigfd;
	int depth; /* batches being dispatched (a callback may run the loop) */
	struct watch *watches;
	struct child *children;
	cos_term_fn on_term;
	void *term_ctx;
};

static void on_signal(void *ctx, uint32_t events);

int cos_loop_create(struct cos_loop **out, cos_term_fn on_term, void *term_ctx)
{
	struct cos_loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->on_term = on_term;
	l->term_ctx = term_ctx;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	l->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	int rc = l->sigfd < 0 || l->epfd < 0 ? -errno : 0;
	if (!rc)
		rc = cos_watch(l, l->sigfd, EPOLLIN, on_signal, l);
	if (rc) {
		cos_loop_destroy(l);
		return rc;
	}
	*out = l;
	return 0;
}

void cos_loop_destroy(struct cos_loop *l)
{
	if (!l)
		return;
	while (l->watches) {
		struct watch *w = l->watches;
		l->watches = w->next;
		free(w);
	}
	while (l->children) {
		struct child *k = l->children;
		l->children = k->next;
		free(k);
	}
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->sigfd >= 0)
		close(l->sigfd);
	free(l);
}

int cos_watch(struct cos_loop *l, int fd, uint32_t events, cos_fd_fn fn, void *ctx)
{
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct watch){ .fd = fd, .events = events, .fn = fn, .ctx = ctx,
			     .next = l->watches };
	struct epoll_event ev = { .events = events, .data.ptr = w };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return -errno;
	}
	l->watches = w;
	return 0;
}

static struct watch *find_watch(struct cos_loop *l, int fd)
{
	for (struct watch *w = l->watches; w; w = w->next)
		if (w->fn && w->fd == fd)
			return w;
	return NULL;
}

static int epoll_set(struct cos_loop *l, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

int cos_watch_mod(struct cos_loop *l, int fd, uint32_t events)
{
	struct watch *w = find_watch(l, fd);
	if (!w)
		return -ENOENT;
	if (events == w->events)
		return 0;
	if (!w->muted) {
		int rc = epoll_set(l, w, events);
		if (rc)
			return rc;
	}
	w->events = events; /* a muted watch gets them back when its callback ends */
	return 0;
}

void cos_unwatch(struct cos_loop *l, int fd)
{
	struct watch *w = find_watch(l, fd);
	if (!w)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
	w->fn = NULL; /* an event for it may be pending in a batch */
}

static void free_dead_watches(struct cos_loop *l)
{
	for (struct watch **pp = &l->watches; *pp;) {
		struct watch *w = *pp;
		if (w->fn || w->running) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		free(w);
	}
}

int cos_on_exit(struct cos_loop *l, pid_t pid, cos_exit_fn fn, void *ctx)
{
	struct child *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	*k = (struct child){ .pid = pid, .fn = fn, .ctx = ctx, .next = l->children };
	l->children = k;
	return 0;
}

void cos_on_exit_cancel(struct cos_loop *l, pid_t pid)
{
	for (struct child **pp = &l->children; *pp; pp = &(*pp)->next) {
		if ((*pp)->pid != pid)
			continue;
		struct child *k = *pp;
		*pp = k->next;
		free(k);
		return;
	}
}

static void on_signal(void *ctx, uint32_t events)
{
	struct cos_loop *l = ctx;
	(void)events;
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof(si)) == sizeof(si))
		if ((si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) && l->on_term)
			l->on_term(l->term_ctx, (int)si.ssi_signo);
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (struct child **pp = &l->children; *pp; pp = &(*pp)->next) {
			struct child *k = *pp;
			if (k->pid != pid)
				continue;
			*pp = k->next;
			k->fn(k->ctx, pid, status);
			free(k);
			break;
		}
	}
}

static void on_timer(void *ctx, uint32_t events)
{
	struct cos_timer *t = ctx;
	uint64_t n;
	(void)events;
	if (read(t->fd, &n, sizeof(n)) == sizeof(n))
		t->fn(t->ctx);
}

struct cos_timer *cos_timer_start(struct cos_loop *l, unsigned first_ms, unsigned period_ms,
				  cos_timer_fn fn, void *ctx)
{
	struct cos_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	*t = (struct cos_timer){ .fn = fn, .ctx = ctx };
	t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	first_ms = first_ms ? first_ms : 1; /* 0 would disarm it */
	struct itimerspec it = {
		.it_interval = { period_ms / 1000, (long)(period_ms % 1000) * 1000000 },
		.it_value = { first_ms / 1000, (long)(first_ms % 1000) * 1000000 },
	};
	if (t->fd < 0 || timerfd_settime(t->fd, 0, &it, NULL) < 0 ||
	    cos_watch(l, t->fd, EPOLLIN, on_timer, t)) {
		if (t->fd >= 0)
			close(t->fd);
		free(t);
		return NULL;
	}
	return t;
}

void cos_timer_stop(struct cos_loop *l, struct cos_timer *t)
{
	if (!t)
		return;
	cos_unwatch(l, t->fd);
	close(t->fd);
	free(t);
}

static void dispatch(struct cos_loop *l, struct watch *w, uint32_t events)
{
	if (!w->fn)
		return;
	if (w->running) {
		/* level-triggered: it would wake every nested batch until its
		 * own callback returns and serves it */
		if (!w->muted && epoll_set(l, w, 0) == 0)
			w->muted = 1;
		return;
	}
	w->running = 1;
	w->fn(w->ctx, events);
	w->running = 0;
	if (w->muted) {
		w->muted = 0;
		if (w->fn)
			epoll_set(l, w, w->events);
	}
}

void cos_loop_run_once(struct cos_loop *l, int timeout_ms)
{
	struct epoll_event ev[16];
	int n = epoll_wait(l->epfd, ev, 16, timeout_ms);
	l->depth++;
	for (int i = 0; i < n; i++)
		dispatch(l, ev[i].data.ptr, ev[i].events);
	if (--l->depth == 0)
		free_dead_watches(l); /* no outer batch holds one any more */
}

int cos_loop_run_until(struct cos_loop *l, int (*done)(void *ctx), void *ctx, int tick_ms)
{
	int rc;
	while (!(rc = done(ctx)))
		cos_loop_run_once(l, tick_ms);
	return rc;
}
