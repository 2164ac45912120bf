/* SPDX-License-Identifier: MIT */
/*
 * Host side of one virtio device of a card: the thread that serves it.  The
 * thread sleeps on the device's card-to-host doorbell and on the backend's
 * own file (PTY, TAP, image file); on every wake-up it lets the transport
 * check the device (card acknowledgements, resets, misbehaviour) and, while
 * the card's driver is ready, calls the backend to serve the queues.
 * Backends (host/backends/) only move data.
 */
#ifndef MIC_HOST_VDEV_H
#define MIC_HOST_VDEV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dma/mic_dma.h"
#include "host/stats.h"
#include "hw/mic_hw.h"
#include "lib/log.h"
#include "vop/host/vop_host.h"

struct vdev;

/* What micctl status shows for a device. */
enum vdev_state {
	VDEV_WAITING, /* no driver on the card yet */
	VDEV_READY,   /* the card's driver runs it */
	VDEV_BROKEN,  /* the card misbehaved; reason kept until it resets */
};
const char *vdev_state_name(enum vdev_state s);

struct vdev_ops {
	const char *name;
	/* Serves the queues; called with vd->lock held while the card's driver
	 * is ready.  Sets vd->fd_events to what it waits for on vd->fd, and
	 * vd->more when it stopped at its budget: the one way for a backend
	 * to be called again without sleeping. */
	void (*serve)(struct vdev *vd);
	/* The card's driver went away (card reset, halt, crash): forget
	 * in-flight chains, keep the backend's own state (PTY, file). */
	void (*reset)(struct vdev *vd);
	void (*destroy)(struct vdev *vd);
	/* Optional, for a backend in another process (vhost-user): called
	 * first on every wake-up, whatever the card's driver does (the
	 * backend's own events: its death, its interrupts)... */
	void (*poll)(struct vdev *vd);
	/* ...and before the transport zeroes the rings (card reset, a reset
	 * the card asked for, the device broken): the backend must stop
	 * using them first.  Called with vd->lock held; idempotent. */
	void (*quiesce)(struct vdev *vd);
	/* micctl stats: the counters (host/stats.h) serve() keeps, nstats of
	 * them in the order shown (NULL: every counter)... */
	const enum vdev_stat *stats;
	int nstats;
	/* ...or none: the backend runs in another process (vhost-user) and
	 * moves the data itself. */
	bool out_of_process;
};

struct vdev {
	const struct vdev_ops *ops;
	void *priv;
	char card[32];
	struct mic_hw_view *view;
	struct mic_vop_host_dev *dev;
	pthread_mutex_t lock;
	pthread_t thread;
	int thread_started;
	int stop_fd;
	int fd;           /* backend's file or -1 */
	short fd_events;  /* poll events wanted on fd */
	short fd_always;  /* polled on fd in every state, ready or not */
	short fd_revents; /* what poll said of fd at this wake-up (all bits outside the
			   * device thread): serve() may skip a read poll did not announce */
	int kicked;       /* the card rang the device's doorbell since the last serve */
	int broken_logged;
	int more;         /* serve() stopped at its budget: call again soon */
	struct log_limit card_log; /* lines the card's doing causes (under lock) */
	/* What micctl status shows, published by the device thread so the
	 * main thread never waits for vd->lock to report it. */
	pthread_mutex_t snap_lock;
	enum vdev_state snap_state;
	char snap_reason[128];
	struct mic_dma_chan *dma; /* host channel for large copies, or NULL */
	int dma_off;      /* a copy failed or timed out: CPU only until the card resets */
	uint64_t dma_bytes, dma_copies; /* moved by DMA, for tests and status */
	uint64_t dma_irq_waits;         /* of those, waited for by interrupt */
	/* micctl stats: added by the backend's serve(), zeroed by a card reset
	 * only (host/stats.h) */
	struct vdev_stats stats;
};

/* Copies of at least this many bytes between card memory and a backend
 * buffer in the card's host memory pool go by DMA; smaller ones, and
 * buffers the engine cannot reach, by CPU. */
#define VDEV_DMA_MIN (16u << 10)
/* Copies of at least this many bytes wait for their completion interrupt
 * asleep instead of polling: the engine's worker gets the CPU, and the
 * wake-up comes when the copy ends rather than at the end of a backoff
 * sleep.  Smaller copies end before a sleep would pay off. */
#define VDEV_DMA_IRQ_MIN (256u << 10)
/* Chains a backend serves per queue and wake-up: a card that keeps adding
 * buffers cannot keep the device lock (and micd's main loop) forever. */
#define VDEV_BUDGET 64

/* Counts one more chain against a serve()'s budget left (from VDEV_BUDGET):
 * 0 once it is spent, with vd->more set to come back without sleeping. */
int vdev_budget(struct vdev *vd, unsigned *left);

/* Adds the device described by t to the card's device page and starts its
 * thread.  vd->ops, priv and fd are set by the backend beforehand.  On
 * failure what it did is undone (vdev_stop): the backend only frees its
 * own state. */
int vdev_start(struct vdev *vd, struct mic_vop_host *vop, struct mic_hw_view *view,
	       const char *card, const struct mic_vop_dev_template *t);
/* Stops the thread; the owner then releases vd->dma and calls ops->destroy. */
void vdev_stop(struct vdev *vd);
/* The card no longer runs a driver for it (reset, halt, crash). */
void vdev_card_gone(struct vdev *vd);
/* Holding the lock keeps the device thread out of the rings and the DMA
 * channel, e.g. while the card is reset underneath; an out-of-process
 * backend is stopped too (ops->quiesce). */
void vdev_lock(struct vdev *vd);
void vdev_unlock(struct vdev *vd);
void vdev_card_gone_locked(struct vdev *vd);
/* The copy hook behind VDEV_DMA_MIN (mic_vop_copy_fn), ctx = the vdev. */
int vdev_dma_copy(void *ctx, enum mic_vop_dir dir, uint64_t card_addr, void *card_ptr,
		  void *host_buf, size_t len);
/* The state as of the device thread's last wake-up; the reason (broken
 * only, else empty) into why. */
enum vdev_state vdev_state(struct vdev *vd, char *why, size_t len);
/* Takes in what the card changed (its driver came up, reset, broke the
 * device) and publishes the state now rather than at the device thread's
 * next wake-up; serves nothing.  The host driver calls it when the card
 * reports online, so that `online` means every device the card drives is
 * ready (or broken, with the reason) in the status. */
void vdev_refresh(struct vdev *vd);
/* Test hook (tests/fuzz/fuzz_backends.c): one wake-up of the device thread,
 * run synchronously by the caller: takes the lock, checks the device and
 * serves it if the card's driver is ready, exactly as the thread does.
 * The thread keeps running; the lock serialises the two. */
void vdev_serve_once(struct vdev *vd);

#endif
