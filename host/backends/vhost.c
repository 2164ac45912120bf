/* SPDX-License-Identifier: MIT */
/*
 * A card's virtio device served by a vhost-user backend in another process
 * (host/vhost_user.h speaks the protocol): micd keeps the device page, its
 * checks and the state, the backend walks the rings itself through a
 * memory table of what the card's device can reach.  Design, trust and
 * what a hostile card can do: docs/architecture.md 3.21.
 */
#include <errno.h>
#include <endian.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "host/backends/fs_filter.h"
#include "host/vhost_user.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "lib/proc.h"

#define VQ_NUM 128
#define RECONNECT_MIN_MS 500
#define RECONNECT_MAX_MS 8000
#define TAG_SOCKET UINT64_MAX       /* epoll data of the socket; rings use their index */
#define TAG_CHILD (UINT64_MAX - 1)  /* the backend micd started */
#define START_WAIT_MS 5000          /* a backend micd started has this long to listen */
#define HEALTHY_MS 30000            /* ran this long: the next restart is quick again */
#define KILL_WAIT_MS 2000           /* a killed backend is gone within this */

/* What micd must know of a device type to put it in the device page: the
 * rest is the backend's business.  virtio-fs plugs in as a row with
 * VIRTIO_ID_FS, its 40-byte config (tag, num_request_queues) and nvq =
 * 1 + num_request_queues read from that config. */
struct vhost_type {
	const char *name;
	int8_t virtio_id;
	uint64_t dev_features; /* device bits passed through to the card */
	uint8_t config_len;    /* config bytes read from the backend and published */
	unsigned (*nvq)(const uint8_t *config);
};

static unsigned one_queue(const uint8_t *config)
{
	(void)config;
	return 1;
}

/* virtio-fs: a high-priority queue and the request queues of the config.
 * virtiofsd has no config space of its own (QEMU builds it from its
 * -device options), so micd builds it from the card's config. */
static unsigned fs_queues(const uint8_t *config)
{
	struct virtio_fs_config c;
	memcpy(&c, config, sizeof(c));
	uint32_t n = le32toh(c.num_request_queues);
	return n > MIC_MAX_VRINGS ? MIC_MAX_VRINGS + 1 : 1 + n;
}

static const struct vhost_type type_fs = {
	.name = "fs",
	.virtio_id = VIRTIO_ID_FS,
	.dev_features = 0,
	.config_len = sizeof(struct virtio_fs_config),
	.nvq = fs_queues,
};

/* The features and config fields the card's block driver knows (up to
 * blk_size, as the built-in backend): anything more the backend offers
 * stays between it and micd. */
static const struct vhost_type type_blk = {
	.name = "block",
	.virtio_id = VIRTIO_ID_BLOCK,
	.dev_features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
			(1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO),
	.config_len = offsetof(struct virtio_blk_config, blk_size) + sizeof(uint32_t),
	.nvq = one_queue,
};

struct vhost {
	struct vdev vd;
	const struct vhost_type *type;
	char path[108];
	struct vhu_conn *conn;   /* NULL while the backend is gone */
	unsigned nvq;
	int kick[MIC_MAX_VRINGS], call[MIC_MAX_VRINGS];
	int started;             /* rings handed to the backend */
	uint64_t offered;        /* what the card was offered */
	/* A user's backend absent when micd started: the card was offered
	 * VERSION_1 and 0 sectors until it connects (first_contact). */
	int absent;
	uint8_t config[VHU_MAX_CONFIG]; /* config space as published */
	char gone[256];          /* why the backend is gone, "" if it is not */
	uint64_t next_try_ms;
	unsigned backoff_ms;
	/* A backend micd starts and restarts (disk_vhost_user_cmd), else "". */
	char cmd[512];
	/* id_count != 0: it runs as root of a user namespace whose ids
	 * 0..id_count-1 are the host's id_base.. (the card's), and takes its
	 * listening socket from micd as fd 3 (it cannot create one in micd's
	 * run directory). */
	uint32_t id_base, id_count;
	int child_pidfd;         /* -1 when none runs */
	pid_t child_pid;         /* and its process group */
	uint64_t child_since_ms, respawn_ms;
	unsigned respawn_backoff_ms, restarts;
};

extern char **environ;

