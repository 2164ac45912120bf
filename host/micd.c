/* SPDX-License-Identifier: MIT */
/*
 * micd: the host daemon.  Runs the host driver of every configured card in
 * one epoll loop and serves micctl on a unix socket in the run directory.
 * A request is one line; the answer is "OK" or "ERR <exit code>" on the
 * first line, then text, then the connection closes.  Requests that wait
 * (boot, suspend, wait...) are answered when their condition is met.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "host/backends/backends.h"
#include "host/card.h"
#include "host/config.h"
#include "host/stats.h"
#include "lib/json.h"
#include "lib/log.h"

/* Each waiting request holds a connection: bounded, so clients cannot use
 * up the daemon's file descriptors. */
#define MICD_MAX_WAITERS 64
/* The longest a client may ask "wait" to wait: one day. */
#define MICD_MAX_WAIT_MS (24 * 3600 * 1000)
/* Connections whose request line is still arriving, and how long it may
 * take to arrive: a slow client is read from the epoll loop, never waited
 * for. */
#define MICD_MAX_CLIENTS 64
#define MICD_REQUEST_MS 2000
#define MICD_REQUEST_MAX 512

/* A connection whose request line has not arrived yet. */
struct client {
	struct host_watch tag;  /* first: epoll's data.ptr */
	struct micd *d;
	struct client *next;
	int fd;
	size_t len;
	uint64_t deadline_ns;
	char buf[MICD_REQUEST_MAX];
};

enum wait_kind { W_STATE, W_BOOT, W_SHUTDOWN, W_RESET, W_SUSPEND, W_RESUME };

struct waiter {
	struct waiter *next;
	int fd;
	enum wait_kind kind;
	struct mic_card *card; /* NULL for suspend/resume: all cards */
	enum card_state target;
	uint64_t deadline_ns;
	/* The verb waits for a transition under way before it starts (boot of
	 * a card still resetting): docs/architecture.md 3.17. */
	int pending;
	unsigned wait_ms;
};

struct micd {
	struct micd_cfg cfg;
	int epfd;
	int listen_fd;
	int sig_fd;
	struct mic_card cards[MICD_MAX_CARDS];
	int ncards;
	struct host_watch tag_listen, tag_signal;
	struct waiter *waiters;
	struct client *clients;
	unsigned nclients;
	char sock_path[PATH_MAX + 16];
	int in_waiters, waiters_again; /* waiters_run is not re-entered */
	int quit;
	int stopping;           /* SIGTERM: card OSes are being shut down */
	uint64_t stop_deadline_ns;
};

static int watch_ptr(struct micd *d, int fd, struct host_watch *tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = tag };
	return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* --- replies --- */

struct reply {
	char *buf;
	size_t len, cap;
};

static void rprintf(struct reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rprintf(struct reply *r, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(r->buf ? r->buf + r->len : NULL, r->buf ? r->cap - r->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (r->buf && r->len + (size_t)n < r->cap) {
			r->len += (size_t)n;
			return;
		}
		size_t cap = r->cap ? r->cap * 2 : 4096;
		while (cap < r->len + (size_t)n + 1)
			cap *= 2;
		char *b = realloc(r->buf, cap);
		if (!b)
			return;
		r->buf = b;
		r->cap = cap;
	}
}

/* Replies are written from the main loop: a client that reads slowly (or
 * not at all) gets at most this much of the daemon's time per write, then
 * its reply is cut short. */
#define MICD_REPLY_MS 1000

static void send_all(int fd, const char *p, size_t len)
{
	uint64_t deadline = now_ns() + (uint64_t)MICD_REPLY_MS * 1000000u;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0 || errno != EAGAIN)
			return; /* client went away; nothing to do */
		uint64_t now = now_ns();
		if (now >= deadline)
			return;
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1);
	}
}

