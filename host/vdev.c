/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "host/vdev.h"
#include "lib/log.h"

/* Card-caused lines (a reset asked for, a breakage, a failed copy) go
 * through the device's limit: a card that loops on them must not flood
 * the log nor hold the device lock in a slow write to it. */
#define CARD_LOG_PER_S 5
#define CARD_LOG_BURST 20

static void __attribute__((format(printf, 3, 4)))
card_caused(struct vdev *vd, enum log_level lvl, const char *fmt, ...)
{
	uint64_t dropped;
	if (!log_limit_take(&vd->card_log, &dropped))
		return;
	if (dropped)
		log_warn("%s: %s: %llu more lines the card caused were not logged", vd->card,
			 vd->ops->name, (unsigned long long)dropped);
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(lvl, fmt, ap);
	va_end(ap);
}

/* Returns 1 (and logs once) if the card broke the device. */
static int is_broken(struct vdev *vd)
{
	const char *why;
	if (!mic_vop_host_dev_broken(vd->dev, &why))
		return 0;
	if (!vd->broken_logged && vd->ops->quiesce)
		vd->ops->quiesce(vd);
	if (!vd->broken_logged)
		card_caused(vd, LOG_ERR, "%s: %s device broken, needs reset: %s", vd->card,
			    vd->ops->name, why ? why : "unknown");
	vd->broken_logged = 1;
	vd->fd_events = 0;
	/* nothing to serve until the card resets it: no budget left over
	 * may keep the thread polling without a timeout */
	vd->more = 0;
	return 1;
}

/* Run by the transport right before it zeroes the rings (every cause,
 * always under vd->lock), and for a reset the card asked for, before it
 * acknowledges it: the backend in another process lets go of them first,
 * so nothing of its lands in the rings or the card's buffers after the
 * card was told they are its own again. */
static void quiesce_hook(void *ctx)
{
	struct vdev *vd = ctx;
	vd->ops->quiesce(vd);
}

const char *vdev_state_name(enum vdev_state s)
{
	static const char *const names[] = { [VDEV_WAITING] = "waiting", [VDEV_READY] = "ready",
					      [VDEV_BROKEN] = "broken" };
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "invalid";
}

static void publish_state(struct vdev *vd)
{
	const char *why = NULL;
	enum vdev_state st = VDEV_WAITING;
	if (mic_vop_host_dev_broken(vd->dev, &why))
		st = VDEV_BROKEN;
	else if (mic_vop_host_dev_ready(vd->dev))
		st = VDEV_READY;
	/* Broken is republished: the first reason may arrive after the state. */
	if (st == vd->snap_state && st != VDEV_BROKEN)
		return; /* unchanged: the common case on every wake-up */
	pthread_mutex_lock(&vd->snap_lock);
	vd->snap_state = st;
	snprintf(vd->snap_reason, sizeof(vd->snap_reason), "%s", st == VDEV_BROKEN && why ? why : "");
	pthread_mutex_unlock(&vd->snap_lock);
}

/* What the card changed since the last look: a reset, its driver coming
 * up.  False if the device is broken. */
static bool take_events(struct vdev *vd)
{
	int ev = mic_vop_host_dev_poll(vd->dev);
	/* Before the broken check: the backend must drop what it held from
	 * before the reset even when the card broke the device right after. */
	if (ev & MIC_VOP_EV_RESET) {
		card_caused(vd, LOG_INFO, "%s: %s device reset by the card", vd->card, vd->ops->name);
		vd->broken_logged = 0;
		vd->ops->reset(vd);
	}
	if (is_broken(vd))
		return false;
	if (ev & MIC_VOP_EV_READY)
		card_caused(vd, LOG_INFO, "%s: %s driver ready (features %#llx)", vd->card,
			    vd->ops->name, (unsigned long long)mic_vop_host_dev_features(vd->dev));
	return true;
}

static void check_device(struct vdev *vd)
{
	if (vd->ops->poll)
		vd->ops->poll(vd);
	if (!take_events(vd))
		return;
	vd->more = 0;
	if (mic_vop_host_dev_ready(vd->dev)) {
		vd->ops->serve(vd);
		if (is_broken(vd)) /* serving may have found the fault */
			vd->more = 0;
	} else {
		vd->fd_events = 0;
	}
}

static void *vdev_thread(void *arg)
{
	struct vdev *vd = arg;
	unsigned db = mic_vop_host_dev_c2h_db(vd->dev);
	short want = 0;
	int more = 0;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = vd->stop_fd, .events = POLLIN },
			{ .fd = vd->view->irq_fd[db], .events = POLLIN },
			{ .fd = vd->fd, .events = want | vd->fd_always },
		};
		int n = poll(p, vd->fd >= 0 && p[2].events ? 3 : 2, more ? 0 : 1000);
		if (n < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			break;
		/* Also on timeouts: a doorbell the card forgot must not stall us. */
		pthread_mutex_lock(&vd->lock);
		vd->fd_revents = n > 0 && vd->fd >= 0 && p[2].events ? p[2].revents : 0;
		if (p[1].revents) {
			mic_irq_ack(vd->view, db);
			vd->kicked = 1;
		}
		check_device(vd);
		vd->kicked = 0;
		vd->fd_revents = -1;
		want = vd->fd_events;
		more = vd->more;
		publish_state(vd);
		pthread_mutex_unlock(&vd->lock);
	}
	return NULL;
}

void vdev_refresh(struct vdev *vd)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->dev)
		take_events(vd);
	publish_state(vd);
	pthread_mutex_unlock(&vd->lock);
}