/* A listening socket at path (a stale one of the last instance removed). */
static int listen_at(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* The child, between clone and exec (micd has threads: only
 * async-signal-safe calls).  With an id map: waits until micd wrote it,
 * becomes the namespace's root, gets the listening socket as fd 3. */
static void __attribute__((noreturn))
backend_child(int sync, int lfd, const struct sock_fprog *filter, char *const argv[],
	      char *const envp[])
{
	char go;
	/* A group of its own: micd kills what it forked too (virtiofsd serves
	 * from a child in a PID namespace of its own, which takes its parent's
	 * death as a SIGTERM and finishes the requests it holds first). */
	setpgid(0, 0);
	if (sync >= 0 && (read(sync, &go, 1) != 1 || proc_become_ns_root() < 0))
		_exit(126);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* After the credential change, which clears it. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	int null = open("/dev/null", O_RDONLY);
	if (null >= 0 && null != 0)
		dup2(null, 0);
	unsigned keep = 3;
	if (lfd >= 0) {
		if ((lfd == 3 ? fcntl(3, F_SETFD, 0) : dup2(lfd, 3)) < 0)
			_exit(125);
		keep = 4;
		/* Nothing it execs gains privileges (no setuid, no file caps). */
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		/* It makes no setuid file in the share (fs_filter.c). */
		if (filter && fs_filter_load(filter) < 0)
			_exit(124);
	}
	syscall(SYS_close_range, keep, ~0u, 0u);
	execve(argv[0], argv, envp);
	_exit(127);
}

/* Starts the configured backend: /bin/sh -c "exec CMD" with
 * MIC_VHOST_SOCKET naming the socket it must listen on (with an id map:
 * micd's listening socket there, as fd 3), every signal
 * unblocked (micd blocks some for its signalfd), no fd of micd's beyond
 * stdio, and SIGTERM when the thread that started it ends. */
static int spawn_backend(struct vhost *h)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **envp = calloc(n + 2, sizeof(*envp));
	char var[160], shcmd[sizeof(h->cmd) + 8];
	char *argv[] = { "/bin/sh", "-c", shcmd, NULL };
	if (!envp)
		return -ENOMEM;
	snprintf(var, sizeof(var), "MIC_VHOST_SOCKET=%s", h->path);
	snprintf(shcmd, sizeof(shcmd), "exec %s", h->cmd);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "MIC_VHOST_SOCKET=", 17))
			envp[k++] = environ[i];
	envp[k++] = var;
	int sync[2] = { -1, -1 }, lfd = -1, rc = 0;
	struct sock_fprog filter = { 0 };
	if (h->id_count) {
		rc = fs_filter_build(&filter);
		if (!rc && (lfd = listen_at(h->path)) < 0)
			rc = lfd;
		else if (!rc && pipe2(sync, O_CLOEXEC) < 0)
			rc = -errno;
	} else {
		unlink(h->path); /* a stale socket of the last instance */
	}
	int pidfd = -1;
	pid_t pid = -1;
	if (!rc) {
		pid = proc_clone(h->id_count ? CLONE_NEWUSER : 0, &pidfd);
		if (pid == 0) {
			if (sync[1] >= 0)
				close(sync[1]);
			backend_child(sync[0], lfd, filter.filter ? &filter : NULL, argv, envp);
		}
		rc = pid < 0 ? -errno : 0;
	}
	free(envp);
	free(filter.filter);
	if (sync[0] >= 0)
		close(sync[0]);
	if (lfd >= 0)
		close(lfd);
	if (!rc && h->id_count)
		rc = proc_write_idmap(pid, h->id_base, h->id_count);
	if (!rc && sync[1] >= 0 && write(sync[1], "g", 1) != 1)
		rc = -errno;
	if (sync[1] >= 0)
		close(sync[1]);
	if (rc) {
		if (pid > 0) {
			kill(pid, SIGKILL);
			waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){ 0 }, WEXITED);
			close(pidfd);
		}
		return rc;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_CHILD };
	epoll_ctl(h->vd.fd, EPOLL_CTL_ADD, pidfd, &ev);
	h->child_pidfd = pidfd;
	h->child_pid = pid;
	h->child_since_ms = now_ms();
	if (h->id_count)
		log_info("%s: %s: started vhost-user backend (pid %d, host ids %u..%u): %s",
			 h->vd.card, h->type->name, (int)pid, h->id_base, h->id_base + h->id_count - 1,
			 h->cmd);
	else
		log_info("%s: %s: started vhost-user backend (pid %d): %s", h->vd.card,
			 h->type->name, (int)pid, h->cmd);
	return 0;
}

/* The backend micd started exited: collect it, restart it after a
 * backoff that doubles while it keeps dying young. */
