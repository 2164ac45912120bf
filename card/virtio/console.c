/* SPDX-License-Identifier: MIT */
/*
 * virtio-console driver of the card: the card's console is a PTY in the card
 * OS with a shell on its slave, respawned when it exits, so that the host's
 * terminal reaches an ordinary shell; it also carries the card OS log, and
 * drops nothing either way.  Design: docs/architecture.md 3.11.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_console.h>
#include <linux/virtio_ids.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "card/vop.h"
#include "vop/card/vop_card.h"

enum { VQ_RX = 0, VQ_TX = 1 };
#define NBUF 32
#define BUF_SIZE 4096u

struct cbuf {
	uint64_t addr;
	char *ptr;
};

struct vcon {
	struct cos *os;
	struct cos_vdev *vd;
	struct mic_vop_vq *rx, *tx;
	int master;
	char pts[64];
	pid_t shell;
	struct cbuf rxb[NBUF], txb[NBUF];
	int tx_free[NBUF];
	int ntx_free;
	/* receive buffers whose data is not yet all written to the PTY, in order */
	int pend[NBUF];
	uint32_t pend_len[NBUF], pend_off;
	int npend;
	int in_tee; /* cardlog -> console, not re-entrant */
};

static void update_events(struct vcon *v)
{
	uint32_t ev = (v->ntx_free ? EPOLLIN : 0) | (v->npend ? EPOLLOUT : 0);
	cos_watch_mod(v->os->loop, v->master, ev);
}

static void tx_send(struct vcon *v, const char *data, size_t len)
{
	int i = v->tx_free[--v->ntx_free];
	memcpy(v->txb[i].ptr, data, len);
	struct mic_vop_sg sg = { v->txb[i].addr, (uint32_t)len };
	mic_vop_vq_add_outbuf(v->tx, &sg, 1, (void *)(uintptr_t)(i + 1));
}

static void post_rx(struct vcon *v, int i)
{
	struct mic_vop_sg sg = { v->rxb[i].addr, BUF_SIZE };
	mic_vop_vq_add_inbuf(v->rx, &sg, 1, (void *)(uintptr_t)(i + 1));
}

/* Writes pending received data to the PTY, reposting drained buffers. */
static void flush_rx(struct vcon *v)
{
	int reposted = 0;
	while (v->npend) {
		int i = v->pend[0];
		uint32_t len = v->pend_len[0];
		while (v->pend_off < len) {
			ssize_t n = write(v->master, v->rxb[i].ptr + v->pend_off, len - v->pend_off);
			if (n <= 0)
				goto out; /* the shell is not reading: wait for EPOLLOUT */
			v->pend_off += (uint32_t)n;
		}
		v->pend_off = 0;
		memmove(v->pend, v->pend + 1, (size_t)(v->npend - 1) * sizeof(v->pend[0]));
		memmove(v->pend_len, v->pend_len + 1, (size_t)(v->npend - 1) * sizeof(v->pend_len[0]));
		v->npend--;
		post_rx(v, i);
		reposted = 1;
	}
out:
	if (reposted)
		mic_vop_vq_kick(v->rx);
}

static void tx_done(void *ctx, void *tok, uint32_t len)
{
	struct vcon *v = ctx;
	(void)len;
	v->tx_free[v->ntx_free++] = (int)(uintptr_t)tok - 1;
}

/* Queued in order; written to the PTY by flush_rx. */
static void rx_done(void *ctx, void *tok, uint32_t len)
{
	struct vcon *v = ctx;
	v->pend[v->npend] = (int)(uintptr_t)tok - 1;
	v->pend_len[v->npend++] = len > BUF_SIZE ? BUF_SIZE : len;
}

static void on_doorbell(void *ctx, uint32_t events)
{
	struct vcon *v = ctx;
	(void)events;
	mbus_ack_irq(&v->vd->mdev, v->vd->line);
	mic_vop_vq_drain(v->tx, tx_done, v);
	mic_vop_vq_drain(v->rx, rx_done, v);
	flush_rx(v);
	update_events(v);
}

static void on_pty(void *ctx, uint32_t events)
{
	struct vcon *v = ctx;
	if (events & EPOLLOUT)
		flush_rx(v);
	if (events & (EPOLLIN | EPOLLHUP)) {
		int sent = 0;
		while (v->ntx_free) {
			int i = v->tx_free[v->ntx_free - 1];
			ssize_t n = read(v->master, v->txb[i].ptr, BUF_SIZE);
			if (n <= 0)
				break; /* EAGAIN, or EIO while no shell holds the slave */
			v->ntx_free--;
			struct mic_vop_sg sg = { v->txb[i].addr, (uint32_t)n };
			mic_vop_vq_add_outbuf(v->tx, &sg, 1, (void *)(uintptr_t)(i + 1));
			sent = 1;
		}
		if (sent)
			mic_vop_vq_kick(v->tx);
	}
	update_events(v);
}

static void spawn_shell(struct vcon *v);

static void on_shell_exit(void *ctx, pid_t pid, int status)
{
	struct vcon *v = ctx;
	(void)pid;
	(void)status;
	v->shell = 0;
	if (v->os->halting)
		return;
	spawn_shell(v);
}