static void answer(int fd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void answer(int fd, int code, const char *fmt, ...)
{
	char buf[1024];
	int n = code ? snprintf(buf, sizeof(buf), "ERR %d\n", code) : snprintf(buf, sizeof(buf), "OK\n");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = strlen(buf);
	if (len && buf[len - 1] != '\n' && len < sizeof(buf) - 1)
		buf[len++] = '\n';
	send_all(fd, buf, len);
	close(fd);
}

/* --- status --- */

static void status_text(struct micd *d, struct mic_card *only, struct reply *r)
{
	uint64_t now = now_ns();
	for (int i = 0; i < d->ncards; i++) {
		struct mic_card *c = &d->cards[i];
		if (only && c != only)
			continue;
		rprintf(r, "%s: %s (%.1f s)", c->cfg.name, card_state_name(c->state),
			(double)(now - c->state_since_ns) / 1e9);
		if (c->state == CARD_ONLINE)
			rprintf(r, ", booted in %.1f ms", c->last_boot_ms);
		if (c->last_error[0])
			rprintf(r, ", last error: %s", c->last_error);
		if (c->link_error[0])
			rprintf(r, ", link error: %s", c->link_error);
		for (int k = 0; k < c->nvdev; k++) {
			char why[160];
			const char *st = vdev_state_name(vdev_state(c->vdev[k], why, sizeof(why)));
			rprintf(r, "%s%s %s%s%s", k ? ", " : "; ", c->vdev[k]->ops->name, st,
				why[0] ? ": " : "", why);
		}
		rprintf(r, "\n");
	}
}

static void put_reply(void *r, const char *p, size_t n)
{
	rprintf(r, "%.*s", (int)n, p);
}

static void json_str(struct reply *r, const char *s)
{
	json_quote(s, put_reply, r);
}

static void status_json(struct micd *d, struct mic_card *only, struct reply *r)
{
	uint64_t now = now_ns();
	int first = 1;
	rprintf(r, "{\"cards\":[");
	for (int i = 0; i < d->ncards; i++) {
		struct mic_card *c = &d->cards[i];
		if (only && c != only)
			continue;
		rprintf(r, "%s{\"name\":", first ? "" : ",");
		first = 0;
		json_str(r, c->cfg.name);
		rprintf(r, ",\"state\":\"%s\",\"state_ms\":%.1f,\"boots\":%u,\"crashes\":%u,"
			   "\"last_boot_ms\":%.3f,\"post\":%u,\"firmware_pid\":%d,\"last_error\":",
			card_state_name(c->state), (double)(now - c->state_since_ns) / 1e6, c->boots,
			c->crashes, c->last_boot_ms, card_post_code(c), (int)card_firmware_pid(c));
		json_str(r, c->last_error);
		rprintf(r, ",\"link_error\":");
		json_str(r, c->link_error);
		rprintf(r, ",\"image\":");
		json_str(r, c->cfg.image);
		rprintf(r, ",\"download_ms\":%.3f,\"download_dma\":%s,\"devices\":[", c->last_download_ms,
			c->last_download_dma ? "true" : "false");
		for (int k = 0; k < c->nvdev; k++) {
			char why[160];
			const char *st = vdev_state_name(vdev_state(c->vdev[k], why, sizeof(why)));
			rprintf(r, "%s{\"type\":\"%s\",\"state\":\"%s\",\"reason\":", k ? "," : "",
				c->vdev[k]->ops->name, st);
			json_str(r, why);
			rprintf(r, "}");
		}
		rprintf(r, "]}");
	}
	rprintf(r, "]}\n");
}

/* --- waiters --- */

/* A client that closed its connection (micctl interrupted) does not need
 * an answer; POLLHUP, not POLLRDHUP: a half-close still wants one. */
static int client_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = 0 };
	return poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Returns 1 done ok, -1 failed, 0 keep waiting. */
static int waiter_check(struct micd *d, struct waiter *w)
{
	struct mic_card *c = w->card;
	switch (w->kind) {
	case W_STATE:
		return c->state == w->target;
	case W_BOOT:
		return c->state == CARD_ONLINE ? 1 : c->state == CARD_BOOTING ? 0 : -1;
	case W_SHUTDOWN:
		/* A card the host had to reset did not shut down cleanly. */
		if (c->state == CARD_READY)
			return c->shutdown_forced ? -1 : 1;
		return (c->state == CARD_SHUTTING_DOWN || c->state == CARD_RESETTING) ? 0 : -1;
	case W_RESET:
		return c->state == CARD_READY ? 1 : c->state == CARD_RESETTING ? 0 : -1;
	case W_SUSPEND:
	case W_RESUME:
		for (int i = 0; i < d->ncards; i++) {
			struct mic_card *k = &d->cards[i];
			if (!k->resume_boot)
				continue;
			enum card_state want = w->kind == W_SUSPEND ? CARD_SUSPENDED : CARD_ONLINE;
			int moving = w->kind == W_SUSPEND ?
					     (k->state == CARD_SHUTTING_DOWN || k->state == CARD_RESETTING) :
					     k->state == CARD_BOOTING;
			if (k->state != want)
				return moving ? 0 : -1;
		}
		return 1;
	}
	return -1;
}

static void waiter_finish(struct micd *d, struct waiter *w, int result)
{
	struct mic_card *c = w->card;
	if (w->kind == W_SUSPEND || w->kind == W_RESUME) {
		struct reply r = { 0 };
		status_text(d, NULL, &r);
		if (result > 0) {
			answer(w->fd, 0, "%s%s", w->kind == W_SUSPEND ? "suspended\n" : "resumed\n",
			       r.buf ? r.buf : "");
			if (w->kind == W_RESUME)
				for (int i = 0; i < d->ncards; i++)
					d->cards[i].resume_boot = 0;
		} else {
			answer(w->fd, 1, "%s%s", result < 0 ? "some cards failed:\n" : "timed out:\n",
			       r.buf ? r.buf : "");
		}
		free(r.buf);
		return;
	}
	if (result > 0)
		answer(w->fd, 0, "%s: %s", c->cfg.name, card_state_name(c->state));
	else if (result < 0)
		answer(w->fd, 1, "%s is %s%s%s", c->cfg.name, card_state_name(c->state),
		       c->last_error[0] ? ": " : "", c->last_error);
	else
		answer(w->fd, 1, "timed out: %s is %s", c->cfg.name, card_state_name(c->state));
}

/* Whether a waiting verb can start: 1 now, 0 not yet (the transition under
 * way leads where it can), -1 never (it failed, or leads elsewhere). */
static int verb_wants(const struct mic_card *c, enum card_state need)
{
	if (c->state == need)
		return 1;
	return card_heading(c) == need ? 0 : -1;
}