static void child_exited(struct vhost *h)
{
	siginfo_t si = { 0 };
	if (waitid(P_PIDFD, (id_t)h->child_pidfd, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
	    si.si_pid == 0)
		return;
	/* Whatever it forked goes with it; unreaped, its pid still names
	 * only its group. */
	kill(-h->child_pid, SIGKILL);
	waitid(P_PIDFD, (id_t)h->child_pidfd, &(siginfo_t){ 0 }, WEXITED);
	uint64_t now = now_ms();
	if (now - h->child_since_ms >= HEALTHY_MS || !h->respawn_backoff_ms)
		h->respawn_backoff_ms = RECONNECT_MIN_MS;
	else if (h->respawn_backoff_ms < RECONNECT_MAX_MS)
		h->respawn_backoff_ms *= 2;
	log_err("%s: %s: vhost-user backend (pid %d) %s %d; restarting it in %u ms", h->vd.card,
		h->type->name, (int)si.si_pid, si.si_code == CLD_EXITED ? "exited with status" :
		"killed by signal", si.si_status, h->respawn_backoff_ms);
	close(h->child_pidfd); /* leaves the epoll set with it */
	h->child_pidfd = -1;
	h->respawn_ms = now + h->respawn_backoff_ms;
}

/* Restarts the backend when its backoff is over; the connection follows
 * through the reconnect below. */
static void supervise(struct vhost *h)
{
	if (!h->cmd[0] || h->child_pidfd >= 0 || now_ms() < h->respawn_ms)
		return;
	if (spawn_backend(h) == 0) {
		h->restarts++;
		h->backoff_ms = RECONNECT_MIN_MS;
		h->next_try_ms = now_ms() + 100;
	} else {
		h->respawn_ms = now_ms() + RECONNECT_MAX_MS;
	}
}

static void stop_child(struct vhost *h)
{
	if (h->child_pidfd < 0)
		return;
	syscall(SYS_pidfd_send_signal, h->child_pidfd, SIGTERM, NULL, 0);
	struct pollfd p = { .fd = h->child_pidfd, .events = POLLIN };
	if (poll(&p, 1, 2000) <= 0)
		syscall(SYS_pidfd_send_signal, h->child_pidfd, SIGKILL, NULL, 0);
	kill(-h->child_pid, SIGKILL);
	siginfo_t si;
	waitid(P_PIDFD, (id_t)h->child_pidfd, &si, WEXITED);
	close(h->child_pidfd);
	h->child_pidfd = -1;
}

static void drop_conn(struct vhost *h, const char *why)
{
	if (!h->conn)
		return;
	snprintf(h->gone, sizeof(h->gone), "vhost-user backend gone: %s", why);
	log_err("%s: %s: %s (%s)", h->vd.card, h->type->name, h->gone, h->path);
	epoll_ctl(h->vd.fd, EPOLL_CTL_DEL, vhu_fd(h->conn), NULL);
	vhu_close(h->conn);
	h->conn = NULL;
	h->started = 0;
	/* A backend micd started that failed a call may be wedged (a card can
	 * keep virtiofsd's queue thread busy for minutes: virtiofs_wedge.sh)
	 * and still maps the card's memory with the old rings: it is killed,
	 * with its process group (the busy thread is in virtiofsd's sandboxed
	 * child), and supervise starts a fresh one with the usual backoff. */
	if (h->child_pidfd >= 0) {
		kill(-h->child_pid, SIGKILL);
		syscall(SYS_pidfd_send_signal, h->child_pidfd, SIGKILL, NULL, 0);
		/* Gone before the caller zeroes the rings: a dying process
		 * can still finish a store or a read into the card's memory.
		 * Not reaped here (child_exited does, with its backoff). */
		struct pollfd p = { .fd = h->child_pidfd, .events = POLLIN };
		if (poll(&p, 1, KILL_WAIT_MS) <= 0)
			log_err("%s: %s: vhost-user backend still not dead %d ms after SIGKILL",
				h->vd.card, h->type->name, KILL_WAIT_MS);
	}
	h->backoff_ms = RECONNECT_MIN_MS;
	h->next_try_ms = now_ms() + h->backoff_ms;
}

static uint16_t avail_idx(const struct mic_vop_vring_info *r)
{
	return __atomic_load_n((const uint16_t *)((const uint8_t *)r->avail + 2), __ATOMIC_ACQUIRE);
}

static uint16_t used_idx(const struct mic_vop_vring_info *r)
{
	return __atomic_load_n((const uint16_t *)((const uint8_t *)r->used + 2), __ATOMIC_ACQUIRE);
}

/* Waits until the backend has put back in the used rings every request it
 * took (base[i], from GET_VRING_BASE).  A stopped ring is not an idle
 * one: libvhost-user (qemu-storage-daemon, virtiofsd) answers
 * GET_VRING_BASE at once and lets the requests it runs finish, writing
 * their data and used entries afterwards.  Returns the number waited
 * for, or -1 with *ring the ring still not done after VHU_TIMEOUT_MS. */
static int drain_rings(struct vhost *h, const uint32_t *base, unsigned *ring)
{
	uint64_t until = now_ms() + VHU_TIMEOUT_MS;
	int waited = -1;
	for (;;) {
		unsigned pending = 0;
		for (unsigned i = 0; i < h->nvq; i++) {
			struct mic_vop_vring_info r;
			if (mic_vop_host_dev_vring(h->vd.dev, i, &r))
				continue;
			uint16_t n = (uint16_t)((uint16_t)base[i] - used_idx(&r));
			if (n) {
				pending += n;
				*ring = i;
			}
		}
		if (waited < 0)
			waited = (int)pending;
		if (!pending)
			return waited;
		if (now_ms() >= until)
			return -1;
		usleep(1000);
	}
}

/* GET_VRING_BASE on every ring, then the requests the backend still runs
 * drained: the backend has let go of the rings and of the card's buffers
 * when this returns, or the connection is dropped (a backend micd started
 * is killed, and gone).  A user's backend that does not drain in time may
 * still write what it runs: micd cannot stop it (docs/architecture.md
 * 3.21). */
static void vhost_quiesce(struct vdev *vd)
{
	struct vhost *h = vd->priv;
	if (!h->started)
		return;
	h->started = 0;
	uint32_t base[MIC_MAX_VRINGS];
	for (unsigned i = 0; i < h->nvq && h->conn; i++) {
		struct mic_vop_vring_info r;
		int rc = vhu_stop_vring(h->conn, i, &base[i]);
		if (rc) {
			drop_conn(h, vhu_error(h->conn)[0] ? vhu_error(h->conn) : strerror(-rc));
		} else if (!mic_vop_host_dev_vring(vd->dev, i, &r) &&
			   !vhu_base_ok(base[i], avail_idx(&r), r.num)) {
			char why[96];
			snprintf(why, sizeof(why), "ring %u stopped at %" PRIu32 ", avail index %u", i,
				 base[i], avail_idx(&r));
			drop_conn(h, why);
		}
	}
	if (!h->conn)
		return;
	unsigned ring = 0;
	int n = drain_rings(h, base, &ring);
	if (n < 0) {
		char why[128];
		snprintf(why, sizeof(why), "ring %u: requests still running %d ms after GET_VRING_BASE",
			 ring, VHU_TIMEOUT_MS);
		bool ours = h->child_pidfd >= 0;
		drop_conn(h, why);
		if (!ours)
			log_err("%s: %s: the backend (not micd's) may still write the card's memory",
				vd->card, h->type->name);
		return;
	}
	log_info("%s: %s: rings taken back from vhost-user backend (%d request(s) finished first)",
		 vd->card, h->type->name, n);
}

static int start_rings(struct vhost *h)
{
	struct vdev *vd = &h->vd;
	struct mic_hw_view *v = vd->view;
	/* What the card's device may reach, at the card's addresses: card
	 * memory, and of the host pool only this device's own rings. */
	struct vhu_region reg[1 + MIC_MAX_VRINGS];
	struct vhu_vring ring[MIC_MAX_VRINGS];
	reg[0] = (struct vhu_region){ .gpa = 0, .size = v->aperture.size,
				      .uva = (uintptr_t)v->aperture.va, .fd = v->aperture.fd };
	for (unsigned i = 0; i < h->nvq; i++) {
		struct mic_vop_vring_info r;
		int rc = mic_vop_host_dev_vring(vd->dev, i, &r);
		if (rc)
			return rc;
		reg[1 + i] = (struct vhu_region){
			.gpa = MIC_SYSMEM_BASE + r.pool_off, .size = r.pool_bytes,
			.uva = (uintptr_t)v->hostmem.va + r.pool_off, .fd_off = r.pool_off,
			.fd = v->hostmem.fd };
		ring[i] = (struct vhu_vring){ .num = r.num, .desc = (uintptr_t)r.desc,
					      .avail = (uintptr_t)r.avail, .used = (uintptr_t)r.used,
					      .base = 0, .kick_fd = h->kick[i], .call_fd = h->call[i] };
		uint64_t junk;
		while (read(h->call[i], &junk, sizeof(junk)) == sizeof(junk)) {
		}
	}
	return vhu_start(h->conn, mic_vop_host_dev_features(vd->dev), reg, 1 + h->nvq, ring, h->nvq);
}

static void kick_all(struct vhost *h)
{
	uint64_t one = 1;
	for (unsigned i = 0; i < h->nvq; i++)
		if (write(h->kick[i], &one, sizeof(one)) < 0) {
			/* counter full: the backend has a kick pending anyway */
		}
}

static void vhost_serve(struct vdev *vd)
{
	struct vhost *h = vd->priv;
	vd->fd_events = 0; /* the socket and calls are polled in every state */
	if (!h->conn)
		return;
	if (!h->started) {
		int rc = start_rings(h);
		if (rc) {
			drop_conn(h, vhu_error(h->conn)[0] ? vhu_error(h->conn) : strerror(-rc));
			mic_vop_host_dev_fail(vd->dev, h->gone);
			return;
		}
		h->started = 1;
		log_info("%s: %s: rings handed to vhost-user backend %s", vd->card, h->type->name,
			 h->path);
		kick_all(h); /* whatever the card queued before the rings ran */
	} else if (vd->kicked) {
		kick_all(h);
	}
}

/* Connects and checks the backend still offers what the card was offered
 * (a backend restarted with other options would not match the device the
 * card knows). */
static int connect_backend(struct vhost *h, int timeout_ms, char *why, size_t len)
{
	struct vhu_conn *c;
	int rc = vhu_connect(h->path, timeout_ms, &c);
	if (rc) {
		snprintf(why, len, "%s", strerror(-rc));
		return rc;
	}
	uint64_t f = vhu_features(c);
	if (!(f & (1ull << VIRTIO_F_VERSION_1)))
		snprintf(why, len, "backend does not offer VIRTIO_F_VERSION_1"), rc = -EPROTO;
	else if (h->offered && (h->offered & ~f))
		snprintf(why, len, "backend no longer offers features %#" PRIx64, h->offered & ~f),
			rc = -EPROTO;
	else if (vhu_queue_num(c) < h->nvq)
		snprintf(why, len, "backend serves %u queues, the device has %u", vhu_queue_num(c),
			 h->nvq), rc = -EPROTO;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = TAG_SOCKET };
	if (!rc && epoll_ctl(h->vd.fd, EPOLL_CTL_ADD, vhu_fd(c), &ev) < 0)
		snprintf(why, len, "epoll: %s", strerror(errno)), rc = -errno;
	if (rc) {
		vhu_close(c);
		return rc;
	}
	h->conn = c;
	return 0;
}

