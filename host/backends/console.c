/* SPDX-License-Identifier: MIT */
/*
 * virtio-console backend: the card's console is a PTY on the host, linked as
 * <rundir>/<card>/console (micctl console).  Nothing is dropped: see
 * docs/architecture.md, 3.11.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "mic/console.h"
#include "lib/log.h"

enum { VQ_RX = 0, VQ_TX = 1 }; /* port 0: receiveq (to card), transmitq (from card) */
#define TX_BUF (64u << 10)
#define RX_BUF (16u << 10)

struct console {
	struct vdev vd;
	int master, slave;
	char link[PATH_MAX];
	char pts[64];
	char out[TX_BUF];     /* from the card, not yet written to the PTY */
	size_t out_off, out_len;
	char in[RX_BUF];      /* from the PTY, not yet given to the card */
	size_t in_len;
	struct mic_vop_chain chain;
	struct mic_console_config cfg; /* what the config space says, under vd.lock */
};

/* Card -> host: take transmit chains while the PTY accepts what we have. */
static int serve_tx(struct console *c)
{
	struct mic_vop_host_dev *dev = c->vd.dev;
	int used = 0;
	for (unsigned left = VDEV_BUDGET; vdev_budget(&c->vd, &left);) {
		while (c->out_off < c->out_len) {
			ssize_t n = write(c->master, c->out + c->out_off, c->out_len - c->out_off);
			if (n <= 0)
				return used; /* PTY full: come back on POLLOUT */
			c->out_off += (size_t)n;
		}
		c->out_off = c->out_len = 0;
		if (mic_vop_host_vq_get(dev, VQ_TX, &c->chain) != 1)
			return used;
		struct iovec iov = { c->out, sizeof(c->out) };
		ssize_t n = mic_vop_host_chain_pull(dev, &c->chain, &iov, 1);
		if (n < 0 || mic_vop_host_vq_put(dev, &c->chain) < 0)
			return used;
		c->out_len = (size_t)n;
		vdev_stat_add(&c->vd.stats, VS_FROM_CARD_BYTES, (uint64_t)n);
		used = 1;
	}
	return used;
}

/* Host -> card: fill the card's receive buffers with what the PTY has.  One
 * read per wake-up, and only when poll said the PTY is readable (not a read
 * that says EAGAIN after each key); the card hears of each chain at once,
 * before we go back to poll (with EVENT_IDX, a doorbell only when it is
 * waiting for one). */
static int serve_rx(struct console *c)
{
	struct mic_vop_host_dev *dev = c->vd.dev;
	int used = 0, can_read = !!(c->vd.fd_revents & POLLIN);
	for (unsigned left = VDEV_BUDGET; vdev_budget(&c->vd, &left);) {
		if (c->in_len == 0) {
			if (!can_read)
				return used;
			can_read = 0;
			ssize_t n = read(c->master, c->in, sizeof(c->in));
			if (n <= 0)
				return used;
			c->in_len = (size_t)n;
		}
		if (mic_vop_host_vq_get(dev, VQ_RX, &c->chain) != 1)
			return used; /* no buffer posted: the card's kick wakes us */
		struct iovec iov = { c->in, c->in_len };
		ssize_t n = mic_vop_host_chain_push(dev, &c->chain, &iov, 1);
		if (n < 0 || mic_vop_host_vq_put(dev, &c->chain) < 0)
			return used;
		mic_vop_host_vq_notify(dev, VQ_RX);
		memmove(c->in, c->in + n, c->in_len - (size_t)n);
		c->in_len -= (size_t)n;
		vdev_stat_add(&c->vd.stats, VS_TO_CARD_BYTES, (uint64_t)n);
		used = 1;
	}
	return used;
}

static void console_serve(struct vdev *vd)
{
	struct console *c = vd->priv;
	if (serve_tx(c))
		mic_vop_host_vq_notify(vd->dev, VQ_TX);
	serve_rx(c);
	vd->fd_events = (short)((c->out_off < c->out_len ? POLLOUT : 0) | (c->in_len ? 0 : POLLIN));
}

static void console_reset(struct vdev *vd)
{
	/* Nothing to drop: what the card sent is still written to the PTY, what
	 * the user typed stays queued for the next card OS. */
	(void)vd;
}

