/* SPDX-License-Identifier: MIT */
/*
 * The card OS's event loop (card/kernel/loop.c) on real fds, children,
 * timers and signals.  Every wait is bounded: a loop that never returns
 * fails its test through alarm() (SIGALRM is not one the loop takes), and
 * every cos_loop_run_until condition gives up after a deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "card/kernel/loop.h"
#include "lib/clock.h"

#define TEST_ALARM_S 20 /* a hung loop fails the test after this */
#define WAIT_MS 3000    /* what any one condition may take */

struct t {
	struct cos_loop *l;
	int term_signo, terms;
};

static void on_term(void *ctx, int signo)
{
	struct t *t = ctx;
	t->term_signo = signo;
	t->terms++;
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t || cos_loop_create(&t->l, on_term, t))
		return -1;
	alarm(TEST_ALARM_S);
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	alarm(0);
	cos_loop_destroy(t->l);
	free(t);
	return 0;
}

/* A condition over an int, with a deadline: returns 1 when *p reaches want,
 * -1 when WAIT_MS passed first. */
struct until {
	const int *p;
	int want;
	uint64_t deadline;
	int checks;
};

static int until_done(void *ctx)
{
	struct until *u = ctx;
	u->checks++;
	if (*u->p >= u->want)
		return 1;
	return now_ms() >= u->deadline ? -1 : 0;
}

static int run_until_count(struct cos_loop *l, const int *p, int want)
{
	struct until u = { p, want, now_ms() + WAIT_MS, 0 };
	return cos_loop_run_until(l, until_done, &u, 10);
}

/* Runs the loop for ms, whatever happens. */
static void run_for(struct cos_loop *l, int ms)
{
	static const int never = 0;
	struct until u = { &never, 1, now_ms() + (uint64_t)ms, 0 };
	assert_int_equal(cos_loop_run_until(l, until_done, &u, 5), -1);
}

struct fdcb {
	struct cos_loop *l;
	int fd;
	int calls;
	uint32_t events;
	int drain; /* read what is there */
};

static void fd_cb(void *ctx, uint32_t events)
{
	struct fdcb *c = ctx;
	c->calls++;
	c->events = events;
	char buf[64];
	if (c->drain)
		while (read(c->fd, buf, sizeof(buf)) > 0)
			;
}

static void make_pipe(int p[2])
{
	assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
}