/* The socket became readable: a backend never speaks unasked, so this is
 * its end (EOF, error) or a protocol breach. */
static void socket_event(struct vhost *h)
{
	char b;
	ssize_t n = recv(vhu_fd(h->conn), &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	drop_conn(h, n == 0 ? "connection closed" : n < 0 ? strerror(errno) :
							    "unexpected message from the backend");
}

/* The first connection to a backend that was absent when micd started:
 * its config space and features replace the placeholders in the device
 * page, which the card takes at its next negotiation (the reset the config
 * change below asks for). */
static int first_contact(struct vhost *h)
{
	int rc = vhu_get_config(h->conn, h->config, h->type->config_len);
	if (rc) {
		drop_conn(h, rc == -ENOTSUP ? "backend has no GET_CONFIG" :
			     vhu_error(h->conn)[0] ? vhu_error(h->conn) : strerror(-rc));
		return rc;
	}
	h->offered = vhu_features(h->conn) & (h->type->dev_features | MIC_VOP_TRANSPORT_FEATURES);
	mic_vop_host_dev_set_features(h->vd.dev, h->offered);
	h->absent = 0;
	log_info("%s: %s: vhost-user backend %s is there (features %#" PRIx64 ")", h->vd.card,
		 h->type->name, h->path, h->offered);
	return 0;
}

static void vhost_poll(struct vdev *vd)
{
	struct vhost *h = vd->priv;
	struct epoll_event ev[1 + MIC_MAX_VRINGS];
	int n = epoll_wait(vd->fd, ev, 1 + MIC_MAX_VRINGS, 0);
	int interrupt = 0;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == TAG_SOCKET) {
			if (h->conn)
				socket_event(h);
			continue;
		}
		if (ev[i].data.u64 == TAG_CHILD) {
			child_exited(h);
			continue;
		}
		uint64_t cnt;
		if (read(h->call[ev[i].data.u64], &cnt, sizeof(cnt)) == sizeof(cnt) && h->started)
			interrupt = 1;
	}
	/* Through the card's doorbell register: status bit and line. */
	if (interrupt)
		mic_vop_host_dev_interrupt(vd->dev);
	supervise(h);
	if (!h->conn) {
		/* The card learns through NEEDS_RESET; a reset it asks for
		 * clears it, so it is set again while the backend stays away. */
		if (!mic_vop_host_dev_broken(vd->dev, NULL))
			mic_vop_host_dev_fail(vd->dev, h->gone);
		uint64_t now = now_ms();
		if (now < h->next_try_ms)
			return;
		char why[128];
		if (connect_backend(h, VHU_TIMEOUT_MS / 2, why, sizeof(why)) == 0) {
			if (h->absent && first_contact(h))
				return;
			log_info("%s: %s: vhost-user backend %s is back; the device works again once "
				 "the card resets it", vd->card, h->type->name, h->path);
			/* NEEDS_RESET is set; a config change is how a virtio
			 * device tells the driver to look (no wait for its ack). */
			mic_vop_host_dev_config_change(vd->dev, h->config, h->type->config_len, 0);
			return;
		}
		h->backoff_ms = h->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : h->backoff_ms * 2;
		h->next_try_ms = now_ms() + h->backoff_ms;
	}
}