static void console_destroy(struct vdev *vd)
{
	struct console *c = vd->priv;
	if (c->link[0]) {
		unlink(c->link);
		char *slash = strrchr(c->link, '/');
		if (slash) {
			*slash = 0;
			rmdir(c->link); /* <rundir>/<card>, if nothing else is in it */
		}
	}
	if (c->slave >= 0)
		close(c->slave);
	if (c->master >= 0)
		close(c->master);
	free(c);
}

int console_backend_resize(struct vdev *vd, unsigned cols, unsigned rows)
{
	struct console *c = vd->priv;
	if (!cols || !rows || cols > 0xffff || rows > 0xffff)
		return -EINVAL;
	struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
	ioctl(c->master, TIOCSWINSZ, &ws);
	vdev_lock(vd);
	c->cfg.std.cols = (uint16_t)cols;
	c->cfg.std.rows = (uint16_t)rows;
	/* Not waiting for the card's acknowledgement: micd's loop must not
	 * block on a card; a card that is down reads it at its next boot. */
	int rc = mic_vop_host_dev_config_change(vd->dev, &c->cfg, sizeof(c->cfg), 0);
	vdev_unlock(vd);
	return rc == -ETIMEDOUT ? 0 : rc;
}

int console_backend_session(struct vdev *vd, uint32_t id)
{
	struct console *c = vd->priv;
	vdev_lock(vd);
	int rc = -ENODEV;
	if (!mic_vop_host_dev_ready(vd->dev))
		rc = -ENODEV;
	else if (!(mic_vop_host_dev_features(vd->dev) & (1ull << MIC_CONSOLE_F_SESSION)))
		rc = -EOPNOTSUPP;
	else {
		c->cfg.session = id;
		rc = mic_vop_host_dev_config_change(vd->dev, &c->cfg, sizeof(c->cfg), 0);
	}
	vdev_unlock(vd);
	return rc;
}

static const enum vdev_stat console_stats[] = { VS_FROM_CARD_BYTES, VS_TO_CARD_BYTES };

static const struct vdev_ops console_ops = {
	.name = "console",
	.stats = console_stats,
	.nstats = sizeof(console_stats) / sizeof(console_stats[0]),
	.serve = console_serve,
	.reset = console_reset,
	.destroy = console_destroy,
};

static int open_pty(struct console *c)
{
	c->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (c->master < 0 || grantpt(c->master) < 0 || unlockpt(c->master) < 0 ||
	    ptsname_r(c->master, c->pts, sizeof(c->pts)) != 0)
		return -errno;
	c->slave = open(c->pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (c->slave < 0)
		return -errno;
	/* A transparent byte pipe: the card's own PTY does the line discipline. */
	struct termios t;
	if (tcgetattr(c->slave, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(c->slave, TCSANOW, &t);
	}
	return 0;
}

int console_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
			  const char *rundir, struct vdev **out)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->master = c->slave = -1;
	c->vd.ops = &console_ops;
	c->vd.priv = c;
	c->vd.fd = -1;
	int rc = open_pty(c);
	if (rc) {
		console_destroy(&c->vd);
		return rc;
	}
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%.*s/%s", (int)(sizeof(dir) - 40), rundir, card);
	mkdir(dir, 0755);
	snprintf(c->link, sizeof(c->link), "%.*s/console", (int)(sizeof(c->link) - 10), dir);
	unlink(c->link);
	if (symlink(c->pts, c->link) < 0) {
		rc = -errno;
		c->link[0] = 0;
		console_destroy(&c->vd);
		return rc;
	}
	c->vd.fd = c->master;
	c->cfg = (struct mic_console_config){ .std = { .cols = 80, .rows = 25 } };
	struct mic_vop_dev_template t = {
		.type = VIRTIO_ID_CONSOLE,
		.num_vq = 2,
		.vq_num = { 128, 128 },
		.features = MIC_VOP_TRANSPORT_FEATURES | (1ull << VIRTIO_CONSOLE_F_SIZE) |
			    (1ull << MIC_CONSOLE_F_SESSION),
		.config_len = sizeof(c->cfg),
		.config = &c->cfg,
	};
	rc = vdev_start(&c->vd, vop, view, card, &t);
	if (rc) {
		console_destroy(&c->vd);
		return rc;
	}
	mic_vop_host_dev_set_max_chain(c->vd.dev, TX_BUF);
	log_info("%s: console on %s (%s)", card, c->pts, c->link);
	*out = &c->vd;
	return 0;
}