static int pending_check(struct micd *d, const struct waiter *w)
{
	switch (w->kind) {
	case W_BOOT:
		return verb_wants(w->card, CARD_READY);
	case W_SHUTDOWN:
		return verb_wants(w->card, CARD_ONLINE);
	case W_RESUME:
		/* Resume boots suspended cards: an OSPM suspend still under
		 * way is waited for. */
		for (int i = 0; i < d->ncards; i++)
			if (d->cards[i].state != CARD_SUSPENDED &&
			    card_heading(&d->cards[i]) == CARD_SUSPENDED)
				return 0;
		return 1;
	default:
		return 1;
	}
}

/* The longest the transitions under way on c (NULL: on any card) may take
 * before the cards' own timers end them, and a second to hear of the end:
 * how long a verb waits for a transition, its own or one before it. */
static unsigned transition_wait_ms(struct micd *d, const struct mic_card *c)
{
	unsigned ms = 0;
	for (int i = 0; i < d->ncards; i++)
		if (!c || c == &d->cards[i]) {
			unsigned t = card_transition_limit_ms(&d->cards[i]);
			ms = t > ms ? t : ms;
		}
	return ms + 1000;
}

static void resume_start(struct micd *d);

/* Starts verb k (boot, shutdown; resume: of every card suspended by OSPM);
 * -1 with the reason in err if the card cannot run it. */
static int start_verb(struct micd *d, enum wait_kind k, struct mic_card *c, char *err,
		      size_t errlen)
{
	switch (k) {
	case W_BOOT:
		return card_boot(c, err, errlen);
	case W_SHUTDOWN:
		return card_shutdown(c, err, errlen);
	case W_RESUME:
		resume_start(d);
		return 0;
	default:
		return 0;
	}
}

/* Starts a waiting verb; it then waits for its own end like any other.
 * 0 started, -1 refused (answered). */
static int pending_start(struct micd *d, struct waiter *w)
{
	struct mic_card *c = w->card;
	char err[256] = "";
	if (start_verb(d, w->kind, c, err, sizeof(err)) < 0) {
		/* The card ended somewhere the verb cannot run from: say
		 * where, and why it went there. */
		answer(w->fd, 1, "%s%s%s", err, c->last_error[0] ? ": " : "", c->last_error);
		return -1;
	}
	w->pending = 0;
	w->deadline_ns = now_ns() + (uint64_t)transition_wait_ms(d, c) * 1000000u;
	return 0;
}

/* Answers the waiters whose condition is met or whose time is up, and
 * starts the waiting verbs whose card got where they can run.  Called on
 * every state change; a verb started here changes state again, so the
 * pass is repeated rather than re-entered. */
static void waiters_run(struct micd *d, int timed_out_only)
{
	if (d->in_waiters) {
		d->waiters_again = 1;
		return;
	}
	d->in_waiters = 1;
	do {
		d->waiters_again = 0;
		uint64_t now = now_ns();
		/* Verbs under way first: the state their card reached is
		 * theirs before a waiting verb moves the card on. */
		for (struct waiter **pp = &d->waiters; *pp;) {
			struct waiter *w = *pp;
			int res = w->pending ? 0 : timed_out_only ? 0 : waiter_check(d, w);
			if (w->pending || (res == 0 && now < w->deadline_ns)) {
				pp = &w->next;
				continue;
			}
			*pp = w->next;
			waiter_finish(d, w, res);
			free(w);
		}
		for (struct waiter **pp = &d->waiters; *pp;) {
			struct waiter *w = *pp;
			int res = w->pending && !timed_out_only ? pending_check(d, w) : 0;
			if (!w->pending || (res == 0 && now < w->deadline_ns && !d->stopping)) {
				pp = &w->next;
				continue;
			}
			*pp = w->next;
			if (client_gone(w->fd)) {
				/* micctl interrupted while waiting: the verb is
				 * not wanted any more. */
				close(w->fd);
			} else if (d->stopping) {
				answer(w->fd, 1, "micd is stopping");
			} else if (res == 0) {
				answer(w->fd, 1, "timed out after %.1f s: %s is still %s",
				       w->wait_ms / 1000.0, w->card ? w->card->cfg.name : "a card",
				       w->card ? card_state_name(w->card->state) : "suspending");
			} else if (pending_start(d, w) == 0) {
				w->next = *pp;
				*pp = w;
				pp = &w->next;
				d->waiters_again = 1;
				continue;
			}
			free(w);
		}
	} while (d->waiters_again);
	d->in_waiters = 0;
}

static void on_card_change(void *ctx, struct mic_card *c)
{
	(void)c;
	waiters_run(ctx, 0);
}

/* Whether another waiter fits; drops the waiters whose client left first.
 * Checked before a command starts, so a request is never begun and then
 * reported as refused. */
static int waiter_room(struct micd *d)
{
	unsigned n = 0;
	for (struct waiter **pp = &d->waiters; *pp;) {
		struct waiter *w = *pp;
		if (client_gone(w->fd)) {
			*pp = w->next;
			close(w->fd);
			free(w);
			continue;
		}
		n++;
		pp = &w->next;
	}
	return n < MICD_MAX_WAITERS;
}