static void vhost_reset(struct vdev *vd)
{
	(void)vd; /* quiesce stopped the rings; the next DRIVER_OK restarts them */
}

static void vhost_destroy(struct vdev *vd)
{
	struct vhost *h = vd->priv;
	if (vd->dev)
		vhost_quiesce(vd);
	if (h->conn)
		vhu_close(h->conn);
	stop_child(h);
	for (unsigned i = 0; i < MIC_MAX_VRINGS; i++) {
		if (h->kick[i] >= 0)
			close(h->kick[i]);
		if (h->call[i] >= 0)
			close(h->call[i]);
	}
	if (vd->fd >= 0)
		close(vd->fd);
	free(h);
}

static const struct vdev_ops vhost_ops = {
	.name = "block",
	.serve = vhost_serve,
	.reset = vhost_reset,
	.destroy = vhost_destroy,
	.poll = vhost_poll,
	.quiesce = vhost_quiesce,
	.out_of_process = true,
};

static const struct vdev_ops vhost_fs_ops = {
	.name = "fs",
	.serve = vhost_serve,
	.reset = vhost_reset,
	.destroy = vhost_destroy,
	.poll = vhost_poll,
	.quiesce = vhost_quiesce,
	.out_of_process = true,
};

static int vhost_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
		       const struct vhost_type *type, const uint8_t *own_config, const char *path,
		       const char *cmd, uint32_t id_base, uint32_t id_count, struct vdev **out)
{
	struct vhost *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->child_pidfd = -1;
	h->id_base = id_base;
	h->id_count = id_count;
	h->type = type;
	h->vd.ops = type == &type_fs ? &vhost_fs_ops : &vhost_ops;
	h->vd.priv = h;
	snprintf(h->vd.card, sizeof(h->vd.card), "%s", card);
	for (unsigned i = 0; i < MIC_MAX_VRINGS; i++)
		h->kick[i] = h->call[i] = -1;
	int rc = snprintf(h->path, sizeof(h->path), "%s", path) >= (int)sizeof(h->path) ?
			 -ENAMETOOLONG : 0;
	h->vd.fd = epoll_create1(EPOLL_CLOEXEC);
	if (!rc && h->vd.fd < 0)
		rc = -errno;
	h->nvq = 1; /* until the config says otherwise */
	char why[128] = "";
	if (!rc && cmd && cmd[0]) {
		if (snprintf(h->cmd, sizeof(h->cmd), "%s", cmd) >= (int)sizeof(h->cmd))
			rc = -ENAMETOOLONG;
		else if ((rc = spawn_backend(h)))
			snprintf(why, sizeof(why), "cannot start it: %s", strerror(-rc));
	}
	if (!rc) {
		/* A backend just started needs a moment before it listens. */
		uint64_t until = now_ms() + (h->cmd[0] ? START_WAIT_MS : 0);
		while ((rc = connect_backend(h, VHU_TIMEOUT_MS * 2, why, sizeof(why))) &&
		       (rc == -ENOENT || rc == -ECONNREFUSED) && now_ms() < until)
			usleep(20000);
	}
	/* A backend the user starts may come later (3.21): the device waits
	 * for it, broken with the reason, and is offered to the card with
	 * VERSION_1 alone and a zero config (0 sectors) until then.  Only
	 * where the config comes from the backend; a backend micd starts
	 * must listen within START_WAIT_MS. */
	if (rc && !h->cmd[0] && !own_config && h->vd.fd >= 0 && rc != -ENAMETOOLONG) {
		snprintf(h->gone, sizeof(h->gone), "vhost-user backend %s %s: %.100s",
			 rc == -ENOENT || rc == -ECONNREFUSED ? "not listening at" : "failed at", path, why);
		log_err("%s: %s: %s; waiting for it", card, h->type->name, h->gone);
		h->absent = 1;
		h->backoff_ms = RECONNECT_MIN_MS;
		h->next_try_ms = now_ms() + h->backoff_ms;
		rc = 0;
	}
	uint8_t *config = h->config;
	if (h->absent)
		; /* zeroes, from calloc */
	else if (!rc && own_config)
		memcpy(config, own_config, h->type->config_len);
	else if (!rc && (rc = vhu_get_config(h->conn, config, h->type->config_len)))
		snprintf(why, sizeof(why), "config space: %s",
			 rc == -ENOTSUP ? "backend has no GET_CONFIG" :
			 vhu_error(h->conn)[0] ? vhu_error(h->conn) : strerror(-rc));
	if (!rc) {
		h->nvq = h->type->nvq(config);
		if (h->nvq == 0 || h->nvq > MIC_MAX_VRINGS || (h->conn && h->nvq > vhu_queue_num(h->conn)))
			snprintf(why, sizeof(why), "%u queues (at most %u)", h->nvq,
				 MIC_MAX_VRINGS < vhu_queue_num(h->conn) ? MIC_MAX_VRINGS :
									 vhu_queue_num(h->conn)),
				rc = -EPROTO;
	}
	for (unsigned i = 0; !rc && i < h->nvq; i++) {
		h->kick[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		h->call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = i };
		if (h->kick[i] < 0 || h->call[i] < 0 || epoll_ctl(h->vd.fd, EPOLL_CTL_ADD, h->call[i], &ev))
			rc = -errno, snprintf(why, sizeof(why), "eventfd: %s", strerror(errno));
	}
	if (rc) {
		log_err("%s: %s: vhost-user backend %s: %s", card, h->type->name, path,
			why[0] ? why : strerror(-rc));
		vhost_destroy(&h->vd);
		return rc;
	}
	h->offered = h->absent ? 0 : vhu_features(h->conn) & (h->type->dev_features |
							     MIC_VOP_TRANSPORT_FEATURES);
	struct mic_vop_dev_template t = {
		.type = h->type->virtio_id,
		.num_vq = (uint8_t)h->nvq,
		.features = h->absent ? 1ull << VIRTIO_F_VERSION_1 : h->offered,
		.config_len = h->type->config_len,
		.config = config,
	};
	for (unsigned i = 0; i < h->nvq; i++)
		t.vq_num[i] = VQ_NUM;
	h->vd.fd_always = POLLIN;
	rc = vdev_start(&h->vd, vop, view, card, &t);
	if (rc) {
		log_err("%s: %s: device page: %s", card, h->type->name, strerror(-rc));
		vhost_destroy(&h->vd);
		return rc;
	}
	if (!h->absent)
		log_info("%s: %s served by vhost-user backend %s (features %#" PRIx64 ", %u queue%s)",
			 card, h->type->name, path, h->offered, h->nvq, h->nvq == 1 ? "" : "s");
	*out = &h->vd;
	return 0;
}