static void spawn_shell(struct vcon *v)
{
	char ps1[64];
	snprintf(ps1, sizeof(ps1), "PS1=%s:\\w# ", v->os->bp.name);
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int s = open(v->pts, O_RDWR); /* first tty opened: our controlling tty */
		if (s < 0)
			_exit(127);
		ioctl(s, TIOCSCTTY, 0);
		dup2(s, 0);
		dup2(s, 1);
		dup2(s, 2);
		/* The shell holds its PTY and nothing else of the card runtime:
		 * no hardware fd, no doorbell, no FUSE session. */
		syscall(SYS_close_range, 3, ~0u, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		char *const argv[] = { "-sh", NULL };
		char *const envp[] = { "HOME=/root", "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
				       "TERM=linux", ps1, NULL };
		chdir("/root");
		execve("/bin/sh", argv, envp);
		_exit(127);
	}
	if (pid > 0) {
		v->shell = pid;
		cos_on_exit(v->os->loop, pid, on_shell_exit, v);
	}
}

/* Card OS messages also go to the console. */
static void log_tee(void *ctx, const char *line, size_t len)
{
	struct vcon *v = ctx;
	if (v->in_tee || !v->ntx_free)
		return; /* the console is busy; the log ring keeps the message */
	v->in_tee = 1;
	tx_send(v, line, len > BUF_SIZE ? BUF_SIZE : len);
	mic_vop_vq_kick(v->tx);
	v->in_tee = 0;
}

static int alloc_bufs(struct vcon *v, struct cbuf *b)
{
	for (int i = 0; i < NBUF; i++)
		if (!(b[i].ptr = cos_vdev_alloc(v->vd, BUF_SIZE, &b[i].addr)))
			return -ENOMEM;
	return 0;
}

static int open_pty(struct vcon *v)
{
	v->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (v->master < 0 || grantpt(v->master) < 0 || unlockpt(v->master) < 0 ||
	    ptsname_r(v->master, v->pts, sizeof(v->pts)))
		return -errno;
	return 0;
}

/* The console's size (VIRTIO_CONSOLE_F_SIZE) is the card PTY's window
 * size: the shell and full-screen programs follow the host's terminal. */
static void apply_size(struct cos_vdev *vd)
{
	struct vcon *v = vd->mdev.priv;
	struct virtio_console_config cfg;
	if (!v || mic_vop_cdev_read_config(vd->cdev, 0, &cfg, sizeof(cfg)) < 0 || !cfg.cols ||
	    !cfg.rows)
		return;
	struct winsize ws = { .ws_row = cfg.rows, .ws_col = cfg.cols };
	if (ioctl(v->master, TIOCSWINSZ, &ws) == 0)
		cardlog(&v->os->log, "virtio-console: %ux%u", cfg.cols, cfg.rows);
}

static int vcon_probe(struct cos_vdev *vd)
{
	struct mbus_device *dev = &vd->mdev;
	struct cos *os = vd->os;
	struct vcon *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->os = os;
	v->vd = vd;
	v->master = -1;
	dev->priv = v;
	uint64_t f = 0;
	struct mic_vop_vq *vq[2];
	int rc = cos_vdev_setup(vd, 1ull << VIRTIO_CONSOLE_F_SIZE, &f, vq, 2);
	if (!rc) {
		v->rx = vq[VQ_RX];
		v->tx = vq[VQ_TX];
		rc = alloc_bufs(v, v->rxb);
	}
	if (!rc)
		rc = alloc_bufs(v, v->txb);
	if (!rc)
		rc = open_pty(v);
	if (rc)
		goto fail;
	for (int i = 0; i < NBUF; i++) {
		v->tx_free[v->ntx_free++] = i;
		post_rx(v, i);
	}
	if ((rc = cos_vdev_ready(vd, on_doorbell, v)) ||
	    (rc = cos_watch(os->loop, v->master, EPOLLIN, on_pty, v)))
		goto fail;
	mic_vop_vq_kick(v->rx);
	vd->config_changed = apply_size;
	apply_size(vd);
	spawn_shell(v);
	os->log.tee = log_tee;
	os->log.tee_ctx = v;
	cardlog(&os->log, "bus: probe virtio-console: shell on %s (features %#llx)", v->pts,
		(unsigned long long)f);
	return 0;
fail:
	cardlog(&os->log, "bus: probe virtio-console failed: %s", strerror(-rc));
	cos_vdev_release(vd);
	if (v->master >= 0)
		close(v->master);
	free(v);
	dev->priv = NULL;
	return rc;
}

static void vcon_remove(struct cos_vdev *vd)
{
	struct mbus_device *dev = &vd->mdev;
	struct vcon *v = dev->priv;
	struct cos *os = v->os;
	os->log.tee = NULL;
	v->vd->config_changed = NULL;
	cardlog(&os->log, "bus: remove virtio-console");
	if (v->shell > 0) {
		cos_on_exit_cancel(os->loop, v->shell);
		kill(v->shell, SIGKILL);
	}
	cos_unwatch(os->loop, v->master);
	cos_vdev_release(v->vd);
	close(v->master);
	free(v);
	dev->priv = NULL;
}

static const struct cos_virtio_driver vcon_driver = {
	.name = "virtio-console", .virtio_id = VIRTIO_ID_CONSOLE,
	.probe = vcon_probe, .remove = vcon_remove,
};
COS_VIRTIO_DRIVER(vcon_driver);
