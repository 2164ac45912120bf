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
#include <termios.h>
#include <unistd.h>

#include "card/vop.h"
#include "mic/console.h"
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
	int tx_cb; /* completions interrupt us: every transmit buffer is in flight */
	/* receive buffers whose data is not yet all written to the PTY, in order */
	int pend[NBUF];
	uint32_t pend_len[NBUF], pend_off;
	int npend;
	int in_tee; /* cardlog -> console, not re-entrant */
	/* Scripted sessions (MIC_CONSOLE_F_SESSION): docs/architecture.md 3.11. */
	int has_session;
	uint32_t session;      /* the host's session id last seen in config */
	int script;            /* the shell running (or ending) is a session's */
	uint32_t script_id;    /* that session's id */
	int ending;            /* its shell exited: drain, then the end marker */
	int end_status;
	int hold;              /* the PTY slave, held during a session: no hang-up */
	struct termios term;   /* the PTY's settings at open: the terminal's */
	char mark[2 * MIC_CONSOLE_MARK_MAX]; /* markers waiting for a buffer */
	size_t mark_len;
};

static void reclaim_tx(struct vcon *v);

static void update_events(struct vcon *v)
{
	if (!v->ntx_free)
		reclaim_tx(v);
	uint32_t ev = (v->ntx_free ? EPOLLIN : 0) | (v->npend ? EPOLLOUT : 0);
	cos_watch_mod(v->os->loop, v->master, ev);
}

static void tx_done(void *ctx, void *tok, uint32_t len)
{
	struct vcon *v = ctx;
	(void)len;
	v->tx_free[v->ntx_free++] = (int)(uintptr_t)tok - 1;
}

/*
 * Transmit buffers are taken back when one is needed, not on an interrupt
 * per completion (a wake-up of the card per chain, a third per key echo):
 * the host interrupts for them only while every buffer is in flight, and
 * then the PTY is not read until one comes back.
 */
static void reclaim_tx(struct vcon *v)
{
	for (;;) {
		void *tok;
		uint32_t len;
		while ((tok = mic_vop_vq_get_buf(v->tx, &len)))
			tx_done(v, tok, len);
		if (v->ntx_free) {
			if (v->tx_cb)
				mic_vop_vq_disable_cb(v->tx);
			v->tx_cb = 0;
			return;
		}
		if (v->tx_cb)
			return;
		v->tx_cb = 1;
		/* virtio: look again after enabling, or a completion that came
		 * in between would never interrupt us. */
		if (mic_vop_vq_enable_cb(v->tx))
			return;
	}
}

static void tx_add(struct vcon *v, int i, size_t len)
{
	v->ntx_free--;
	struct mic_vop_sg sg = { v->txb[i].addr, (uint32_t)len };
	mic_vop_vq_add_outbuf(v->tx, &sg, 1, (void *)(uintptr_t)(i + 1));
}

static void tx_send(struct vcon *v, const char *data, size_t len)
{
	int i = v->tx_free[v->ntx_free - 1];
	memcpy(v->txb[i].ptr, data, len);
	tx_add(v, i, len);
	mic_vop_vq_kick(v->tx);
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

/* A session marker goes out before anything more is read from the PTY. */
static void send_mark(struct vcon *v)
{
	if (v->mark_len && !v->ntx_free)
		reclaim_tx(v);
	if (!v->mark_len || !v->ntx_free)
		return;
	tx_send(v, v->mark, v->mark_len);
	v->mark_len = 0;
}

/*
 * PTY -> host while buffers last; 1 when the PTY had nothing more.  The
 * first chain is kicked at once: a key's echo is on its way before the
 * read that says EAGAIN (which may wait for the PTY's flush worker), and in
 * a stream the host starts writing while we read on.  The rest are kicked
 * together at the end (kicking each one woke micd about once per chain, for
 * no faster stream: docs/profile.md).  With EVENT_IDX a kick rings only
 * when the host waits for one.
 */
static int pty_to_host(struct vcon *v)
{
	int added = 0, drained = 0;
	send_mark(v);
	reclaim_tx(v);
	while (!v->mark_len && v->ntx_free) {
		int i = v->tx_free[v->ntx_free - 1];
		ssize_t n = read(v->master, v->txb[i].ptr, BUF_SIZE);
		if (n <= 0) {
			drained = 1; /* EAGAIN, or EIO while no shell holds the slave */
			break;
		}
		tx_add(v, i, (size_t)n);
		if (!added++)
			mic_vop_vq_kick(v->tx);
		if (!v->ntx_free)
			reclaim_tx(v);
	}
	if (added > 1)
		mic_vop_vq_kick(v->tx);
	return drained;
}

static void script_finish(struct vcon *v);

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
	reclaim_tx(v);
	mic_vop_vq_drain(v->rx, rx_done, v);
	flush_rx(v);
	send_mark(v);
	script_finish(v);
	update_events(v);
}