static void add_waiter(struct micd *d, int fd, enum wait_kind k, struct mic_card *c,
		       enum card_state target, unsigned timeout_ms)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w) {
		answer(fd, 1, "out of memory");
		return;
	}
	*w = (struct waiter){ .fd = fd, .kind = k, .card = c, .target = target,
			      .deadline_ns = now_ns() + (uint64_t)timeout_ms * 1000000u };
	int res = waiter_check(d, w);
	if (res) {
		waiter_finish(d, w, res);
		free(w);
		return;
	}
	w->next = d->waiters;
	d->waiters = w;
}

static int next_timeout_ms(struct micd *d)
{
	if (!d->waiters && !d->clients && !d->stopping)
		return -1;
	uint64_t now = now_ns(), min = d->stopping ? d->stop_deadline_ns : UINT64_MAX;
	for (struct waiter *w = d->waiters; w; w = w->next)
		if (w->deadline_ns < min)
			min = w->deadline_ns;
	for (struct client *cl = d->clients; cl; cl = cl->next)
		if (cl->deadline_ns < min)
			min = cl->deadline_ns;
	if (min <= now)
		return 0;
	uint64_t ms = (min - now) / 1000000u + 1;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* --- commands --- */

static struct mic_card *find_card(struct micd *d, const char *name)
{
	for (int i = 0; i < d->ncards; i++)
		if (name && !strcmp(d->cards[i].cfg.name, name))
			return &d->cards[i];
	return NULL;
}

static void do_suspend(struct micd *d, int fd)
{
	char err[256];
	for (int i = 0; i < d->ncards; i++) {
		struct mic_card *c = &d->cards[i];
		/* Suspended, or being suspended, by an earlier request: it
		 * still boots on resume. */
		if (c->state == CARD_SUSPENDED || c->suspending)
			continue;
		c->resume_boot = 0;
		if (c->state == CARD_ONLINE) {
			c->resume_boot = c->suspending = 1;
			card_shutdown(c, err, sizeof(err));
		} else if (c->state == CARD_BOOTING) {
			c->resume_boot = c->suspending = 1;
			card_reset(c);
		}
	}
	log_info("OSPM suspend: shutting down the online cards");
	add_waiter(d, fd, W_SUSPEND, NULL, 0, transition_wait_ms(d, NULL));
}

static void resume_start(struct micd *d)
{
	char err[256];
	log_info("OSPM resume: booting the cards that were online");
	for (int i = 0; i < d->ncards; i++) {
		struct mic_card *c = &d->cards[i];
		if (c->state == CARD_SUSPENDED && c->resume_boot) {
			if (card_resume(c, err, sizeof(err)) < 0) {
				log_err("%s", err);
				snprintf(c->last_error, sizeof(c->last_error), "%.180s", err);
			}
		}
	}
}

/* A verb whose card is on its way to where the verb can run: held until it
 * gets there (then started), goes elsewhere, or wait_ms pass (-1: as long
 * as the card's own timers let the transition take). */
static void add_pending(struct micd *d, int fd, enum wait_kind k, struct mic_card *c, long wait_ms)
{
	unsigned ms = wait_ms >= 0 ? (unsigned)wait_ms : transition_wait_ms(d, c);
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return answer(fd, 1, "out of memory");
	*w = (struct waiter){ .fd = fd, .kind = k, .card = c, .pending = 1, .wait_ms = ms,
			      .deadline_ns = now_ns() + (uint64_t)ms * 1000000u };
	if (c)
		log_info("%s: %s waits until the card is %s (it is %s)", c->cfg.name,
			 k == W_BOOT ? "boot" : "shutdown", k == W_BOOT ? "ready" : "online",
			 card_state_name(c->state));
	else
		log_info("OSPM resume waits for the suspend under way");
	w->next = d->waiters;
	d->waiters = w;
}

static void do_resume(struct micd *d, int fd, long wait_ms)
{
	struct waiter probe = { .kind = W_RESUME };
	if (pending_check(d, &probe) == 0)
		return add_pending(d, fd, W_RESUME, NULL, wait_ms);
	resume_start(d);
	add_waiter(d, fd, W_RESUME, NULL, 0, transition_wait_ms(d, NULL));
}

/* A request line, split. */
struct request {
	int argc;
	char *argv[8];
	struct mic_card *card; /* argv[1] if it names one */
	int wait;              /* "... wait": answer when the action is done */
	long wait_ms;          /* "... wait MS": how long a transition under way
				* may be waited for before the verb; -1 default */
};

static void cmd_ping(struct micd *d, int fd, struct request *rq)
{
	(void)d;
	(void)rq;
	answer(fd, 0, "micd %d", (int)getpid());
}

static void send_status(struct micd *d, int fd, struct request *rq, int json)
{
	if (rq->argc > 1 && !rq->card)
		return answer(fd, 4, "no card named '%s'", rq->argv[1]);
	struct reply r = { 0 };
	if (json)
		status_json(d, rq->card, &r);
	else
		status_text(d, rq->card, &r);
	send_all(fd, "OK\n", 3);
	send_all(fd, r.buf ? r.buf : "", r.len);
	free(r.buf);
	close(fd);
}

static void cmd_status(struct micd *d, int fd, struct request *rq)
{
	send_status(d, fd, rq, 0);
}

static void cmd_status_json(struct micd *d, int fd, struct request *rq)
{
	send_status(d, fd, rq, 1);
}

/* stats [CARD], stats-json [CARD]: host/stats.c */
static void send_stats(struct micd *d, int fd, struct request *rq, int json)
{
	if (rq->argc > 1 && !rq->card)
		return answer(fd, 4, "no card named '%s'", rq->argv[1]);
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return answer(fd, 1, "out of memory");
	stats_write(f, d->cards, d->ncards, rq->card, json);
	fclose(f);
	send_all(fd, "OK\n", 3);
	send_all(fd, buf, len);
	free(buf);
	close(fd);
}

static void cmd_stats(struct micd *d, int fd, struct request *rq)
{
	send_stats(d, fd, rq, 0);
}

static void cmd_stats_json(struct micd *d, int fd, struct request *rq)
{
	send_stats(d, fd, rq, 1);
}

static void cmd_suspend(struct micd *d, int fd, struct request *rq)
{
	(void)rq;
	do_suspend(d, fd);
}

static void cmd_resume(struct micd *d, int fd, struct request *rq)
{
	do_resume(d, fd, rq->wait_ms);
}

/* boot and shutdown: held while the card is on its way to where the verb
 * can run (with wait), else started; answered now, or once it is done. */
static void card_verb(struct micd *d, int fd, struct request *rq, enum wait_kind k)
{
	struct mic_card *c = rq->card;
	char err[256] = "";
	if (rq->wait && verb_wants(c, k == W_BOOT ? CARD_READY : CARD_ONLINE) == 0)
		return add_pending(d, fd, k, c, rq->wait_ms);
	if (start_verb(d, k, c, err, sizeof(err)) < 0)
		return answer(fd, 1, "%s", err);
	if (!rq->wait)
		return answer(fd, 0, "%s: %s", c->cfg.name, k == W_BOOT ? "booting" : "shutting_down");
	add_waiter(d, fd, k, c, 0, transition_wait_ms(d, c));
}

static void cmd_boot(struct micd *d, int fd, struct request *rq)
{
	card_verb(d, fd, rq, W_BOOT);
}

static void cmd_shutdown(struct micd *d, int fd, struct request *rq)
{
	card_verb(d, fd, rq, W_SHUTDOWN);
}

static void cmd_reset(struct micd *d, int fd, struct request *rq)
{
	struct mic_card *c = rq->card;
	c->suspending = c->resume_boot = 0;
	card_reset(c);
	if (!rq->wait)
		return answer(fd, 0, "%s: resetting", c->cfg.name);
	add_waiter(d, fd, W_RESET, c, 0, d->cfg.reset_timeout_ms + 1000);
}

static void cmd_wait(struct micd *d, int fd, struct request *rq)
{
	(void)d;
	int argc = rq->argc;
	char **argv = rq->argv;
	int st = argc > 2 ? card_state_parse(argv[2]) : -1;
	if (st < 0)
		return answer(fd, 2, "unknown state '%s'", argc > 2 ? argv[2] : "");
	char *end = NULL;
	errno = 0;
	long ms = argc > 3 ? strtol(argv[3], &end, 10) : 10000;
	if (argc > 3 && (errno || *end || ms < 0 || ms > MICD_MAX_WAIT_MS))
		return answer(fd, 2, "wait timeout must be 0..%d ms", MICD_MAX_WAIT_MS);
	add_waiter(d, fd, W_STATE, rq->card, (enum card_state)st, (unsigned)ms);
}

static void cmd_console_size(struct micd *d, int fd, struct request *rq)
{
	(void)d;
	struct mic_card *c = rq->card;
	long cols = rq->argc > 3 ? strtol(rq->argv[2], NULL, 10) : 0;
	long rows = rq->argc > 3 ? strtol(rq->argv[3], NULL, 10) : 0;
	if (cols < 1 || rows < 1 || cols > 65535 || rows > 65535)
		return answer(fd, 2, "console-size needs COLS ROWS (1..65535)");
	struct vdev *con = card_find_vdev(c, VIRTIO_ID_CONSOLE);
	int rc = con ? console_backend_resize(con, (unsigned)cols, (unsigned)rows) : -ENODEV;
	if (rc)
		return answer(fd, 1, "%s: console size: %s", c->cfg.name, strerror(-rc));
	answer(fd, 0, "%s: console %ldx%ld", c->cfg.name, cols, rows);
}

/* A scripted session on the console (micctl console with stdin not a
 * terminal): ID starts one, 0 ends it. */
static void cmd_console_session(struct micd *d, int fd, struct request *rq)
{
	(void)d;
	struct mic_card *c = rq->card;
	char *end = NULL;
	unsigned long id = rq->argc > 2 ? strtoul(rq->argv[2], &end, 16) : 0;
	if (rq->argc < 3 || *end || id > UINT32_MAX)
		return answer(fd, 2, "console-session needs a hex session id (0 ends it)");
	struct vdev *con = card_find_vdev(c, VIRTIO_ID_CONSOLE);
	int rc = con ? console_backend_session(con, (uint32_t)id) : -ENODEV;
	if (rc)
		return answer(fd, 1, "%s: console session: %s", c->cfg.name,
			      rc == -EOPNOTSUPP ? "the card's console driver has no sessions" :
			      rc == -ENODEV	? "the card's console is not running" :
						  strerror(-rc));
	answer(fd, 0, "%s: console session %08lx", c->cfg.name, id);
}

static void cmd_log(struct micd *d, int fd, struct request *rq)
{
	(void)d;
	char *buf = malloc(MIC_LOG_SIZE);
	size_t n = buf ? card_read_log(rq->card, buf, MIC_LOG_SIZE) : 0;
	send_all(fd, "OK\n", 3);
	send_all(fd, buf, n);
	free(buf);
	close(fd);
}

#define CMD_CARD  0x1 /* argv[1] must name a card */
#define CMD_WAITS 0x2 /* always holds a waiter slot (others only with "wait") */

static const struct command {
	const char *verb;
	unsigned flags;
	void (*run)(struct micd *d, int fd, struct request *rq);
} commands[] = {
	{ "ping", 0, cmd_ping },
	{ "status", 0, cmd_status },
	{ "status-json", 0, cmd_status_json },
	{ "suspend", CMD_WAITS, cmd_suspend },
	{ "resume", CMD_WAITS, cmd_resume },
	{ "boot", CMD_CARD, cmd_boot },
	{ "shutdown", CMD_CARD, cmd_shutdown },
	{ "reset", CMD_CARD, cmd_reset },
	{ "wait", CMD_CARD | CMD_WAITS, cmd_wait },
	{ "console-size", CMD_CARD, cmd_console_size },
	{ "console-session", CMD_CARD, cmd_console_session },
	{ "log", CMD_CARD, cmd_log },
	{ "stats", 0, cmd_stats },
	{ "stats-json", 0, cmd_stats_json },
};

static void handle_request(struct micd *d, int fd, char *line)
{
	if (d->stopping)
		return answer(fd, 1, "micd is stopping");
	struct request rq = { .wait_ms = -1 };
	for (char *s = strtok(line, " \t\r\n"); s && rq.argc < 8; s = strtok(NULL, " \t\r\n"))
		rq.argv[rq.argc++] = s;
	if (rq.argc == 0)
		return answer(fd, 2, "empty request");
	const char *verb = rq.argv[0];
	const struct command *cmd = NULL;
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]) && !cmd; i++)
		if (!strcmp(verb, commands[i].verb))
			cmd = &commands[i];
	if (!cmd)
		return answer(fd, 2, "unknown request '%s'", verb);
	/* "... wait MS": the wait, with a bound for a transition under way. */
	if (cmd->run != cmd_wait && rq.argc > 2 && !strcmp(rq.argv[rq.argc - 2], "wait")) {
		char *end = NULL;
		errno = 0;
		long ms = strtol(rq.argv[rq.argc - 1], &end, 10);
		if (errno || *end || end == rq.argv[rq.argc - 1] || ms < 0 || ms > MICD_MAX_WAIT_MS)
			return answer(fd, 2, "wait timeout must be 0..%d ms", MICD_MAX_WAIT_MS);
		rq.wait_ms = ms;
		rq.argc--;
	}
	rq.card = rq.argc > 1 ? find_card(d, rq.argv[1]) : NULL;
	/* status has no "wait" suffix: its second word is a card name. */
	rq.wait = cmd->run != cmd_status && cmd->run != cmd_status_json && rq.argc > 2 &&
		  !strcmp(rq.argv[rq.argc - 1], "wait");
	if ((rq.wait || (cmd->flags & CMD_WAITS)) && !waiter_room(d))
		return answer(fd, 1, "too many requests waiting; try again later");
	if (cmd->flags & CMD_CARD) {
		if (rq.argc < 2)
			return answer(fd, 2, "%s needs a card name", verb);
		if (!rq.card)
			return answer(fd, 4, "no card named '%s'", rq.argv[1]);
	}
	cmd->run(d, fd, &rq);
}