/* A pipe with a byte to read, its read end watched by fd_cb into c. */
static void readable_pipe(struct t *t, int p[2], struct fdcb *c)
{
	make_pipe(p);
	*c = (struct fdcb){ .fd = p[0], .drain = 1 };
	assert_int_equal(cos_watch(t->l, p[0], EPOLLIN, fd_cb, c), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
}

static void watch_unwatch(void **state)
{
	struct t *t = *state;
	int p[2];
	struct fdcb c;
	readable_pipe(t, p, &c);
	assert_int_equal(run_until_count(t->l, &c.calls, 1), 1);
	assert_true(c.events & EPOLLIN);
	/* drained: nothing more */
	run_for(t->l, 30);
	assert_int_equal(c.calls, 1);
	cos_unwatch(t->l, p[0]);
	assert_int_equal(write(p[1], "y", 1), 1);
	run_for(t->l, 30);
	assert_int_equal(c.calls, 1);
	/* watched again after an unwatch: the same fd, a new watch */
	assert_int_equal(cos_watch(t->l, p[0], EPOLLIN, fd_cb, &c), 0);
	assert_int_equal(run_until_count(t->l, &c.calls, 2), 1);
	cos_unwatch(t->l, p[0]);
	cos_unwatch(t->l, p[0]); /* twice: a no-op */
	close(p[0]);
	close(p[1]);
}

static void watch_mod(void **state)
{
	struct t *t = *state;
	int p[2];
	make_pipe(p);
	struct fdcb c = { .fd = p[0] };
	assert_int_equal(cos_watch(t->l, p[0], EPOLLIN, fd_cb, &c), 0);
	assert_int_equal(cos_watch_mod(t->l, p[0], 0), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	run_for(t->l, 30);
	assert_int_equal(c.calls, 0); /* readable, but not asked for */
	assert_int_equal(cos_watch_mod(t->l, p[0], 0), 0); /* unchanged: fine */
	assert_int_equal(cos_watch_mod(t->l, p[0], EPOLLIN), 0);
	assert_int_equal(run_until_count(t->l, &c.calls, 1), 1);
	/* the write end, for EPOLLOUT */
	struct fdcb w = { .fd = p[1] };
	assert_int_equal(cos_watch(t->l, p[1], 0, fd_cb, &w), 0);
	run_for(t->l, 20);
	assert_int_equal(w.calls, 0);
	assert_int_equal(cos_watch_mod(t->l, p[1], EPOLLOUT), 0);
	assert_int_equal(run_until_count(t->l, &w.calls, 1), 1);
	assert_true(w.events & EPOLLOUT);
	assert_int_equal(cos_watch_mod(t->l, 12345, EPOLLIN), -ENOENT);
	cos_unwatch(t->l, p[0]);
	cos_unwatch(t->l, p[1]);
	assert_int_equal(cos_watch_mod(t->l, p[0], EPOLLIN), -ENOENT);
	close(p[0]);
	close(p[1]);
}

/* A callback that unwatches (and closes) another fd ready in the same
 * batch: that one is not called (and its watch not used after free: ASan). */
struct pair {
	struct cos_loop *l;
	int fd[2][2];
	int calls[2];
};

static void pair_cb(struct pair *pr, int me)
{
	pr->calls[me]++;
	int other = !me;
	cos_unwatch(pr->l, pr->fd[other][0]);
	cos_unwatch(pr->l, pr->fd[me][0]);
}
static void pair_cb0(void *ctx, uint32_t ev)
{
	(void)ev;
	pair_cb(ctx, 0);
}
static void pair_cb1(void *ctx, uint32_t ev)
{
	(void)ev;
	pair_cb(ctx, 1);
}

static void unwatch_from_callback(void **state)
{
	struct t *t = *state;
	struct pair pr = { .l = t->l };
	make_pipe(pr.fd[0]);
	make_pipe(pr.fd[1]);
	assert_int_equal(cos_watch(t->l, pr.fd[0][0], EPOLLIN, pair_cb0, &pr), 0);
	assert_int_equal(cos_watch(t->l, pr.fd[1][0], EPOLLIN, pair_cb1, &pr), 0);
	assert_int_equal(write(pr.fd[0][1], "x", 1), 1);
	assert_int_equal(write(pr.fd[1][1], "x", 1), 1);
	cos_loop_run_once(t->l, WAIT_MS); /* both are ready: one batch */
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	run_for(t->l, 30);
	assert_int_equal(pr.calls[0] + pr.calls[1], 1);
	for (int i = 0; i < 2; i++)
		close(pr.fd[i][0]), close(pr.fd[i][1]);
}

struct exit_rec {
	int calls;
	pid_t pid;
	int status;
};

static void exit_cb(void *ctx, pid_t pid, int status)
{
	struct exit_rec *e = ctx;
	e->calls++;
	e->pid = pid;
	e->status = status;
}

static pid_t child_exiting(int code, int after_ms)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (after_ms)
			usleep((useconds_t)after_ms * 1000);
		_exit(code);
	}
	return pid;
}