static void on_pty(void *ctx, uint32_t events)
{
	struct vcon *v = ctx;
	if (events & EPOLLOUT)
		flush_rx(v);
	if (events & (EPOLLIN | EPOLLHUP))
		pty_to_host(v);
	update_events(v);
}

static void spawn_shell(struct vcon *v);
static void log_tee(void *ctx, const char *line, size_t len);

static void on_shell_exit(void *ctx, pid_t pid, int status)
{
	struct vcon *v = ctx;
	(void)pid;
	v->shell = 0;
	if (v->os->halting)
		return;
	if (v->script) {
		v->ending = 1;
		v->end_status = status;
		script_finish(v);
		return;
	}
	spawn_shell(v);
}

/* The shell and its foreground jobs (it leads its own session). */
static void stop_shell(struct vcon *v)
{
	if (v->shell <= 0)
		return;
	cos_on_exit_cancel(v->os->loop, v->shell);
	kill(-v->shell, SIGKILL);
	kill(v->shell, SIGKILL);
	v->shell = 0;
}

static void set_mark(struct vcon *v, const char *what, uint32_t id, int status)
{
	char *p = v->mark + v->mark_len;
	size_t room = sizeof(v->mark) - v->mark_len;
	int n = status < 0 ? snprintf(p, room, "%c%s%08x%c", MIC_CONSOLE_MARK, what, id,
				      MIC_CONSOLE_MARK) :
			     snprintf(p, room, "%c%s%08x %d%c", MIC_CONSOLE_MARK, what, id, status,
				      MIC_CONSOLE_MARK);
	if (n > 0 && (size_t)n < room)
		v->mark_len += (size_t)n;
	send_mark(v);
}

/*
 * A scripted session: the host's input is a script, its output goes to a
 * program, not to a person.  The shell that runs it reads commands from
 * the PTY as a file (no prompt, no line editing, hence no terminal
 * queries) on a PTY that does not echo or turn \n into \r\n; the card OS
 * log stays in the log ring.  Its output is framed by markers (what came
 * before belongs to earlier sessions).
 */