void vdev_serve_once(struct vdev *vd)
{
	pthread_mutex_lock(&vd->lock);
	check_device(vd);
	publish_state(vd);
	pthread_mutex_unlock(&vd->lock);
}

int vdev_start(struct vdev *vd, struct mic_vop_host *vop, struct mic_hw_view *view,
	       const char *card, const struct mic_vop_dev_template *t)
{
	snprintf(vd->card, sizeof(vd->card), "%s", card);
	vd->view = view;
	pthread_mutex_init(&vd->lock, NULL);
	pthread_mutex_init(&vd->snap_lock, NULL);
	vd->snap_state = VDEV_WAITING;
	vd->fd_revents = -1;
	log_limit_init(&vd->card_log, CARD_LOG_PER_S, CARD_LOG_BURST);
	vd->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = vd->stop_fd < 0 ? -errno : mic_vop_host_add_device(vop, t, &vd->dev);
	if (!rc) {
		mic_vop_host_dev_set_copy(vd->dev, vdev_dma_copy, vd);
		if (vd->ops->quiesce)
			mic_vop_host_dev_set_reset_hook(vd->dev, quiesce_hook, vd);
		rc = -pthread_create(&vd->thread, NULL, vdev_thread, vd);
	}
	if (rc) {
		vdev_stop(vd); /* undoes what was done; the caller only destroys */
		return rc;
	}
	vd->thread_started = 1;
	return 0;
}

void vdev_stop(struct vdev *vd)
{
	if (vd->thread_started) {
		uint64_t one = 1;
		if (write(vd->stop_fd, &one, sizeof(one)) < 0) { /* cannot fail: fresh eventfd */ }
		pthread_join(vd->thread, NULL);
		vd->thread_started = 0;
	}
	if (vd->stop_fd >= 0)
		close(vd->stop_fd);
	vd->stop_fd = -1;
	pthread_mutex_destroy(&vd->lock);
	pthread_mutex_destroy(&vd->snap_lock);
}

int vdev_budget(struct vdev *vd, unsigned *left)
{
	if (!*left) {
		vd->more = 1;
		return 0;
	}
	(*left)--;
	return 1;
}

void vdev_lock(struct vdev *vd)
{
	pthread_mutex_lock(&vd->lock);
	if (vd->ops->quiesce)
		vd->ops->quiesce(vd);
}

void vdev_unlock(struct vdev *vd)
{
	pthread_mutex_unlock(&vd->lock);
}

void vdev_card_gone_locked(struct vdev *vd)
{
	if (!vd->dev)
		return;
	if (vd->ops->quiesce)
		vd->ops->quiesce(vd);
	mic_vop_host_dev_reset(vd->dev);
	vd->ops->reset(vd);
	vd->broken_logged = 0;
	vd->dma_off = 0;
	vd->fd_events = 0;
	vd->more = 0;
	publish_state(vd);
}

void vdev_card_gone(struct vdev *vd)
{
	vdev_lock(vd);
	vdev_card_gone_locked(vd);
	vdev_unlock(vd);
}

int vdev_dma_copy(void *ctx, enum mic_vop_dir dir, uint64_t card_addr, void *card_ptr,
		  void *host_buf, size_t len)
{
	struct vdev *vd = ctx;
	(void)card_ptr;
	uint8_t *pool = vd->view->hostmem.va, *buf = host_buf;
	if (!vd->dma || vd->dma_off || len < VDEV_DMA_MIN || buf < pool ||
	    len > vd->view->hostmem.size || (uint64_t)(buf - pool) > vd->view->hostmem.size - len)
		return 1;
	uint64_t host_addr = mic_dma_pool_addr((uint64_t)(buf - pool));
	/* The channel's ring and completion word live in memory the card can
	 * write: never wait long for it (200 ms + 128 MB/s, far above a real
	 * copy even on a loaded machine), and after one failure copy by CPU
	 * until the card is reset, so a hostile card cannot stretch every copy
	 * into a timeout. */
	int timeout = 200 + (int)(len >> 17);
	enum mic_dma_wait_mode mode = len >= VDEV_DMA_IRQ_MIN ? MIC_DMA_WAIT_IRQ : MIC_DMA_WAIT_POLL;
	int rc = dir == MIC_VOP_CARD_TO_HOST ?
			 mic_dma_memcpy_timeout(vd->dma, host_addr, card_addr, len, mode, timeout) :
			 mic_dma_memcpy_timeout(vd->dma, card_addr, host_addr, len, mode, timeout);
	if (rc) {
		card_caused(vd, LOG_WARN, "%s: %s: DMA copy failed (%s): CPU copies until the card resets",
			    vd->card, vd->ops->name, strerror(rc < 0 ? -rc : rc));
		vd->dma_off = 1;
		if (mic_dma_chan_reset(vd->dma) < 0) {
			/* The engine may still complete the copy later, over
			 * whatever a CPU copy put there: fail this one instead. */
			card_caused(vd, LOG_ERR, "%s: %s: DMA channel does not reset: copy failed",
				    vd->card, vd->ops->name);
			return -EIO;
		}
		return 1;
	}
	vd->dma_bytes += len;
	vd->dma_copies++;
	vd->dma_irq_waits += mode == MIC_DMA_WAIT_IRQ;
	return 0;
}

enum vdev_state vdev_state(struct vdev *vd, char *why, size_t len)
{
	pthread_mutex_lock(&vd->snap_lock);
	enum vdev_state st = vd->snap_state;
	snprintf(why, len, "%s", vd->snap_reason);
	pthread_mutex_unlock(&vd->snap_lock);
	return st;
}