int vhost_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
			const char *path, const char *cmd, struct vdev **out)
{
	return vhost_start(vop, view, card, &type_blk, NULL, path, cmd, 0, 0, out);
}

/* Appends s to the shell command b, single-quoted (a ' inside as '\''). */
static int sh_quote(char *b, size_t len, const char *s)
{
	size_t n = strlen(b), need = n + 4; /* space, quotes, NUL */
	for (const char *p = s; *p; p++)
		need += *p == '\'' ? 4 : 1;
	if (need > len)
		return -ENAMETOOLONG;
	char *w = b + n;
	if (n)
		*w++ = ' ';
	*w++ = '\'';
	for (; *s; s++) {
		if (*s == '\'') {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else {
			*w++ = *s;
		}
	}
	*w++ = '\'';
	*w = 0;
	return 0;
}

/* Whether root of a user namespace mapping ids 0..count-1 to base.. (no
 * supplementary groups) may search st: its capabilities cover an inode
 * whose owner and group are both mapped; otherwise the mode bits for
 * host uid and gid base apply. */
static bool ns_root_can_search(const struct stat *st, uint32_t base, uint32_t count)
{
	if (st->st_uid - base < count && st->st_gid - base < count)
		return true;
	if (st->st_uid == base)
		return st->st_mode & S_IXUSR;
	if (st->st_gid == base)
		return st->st_mode & S_IXGRP;
	return st->st_mode & S_IXOTH;
}

/* Checks the absolute path dir and each of its parents; false with the
 * first closed one in closed. */
static bool ns_root_can_reach(const char *dir, uint32_t base, uint32_t count, char *closed,
			      size_t len)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s", dir);
	size_t n = strlen(p);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		char c = p[i];
		p[i] = 0;
		struct stat st;
		bool ok = stat(p, &st) == 0 && ns_root_can_search(&st, base, count);
		if (!ok)
			snprintf(closed, len, "%s", p);
		p[i] = c;
		if (!ok)
			return false;
	}
	return true;
}