static void child_exit(void **state)
{
	struct t *t = *state;
	struct exit_rec e = { 0 };
	pid_t pid = child_exiting(7, 0);
	assert_int_equal(cos_on_exit(t->l, pid, exit_cb, &e), 0);
	assert_int_equal(run_until_count(t->l, &e.calls, 1), 1);
	assert_int_equal(e.pid, pid);
	assert_true(WIFEXITED(e.status));
	assert_int_equal(WEXITSTATUS(e.status), 7);
	/* called once; the child reaped by the loop */
	run_for(t->l, 20);
	assert_int_equal(e.calls, 1);
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void child_exit_cancel(void **state)
{
	struct t *t = *state;
	struct exit_rec a = { 0 }, b = { 0 };
	pid_t pa = child_exiting(1, 0);
	assert_int_equal(cos_on_exit(t->l, pa, exit_cb, &a), 0);
	cos_on_exit_cancel(t->l, pa);
	/* a has exited (left to be reaped) before b starts */
	siginfo_t si;
	assert_int_equal(waitid(P_PID, (id_t)pa, &si, WEXITED | WNOWAIT), 0);
	pid_t pb = child_exiting(2, 10);
	assert_int_equal(cos_on_exit(t->l, pb, exit_cb, &b), 0);
	assert_int_equal(run_until_count(t->l, &b.calls, 1), 1);
	assert_int_equal(WEXITSTATUS(b.status), 2);
	assert_int_equal(a.calls, 0);
	/* a was reaped all the same: no zombie left to the card */
	assert_int_equal(waitpid(pa, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	cos_on_exit_cancel(t->l, pa); /* unknown pid: a no-op */
}

struct tick {
	struct cos_loop *l;
	struct cos_timer *self;
	int calls, stop_at;
	uint64_t at[8];
};

static void tick_cb(void *ctx)
{
	struct tick *k = ctx;
	if (k->calls < 8)
		k->at[k->calls] = now_ms();
	k->calls++;
	if (k->stop_at && k->calls == k->stop_at) {
		cos_timer_stop(k->l, k->self); /* from its own callback */
		k->self = NULL;
	}
}

static void timer_first_and_period(void **state)
{
	struct t *t = *state;
	struct tick k = { .l = t->l };
	uint64_t t0 = now_ms();
	k.self = cos_timer_start(t->l, 60, 15, tick_cb, &k);
	assert_non_null(k.self);
	assert_int_equal(run_until_count(t->l, &k.calls, 4), 1);
	assert_true(k.at[0] >= t0 + 60); /* first after first_ms */
	/* then every period_ms: the fourth call needs the fourth expiry (a late
	 * read takes several at once, so the gaps between calls vary) */
	assert_true(k.at[3] >= t0 + 60 + 3 * 15);
	cos_timer_stop(t->l, k.self);
	int n = k.calls;
	run_for(t->l, 60);
	assert_int_equal(k.calls, n); /* stopped */
}

static void timer_one_shot_and_stop_in_callback(void **state)
{
	struct t *t = *state;
	struct tick once = { .l = t->l }, three = { .l = t->l, .stop_at = 3 };
	once.self = cos_timer_start(t->l, 10, 0, tick_cb, &once); /* period 0: once */
	three.self = cos_timer_start(t->l, 0, 10, tick_cb, &three); /* first 0: at once */
	assert_non_null(once.self);
	assert_non_null(three.self);
	assert_int_equal(run_until_count(t->l, &three.calls, 3), 1);
	assert_null(three.self);
	run_for(t->l, 80);
	assert_int_equal(three.calls, 3);
	assert_int_equal(once.calls, 1);
	cos_timer_stop(t->l, once.self);
	cos_timer_stop(t->l, NULL); /* a no-op */
}

/* done is checked before each batch, so a ready fd is not dispatched when
 * the condition already holds; and with nothing happening it is checked at
 * least every tick_ms. */
static int ret42(void *ctx)
{
	int *checks = ctx;
	++*checks;
	return 42;
}

static void run_until_checks_first(void **state)
{
	struct t *t = *state;
	int p[2];
	struct fdcb c;
	readable_pipe(t, p, &c);
	int checks = 0;
	assert_int_equal(cos_loop_run_until(t->l, ret42, &checks, 10), 42);
	assert_int_equal(checks, 1);
	assert_int_equal(c.calls, 0);
	cos_unwatch(t->l, p[0]);
	close(p[0]);
	close(p[1]);
}

static void run_until_ticks(void **state)
{
	struct t *t = *state;
	static const int never = 0;
	uint64_t t0 = now_ms();
	struct until u = { &never, 1, t0 + 200, 0 };
	assert_int_equal(cos_loop_run_until(t->l, until_done, &u, 20), -1);
	uint64_t took = now_ms() - t0;
	assert_true(took >= 200);
	assert_true(took < 200 + WAIT_MS);
	/* nothing woke the loop but the tick: checked more than once, and not
	 * more often than every 20 ms (a busy machine makes it fewer) */
	assert_true(u.checks >= 2);
	assert_true(u.checks <= 200 / 20 + 3);
}

/*
 * The no-re-entry rule: a callback that runs the loop itself (as a driver's
 * removal does) is not called again for its own fd, which stays readable
 * (level-triggered) all along, and does not make the nested loop spin;
 * afterwards the fd is given back with the events asked for meanwhile.
 */
struct reent {
	struct cos_loop *l;
	int a[2], b[2];
	int a_calls, a_depth, a_max_depth;
	int b_calls;
	int nested_checks;
	uint32_t a_events_after; /* cos_watch_mod inside the nested run */
	int unwatch_self;
};

static void b_cb(void *ctx, uint32_t ev)
{
	struct reent *r = ctx;
	char c;
	(void)ev;
	while (read(r->b[0], &c, 1) > 0)
		;
	r->b_calls++;
	if (r->a_events_after != EPOLLIN)
		cos_watch_mod(r->l, r->a[0], r->a_events_after);
	if (r->unwatch_self)
		cos_unwatch(r->l, r->a[0]);
}

static int nested_done(void *ctx)
{
	struct reent *r = ctx;
	r->nested_checks++;
	return r->b_calls >= 2 || r->nested_checks > 200 ? 1 : 0;
}

static void a_cb(void *ctx, uint32_t ev)
{
	struct reent *r = ctx;
	(void)ev;
	r->a_calls++;
	r->a_depth++;
	if (r->a_depth > r->a_max_depth)
		r->a_max_depth = r->a_depth;
	if (r->a_calls == 1) {
		/* a's pipe stays readable; b fires twice, 20 ms apart, while
		 * we are inside */
		assert_int_equal(write(r->b[1], "1", 1), 1);
		struct until u = { &r->b_calls, 1, now_ms() + WAIT_MS, 0 };
		cos_loop_run_until(r->l, until_done, &u, 10);
		usleep(20000);
		assert_int_equal(write(r->b[1], "2", 1), 1);
		cos_loop_run_until(r->l, nested_done, r, 10);
	}
	r->a_depth--;
}

static void reent_setup(struct t *t, struct reent *r)
{
	r->l = t->l;
	make_pipe(r->a);
	make_pipe(r->b);
	assert_int_equal(cos_watch(t->l, r->a[0], EPOLLIN, a_cb, r), 0);
	assert_int_equal(cos_watch(t->l, r->b[0], EPOLLIN, b_cb, r), 0);
	assert_int_equal(write(r->a[1], "a", 1), 1); /* never read */
}

/* Undoes reent_setup (a may have unwatched itself already). */
static void reent_close(struct reent *r)
{
	cos_unwatch(r->l, r->a[0]);
	cos_unwatch(r->l, r->b[0]);
	close(r->a[0]), close(r->a[1]), close(r->b[0]), close(r->b[1]);
}

static void no_reentry(void **state)
{
	struct t *t = *state;
	struct reent r = { .a_events_after = EPOLLIN };
	reent_setup(t, &r);
	cos_loop_run_once(t->l, WAIT_MS);
	assert_int_equal(r.a_calls, 1);
	assert_int_equal(r.a_max_depth, 1); /* never nested in itself */
	assert_int_equal(r.b_calls, 2);
	/* the nested loop slept between b's events instead of spinning on a */
	assert_true(r.nested_checks < 50);
	/* given back: a is still readable and is called again */
	assert_int_equal(run_until_count(t->l, &r.a_calls, 2), 1);
	reent_close(&r);
}

static void no_reentry_mod_while_muted(void **state)
{
	struct t *t = *state;
	struct reent r = { .a_events_after = 0 }; /* b asks for no events of a */
	reent_setup(t, &r);
	cos_loop_run_once(t->l, WAIT_MS);
	assert_int_equal(r.a_calls, 1);
	assert_int_equal(r.b_calls, 2);
	run_for(t->l, 40);
	assert_int_equal(r.a_calls, 1); /* given back with the events asked for: none */
	assert_int_equal(cos_watch_mod(t->l, r.a[0], EPOLLIN), 0);
	assert_int_equal(run_until_count(t->l, &r.a_calls, 2), 1);
	reent_close(&r);
}

static void no_reentry_unwatched_while_running(void **state)
{
	struct t *t = *state;
	struct reent r = { .a_events_after = EPOLLIN, .unwatch_self = 1 };
	reent_setup(t, &r);
	cos_loop_run_once(t->l, WAIT_MS);
	assert_int_equal(r.a_calls, 1);
	run_for(t->l, 40);
	assert_int_equal(r.a_calls, 1); /* not given back: it was unwatched */
	reent_close(&r);
}

static void term_signals(void **state)
{
	struct t *t = *state;
	assert_int_equal(kill(getpid(), SIGTERM), 0);
	assert_int_equal(run_until_count(t->l, &t->terms, 1), 1);
	assert_int_equal(t->term_signo, SIGTERM);
	assert_int_equal(kill(getpid(), SIGINT), 0);
	assert_int_equal(run_until_count(t->l, &t->terms, 2), 1);
	assert_int_equal(t->term_signo, SIGINT);
	/* a child's exit is not a termination */
	struct exit_rec e = { 0 };
	pid_t pid = child_exiting(0, 0);
	assert_int_equal(cos_on_exit(t->l, pid, exit_cb, &e), 0);
	assert_int_equal(run_until_count(t->l, &e.calls, 1), 1);
	assert_int_equal(t->terms, 2);
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(watch_unwatch), T(watch_mod), T(unwatch_from_callback), T(child_exit),
		T(child_exit_cancel), T(timer_first_and_period),
		T(timer_one_shot_and_stop_in_callback), T(run_until_checks_first),
		T(run_until_ticks), T(no_reentry), T(no_reentry_mod_while_muted),
		T(no_reentry_unwatched_while_running), T(term_signals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
