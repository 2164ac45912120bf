/* SPDX-License-Identifier: MIT */
/*
 * The card OS's event loop, a service of its own (as kvmtool keeps its
 * epoll loop apart from the devices): file descriptors, child exits and
 * timers, dispatched on one thread.  main.c starts it and runs it; drivers
 * use it, and a driver that must wait for something (a disk flushing at
 * removal) runs it until a condition holds instead of keeping a loop of
 * its own.
 *
 * A callback is never re-entered: while it runs (and runs the loop itself,
 * as a removal does), its own fd is muted and given back afterwards, the way
 * a kernel does not nest an interrupt handler in itself.
 */
#ifndef MIC_CARD_KERNEL_LOOP_H
#define MIC_CARD_KERNEL_LOOP_H

#include <stdint.h>
#include <sys/types.h>

struct cos_loop;
struct cos_timer;

typedef void (*cos_fd_fn)(void *ctx, uint32_t events);
typedef void (*cos_exit_fn)(void *ctx, pid_t pid, int status);
typedef void (*cos_timer_fn)(void *ctx);
/* SIGTERM or SIGINT reached the card OS. */
typedef void (*cos_term_fn)(void *ctx, int signo);

/* Blocks SIGCHLD, SIGTERM and SIGINT and takes them through the loop; every
 * child is reaped by it. */
int cos_loop_create(struct cos_loop **out, cos_term_fn on_term, void *term_ctx);
void cos_loop_destroy(struct cos_loop *l);

/* Calls fn(ctx, revents) when fd is ready for events (EPOLLIN...). */
int cos_watch(struct cos_loop *l, int fd, uint32_t events, cos_fd_fn fn, void *ctx);
/* Changes what fd is watched for; cheap when nothing changes (drivers call
 * it after every batch). */
int cos_watch_mod(struct cos_loop *l, int fd, uint32_t events);
void cos_unwatch(struct cos_loop *l, int fd);

/* Calls fn when child pid exits. */
int cos_on_exit(struct cos_loop *l, pid_t pid, cos_exit_fn fn, void *ctx);
/* Forgets pid's exit callback (its owner goes away first). */
void cos_on_exit_cancel(struct cos_loop *l, pid_t pid);

/* Calls fn every period_ms, first after first_ms. */
struct cos_timer *cos_timer_start(struct cos_loop *l, unsigned first_ms, unsigned period_ms,
				  cos_timer_fn fn, void *ctx);
void cos_timer_stop(struct cos_loop *l, struct cos_timer *t);

/* Waits up to timeout_ms (-1: for ever) and dispatches one batch. */
void cos_loop_run_once(struct cos_loop *l, int timeout_ms);
/* Dispatches until done(ctx) is nonzero (returned), checking it before each
 * batch and at least every tick_ms. */
int cos_loop_run_until(struct cos_loop *l, int (*done)(void *ctx), void *ctx, int tick_ms);

#endif