static const char *const virtiofsd_paths[] = { "/usr/libexec/virtiofsd", "/usr/lib/qemu/virtiofsd",
						NULL };

int vhost_fs_start(struct mic_vop_host *vop, struct mic_hw_view *view, const char *card,
		   const char *path, const char *tag, const char *dir, uint32_t id_base,
		   uint32_t id_count, struct vdev **out)
{
	const char *exe = NULL;
	for (const char *const *p = virtiofsd_paths; *p && !exe; p++)
		if (access(*p, X_OK) == 0)
			exe = *p;
	if (!exe) {
		log_err("%s: fs: no virtiofsd (%s or %s; Debian: qemu-system-common)", card,
			virtiofsd_paths[0], virtiofsd_paths[1]);
		return -ENOENT;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		int e = errno ? errno : ENOTDIR;
		log_err("%s: fs: shared directory %s: %s", card, dir, strerror(e));
		return -e;
	}
	/* virtiofsd is the card's root on the host (docs/architecture.md
	 * 3.22): it must reach the directory through every parent, and the
	 * directory is the card's only when one of its ids owns it. */
	if (id_count == 0)
		return -EINVAL;
	char closed[PATH_MAX];
	if (!ns_root_can_reach(dir, id_base, id_count, closed, sizeof(closed))) {
		log_err("%s: fs: shared directory %s: %s is closed to the card's root (host uid %u); "
			"give it the directory: chown %u:%u %s (and open its parents to others)",
			card, dir, closed, id_base, id_base, id_base, dir);
		return -EACCES;
	}
	if (st.st_uid - id_base >= id_count)
		log_info("%s: fs: shared directory %s is owned by host uid %u, not by the card's root "
			 "(host uid %u): the card reads what others may and writes only where others "
			 "may; chown %u:%u %s to give it the directory",
			 card, dir, (unsigned)st.st_uid, id_base, id_base, id_base, dir);
	/* The C virtiofsd of QEMU: one front end per process (it exits when
	 * micd hangs up, and micd starts it again), its own mount, PID and
	 * network namespaces with the directory as its root; cache=auto: the
	 * card trusts a lookup for a second, data until the file changes on
	 * the host.  Without CAP_MKNOD and CAP_SETFCAP: a card that writes
	 * FUSE requests into its queue itself makes no device node and no
	 * file capability in the host's directory (docs/architecture.md 3.22). */
	char cmd[512] = "", opt[PATH_MAX + 16];
	int rc = sh_quote(cmd, sizeof(cmd), exe);
	if (!rc)
		rc = sh_quote(cmd, sizeof(cmd), "--fd=3"); /* the socket at path, from micd */
	snprintf(opt, sizeof(opt), "source=%s", dir);
	if (!rc)
		rc = sh_quote(cmd, sizeof(cmd), "-o");
	if (!rc)
		rc = sh_quote(cmd, sizeof(cmd), opt);
	static const char *const fixed[] = { "-o", "cache=auto", "-o", "sandbox=namespace", "-o",
					     "modcaps=-mknod:-setfcap", "-o", "log_level=warn", NULL };
	for (const char *const *f = fixed; !rc && *f; f++)
		rc = sh_quote(cmd, sizeof(cmd), *f);
	if (rc) {
		log_err("%s: fs: virtiofsd command too long", card);
		return rc;
	}
	struct virtio_fs_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.tag, tag, strnlen(tag, sizeof(cfg.tag)));
	cfg.num_request_queues = htole32(1); /* virtiofsd serves one */
	return vhost_start(vop, view, card, &type_fs, (const uint8_t *)&cfg, path, cmd, id_base,
			   id_count, out);
}