static void client_drop(struct micd *d, struct client *cl)
{
	for (struct client **pp = &d->clients; *pp; pp = &(*pp)->next)
		if (*pp == cl) {
			*pp = cl->next;
			break;
		}
	epoll_ctl(d->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
	d->nclients--;
	free(cl);
}

/* Reads what has arrived of a request; runs it once its line is whole.  A
 * request is executed only when complete: a cut-off "reset mic1" of
 * "reset mic10" must not reset mic1. */
static void on_client_data(struct micd *d, struct client *cl)
{
	for (;;) {
		ssize_t n = recv(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return; /* more later */
		if (n <= 0) { /* gone before finishing its request */
			close(cl->fd);
			client_drop(d, cl);
			return;
		}
		cl->len += (size_t)n;
		cl->buf[cl->len] = 0;
		char *nl = memchr(cl->buf, '\n', cl->len);
		if (nl || cl->len == sizeof(cl->buf) - 1)
			break;
	}
	int fd = cl->fd;
	char line[MICD_REQUEST_MAX];
	int whole = memchr(cl->buf, '\n', cl->len) != NULL;
	memcpy(line, cl->buf, cl->len + 1);
	client_drop(d, cl);
	if (!whole)
		return answer(fd, 2, "request longer than %d bytes", MICD_REQUEST_MAX - 2);
	handle_request(d, fd, line);
}

static void on_client_tag(void *cl)
{
	on_client_data(((struct client *)cl)->d, cl);
}

static void on_client(void *arg)
{
	struct micd *d = arg;
	for (;;) {
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0)
			return;
		struct client *cl = d->nclients < MICD_MAX_CLIENTS ? calloc(1, sizeof(*cl)) : NULL;
		if (!cl) {
			answer(fd, 1, "too many connections; try again later");
			continue;
		}
		cl->tag = (struct host_watch){ on_client_tag, cl };
		cl->d = d;
		cl->fd = fd;
		cl->deadline_ns = now_ns() + (uint64_t)MICD_REQUEST_MS * 1000000u;
		if (watch_ptr(d, fd, &cl->tag) < 0) {
			answer(fd, 1, "micd: %s", strerror(errno));
			free(cl);
			continue;
		}
		cl->next = d->clients;
		d->clients = cl;
		d->nclients++;
		on_client_data(d, cl); /* the request is usually there already */
	}
}

/* Connections whose request did not arrive in time. */
static void clients_expire(struct micd *d)
{
	uint64_t now = now_ns();
	for (struct client *cl = d->clients, *next; cl; cl = next) {
		next = cl->next;
		if (now < cl->deadline_ns)
			continue;
		int fd = cl->fd;
		client_drop(d, cl);
		answer(fd, 2, "incomplete request (no newline within %d ms)", MICD_REQUEST_MS);
	}
}

/* --- setup --- */

static int open_control_socket(struct micd *d)
{
	mkdir(d->cfg.rundir, 0755);
	snprintf(d->sock_path, sizeof(d->sock_path), "%s/micd.sock", d->cfg.rundir);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(d->sock_path) >= sizeof(sa.sun_path)) {
		log_err("run directory path too long: %s", d->cfg.rundir);
		return -1;
	}
	strcpy(sa.sun_path, d->sock_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_err("another micd is running on %s", d->sock_path);
		close(fd);
		d->sock_path[0] = 0;
		return -1;
	}
	if (fd >= 0)
		close(fd);
	unlink(d->sock_path);
	d->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (d->listen_fd < 0 || bind(d->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(d->listen_fd, 64) < 0) {
		log_err("control socket %s: %s", d->sock_path, strerror(errno));
		return -1;
	}
	/* Root always; members of the configured group too. */
	mode_t mode = 0600;
	if (d->cfg.group[0]) {
		struct group *g = getgrnam(d->cfg.group);
		if (!g) {
			log_err("group '%s' does not exist", d->cfg.group);
			return -1;
		}
		if (chown(d->sock_path, 0, g->gr_gid) < 0)
			log_warn("chown %s: %s", d->sock_path, strerror(errno));
		mode = 0660;
	}
	chmod(d->sock_path, mode);
	return 0;
}

/*
 * First SIGTERM/SIGINT: shut every online card OS down cleanly (so it can
 * flush its disks) within the shutdown timeout, then power the cards off.
 * A second signal powers them off at once.
 */
static void begin_stop(struct micd *d)
{
	if (d->stopping) {
		d->quit = 1;
		return;
	}
	d->stopping = 1;
	/* As long as a card flushing its disk may ask for, plus a boot: a
	 * card still booting is shut down once online (stop_step). The card
	 * state machine bounds each phase itself; this is the backstop. */
	d->stop_deadline_ns = now_ns() + (uint64_t)(card_shutdown_limit_ms(&d->cfg) +
						    d->cfg.boot_timeout_ms + 500) * 1000000u;
	log_info("stopping: shutting the online cards down"); /* by stop_step */
}

/* While stopping: shuts down cards that came online meanwhile; returns 1
 * when no card OS is left running or about to run. */
static int stop_step(struct micd *d)
{
	char err[256];
	int done = 1;
	for (int i = 0; i < d->ncards; i++) {
		struct mic_card *c = &d->cards[i];
		if (c->state == CARD_ONLINE)
			card_shutdown(c, err, sizeof(err));
		if (c->state == CARD_SHUTTING_DOWN || c->state == CARD_BOOTING)
			done = 0;
	}
	return done;
}

static void on_signal(void *arg)
{
	struct micd *d = arg;
	struct signalfd_siginfo si;
	while (read(d->sig_fd, &si, sizeof(si)) == sizeof(si))
		begin_stop(d);
}

static void usage(void)
{
	fprintf(stderr, "usage: micd [--config FILE] [--rundir DIR] [--statedir DIR] [--cards N] [--image FILE] [-v]\n"
			"  --config FILE  cards and settings (default: one card mic0)\n"
			"  --rundir DIR   control socket and per-card links (default /run/micstack,\n"
			"                 or $MIC_RUNDIR)\n"
			"  --statedir DIR the cards' state directories, DIR/<card> (ssh host keys;\n"
			"                 default /var/lib/micstack, or $MIC_STATEDIR)\n"
			"  --cards N      N default cards mic0..micN-1 (1..8)\n"
			"  --image FILE   card OS image for cards that name none\n");
	exit(2);
}

/*
 * A card's root is an unprivileged host user: it opens /dev/net/tun and
 * /dev/fuse as "other".  Debian's udev rules make both 0666 (each guards
 * itself: a TAP needs CAP_NET_ADMIN in the network namespace, a FUSE mount
 * the mount namespace's owner); a host without udev may have 0600 nodes.
 */
static void card_devices_open_to_cards(void)
{
	static const char *const devs[] = { "/dev/net/tun", "/dev/fuse" };
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		struct stat st;
		if (stat(devs[i], &st) < 0 || !S_ISCHR(st.st_mode) || (st.st_mode & 0666) == 0666)
			continue;
		if (chmod(devs[i], 0666) == 0)
			log_info("%s: mode 0666, as Debian's udev rules set it, so cards can use it",
				 devs[i]);
		else
			log_warn("%s: cannot make it usable by cards: %s", devs[i], strerror(errno));
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "rundir", required_argument, NULL, 'r' },
		{ "cards", required_argument, NULL, 'n' },  { "image", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },      { "help", no_argument, NULL, 'h' },
		{ "statedir", required_argument, NULL, 's' }, { 0 }
	};
	static struct micd d; /* large; lives for the whole process */
	micd_cfg_defaults(&d.cfg);
	const char *config = NULL, *rundir = getenv("MIC_RUNDIR"), *image = NULL;
	const char *statedir = getenv("MIC_STATEDIR");
	int ncards = 0, verbose = 0, o;
	while ((o = getopt_long(argc, argv, "c:r:n:i:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': config = optarg; break;
		case 's': statedir = optarg; break;
		case 'r': rundir = optarg; break;
		case 'n': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > MICD_MAX_CARDS) {
				fprintf(stderr, "micd: --cards must be 1..%d\n", MICD_MAX_CARDS);
				return 2;
			}
			ncards = (int)v;
			break;
		}
		case 'i': image = optarg; break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	log_init("micd", verbose ? LOG_DEBUG : LOG_INFO);
	char err[512] = "";
	if (config && micd_cfg_load(&d.cfg, config, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	if (ncards) /* 1..MICD_MAX_CARDS, checked by the option parser */
		micd_cfg_set_cards(&d.cfg, ncards);
	if (rundir)
		snprintf(d.cfg.rundir, sizeof(d.cfg.rundir), "%s", rundir);
	if (image)
		snprintf(d.cfg.image, sizeof(d.cfg.image), "%s", image);
	if (statedir)
		snprintf(d.cfg.statedir, sizeof(d.cfg.statedir), "%s", statedir);
	if (micd_cfg_finish(&d.cfg, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return 1;
	}
	if (geteuid() != 0) {
		log_err("micd needs root (namespaces for the card OS)");
		return 1;
	}
	card_devices_open_to_cards();

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	d.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	d.epfd = epoll_create1(EPOLL_CLOEXEC);
	d.listen_fd = -1;
	int rc = 1;
	d.tag_listen = (struct host_watch){ on_client, &d };
	d.tag_signal = (struct host_watch){ on_signal, &d };
	if (d.sig_fd < 0 || d.epfd < 0 || open_control_socket(&d) < 0 ||
	    watch_ptr(&d, d.listen_fd, &d.tag_listen) || watch_ptr(&d, d.sig_fd, &d.tag_signal))
		goto out;
	for (int i = 0; i < d.cfg.ncards; i++) {
		struct mic_card *c = &d.cards[i];
		err[0] = 0;
		if (card_init(c, &d.cfg, &d.cfg.cards[i], d.epfd, err, sizeof(err)) < 0) {
			log_err("%s", err);
			goto out;
		}
		c->on_change = on_card_change;
		c->ctx = &d;
		d.ncards++;
	}
	log_info("ready: %d card%s, control socket %s", d.ncards, d.ncards == 1 ? "" : "s",
		 d.sock_path);
	while (!d.quit) {
		struct epoll_event ev[16];
		int n = epoll_wait(d.epfd, ev, 16, next_timeout_ms(&d));
		/* A handler frees only its own tag (a client answered), never
		 * another one of this batch, so every tag here is still live. */
		for (int i = 0; i < n; i++) {
			struct host_watch *w = ev[i].data.ptr;
			w->fn(w->ctx);
		}
		clients_expire(&d);
		waiters_run(&d, 0);
		if (d.stopping && (stop_step(&d) || now_ns() >= d.stop_deadline_ns))
			d.quit = 1;
		/* autoboot cards as soon as their firmware is ready, once */
		for (int i = 0; i < d.ncards; i++) {
			struct mic_card *c = &d.cards[i];
			if (!d.stopping && c->cfg.autoboot && c->state == CARD_READY && c->boots == 0 &&
			    !c->last_error[0]) {
				/* Once: the error stops the retries and shows
				 * in micctl status. */
				if (card_boot(c, err, sizeof(err)) < 0) {
					log_err("%s", err);
					snprintf(c->last_error, sizeof(c->last_error),
						 "autoboot: %.170s", err);
				}
			}
		}
	}
	log_info("stopping: powering the cards off");
	rc = 0;
out:
	while (d.waiters) {
		struct waiter *w = d.waiters;
		d.waiters = w->next;
		answer(w->fd, 1, "micd is stopping");
		free(w);
	}
	while (d.clients) {
		int fd = d.clients->fd;
		client_drop(&d, d.clients);
		close(fd);
	}
	for (int i = 0; i < d.ncards; i++)
		card_fini(&d.cards[i]);
	if (d.sock_path[0])
		unlink(d.sock_path);
	if (d.listen_fd >= 0)
		close(d.listen_fd);
	return rc;
}