static void script_start(struct vcon *v, uint32_t id)
{
	/* One session at a time: one still running ends here, and its
	 * micctl learns it. */
	if (v->script)
		set_mark(v, MIC_CONSOLE_END, v->script_id, v->ending ? v->end_status : SIGKILL);
	stop_shell(v);
	v->os->log.tee = NULL;
	if (v->hold < 0)
		v->hold = open(v->pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
	/* Unread output and input of the shell that was there are not the
	 * session's. */
	tcflush(v->master, TCIOFLUSH);
	if (v->hold >= 0)
		tcflush(v->hold, TCIOFLUSH);
	struct termios t = v->term;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_oflag &= ~(tcflag_t)OPOST;
	tcsetattr(v->master, TCSANOW, &t);
	v->script = 1;
	v->script_id = id;
	v->ending = 0;
	set_mark(v, MIC_CONSOLE_BEGIN, id, -1);
	spawn_shell(v);
}

/* Once the session's shell has exited and its output is all sent: the end
 * marker, and the terminal's shell again. */
static void script_finish(struct vcon *v)
{
	if (!v->ending || !pty_to_host(v) || v->os->halting)
		return;
	v->script = v->ending = 0;
	set_mark(v, MIC_CONSOLE_END, v->script_id, v->end_status);
	tcsetattr(v->master, TCSANOW, &v->term);
	if (v->hold >= 0)
		close(v->hold);
	v->hold = -1;
	v->os->log.tee = log_tee;
	v->os->log.tee_ctx = v;
	spawn_shell(v);
}

static void spawn_shell(struct vcon *v)
{
	int script = v->script;
	char ps1[64];
	snprintf(ps1, sizeof(ps1), "PS1=%s:\\w# ", v->os->bp.name);
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		/* The terminal's shell: the first tty opened, its controlling
		 * tty.  A script's shell has none: when it ends, what it left
		 * running in the background gets no hang-up (as under the
		 * terminal's shell, which stays). */
		int s = open(v->pts, O_RDWR | (script ? O_NOCTTY : 0));
		if (s < 0)
			_exit(127);
		if (!script)
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
		/* A login shell either way (the card's /etc/profile); a script
		 * is read from the terminal as a file. */
		char *const argv[] = { "-sh", script ? "/proc/self/fd/0" : NULL, NULL };
		/* A script's output goes to a program: no colours either. */
		char *const envp[] = { "HOME=/root", "PATH=/bin:/sbin:/usr/bin:/usr/sbin",
				       script ? "TERM=dumb" : "TERM=linux",
				       script ? "LS_COLORS=none" : ps1, NULL };
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
	if (v->in_tee)
		return;
	if (!v->ntx_free)
		reclaim_tx(v);
	if (!v->ntx_free)
		return; /* the console is busy; the log ring keeps the message */
	v->in_tee = 1;
	tx_send(v, line, len > BUF_SIZE ? BUF_SIZE : len);
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
	tcgetattr(v->master, &v->term);
	return 0;
}

/* The console's size (VIRTIO_CONSOLE_F_SIZE) is the card PTY's window
 * size: the shell and full-screen programs follow the host's terminal
 * (the kernel sends the shell's foreground job SIGWINCH).  A new session
 * id starts a scripted session, 0 ends one. */
static void apply_config(struct cos_vdev *vd)
{
	struct vcon *v = vd->mdev.priv;
	struct mic_console_config cfg = { 0 };
	size_t len = v && v->has_session ? sizeof(cfg) : sizeof(cfg.std);
	if (!v || mic_vop_cdev_read_config(vd->cdev, 0, &cfg, len) < 0)
		return;
	struct winsize ws = { .ws_row = cfg.std.rows, .ws_col = cfg.std.cols };
	if (cfg.std.cols && cfg.std.rows && ioctl(v->master, TIOCSWINSZ, &ws) == 0)
		cardlog(&v->os->log, "virtio-console: %ux%u", cfg.std.cols, cfg.std.rows);
	if (!v->has_session || cfg.session == v->session)
		return;
	v->session = cfg.session;
	if (cfg.session) {
		script_start(v, cfg.session);
	} else if (v->script && !v->ending) {
		/* The host ended the session: its shell goes, script_finish
		 * follows from its exit. */
		if (v->shell > 0)
			kill(-v->shell, SIGKILL);
	}
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
	v->master = v->hold = -1;
	dev->priv = v;
	uint64_t f = 0;
	struct mic_vop_vq *vq[2];
	int rc = cos_vdev_setup(vd, (1ull << VIRTIO_CONSOLE_F_SIZE) | (1ull << MIC_CONSOLE_F_SESSION),
				&f, vq, 2);
	v->has_session = !!(f & (1ull << MIC_CONSOLE_F_SESSION));
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
	mic_vop_vq_disable_cb(v->tx); /* reclaim_tx arms it when needed */
	if ((rc = cos_vdev_ready(vd, on_doorbell, v)) ||
	    (rc = cos_watch(os->loop, v->master, EPOLLIN, on_pty, v)))
		goto fail;
	mic_vop_vq_kick(v->rx);
	/* A session the host asked an earlier card OS for is not this one's. */
	struct mic_console_config cfg = { 0 };
	if (v->has_session && mic_vop_cdev_read_config(vd->cdev, 0, &cfg, sizeof(cfg)) == 0)
		v->session = cfg.session;
	vd->config_changed = apply_config;
	apply_config(vd);
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
	if (v->hold >= 0)
		close(v->hold);
	close(v->master);
	free(v);
	dev->priv = NULL;
}

static const struct cos_virtio_driver vcon_driver = {
	.name = "virtio-console", .virtio_id = VIRTIO_ID_CONSOLE,
	.probe = vcon_probe, .remove = vcon_remove,
};
COS_VIRTIO_DRIVER(vcon_driver);
