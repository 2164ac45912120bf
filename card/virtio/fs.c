/* SPDX-License-Identifier: MIT */
/*
 * virtio-fs driver of the card.  The card's "kernel" is the host's, so the
 * share is a FUSE mount in the card's mount namespace whose requests this
 * driver reads from /dev/fuse and forwards, unchanged, over the device's
 * queues (FORGETs on the high-priority queue, the rest on request queue 1);
 * each reply goes back to /dev/fuse as it arrives.  FUSE_INIT is forwarded
 * like any request: the host's virtiofsd answers it.  Design:
 * docs/architecture.md 3.21.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <linux/virtio_fs.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "card/mount.h"
#include "card/virtio/fs.h"
#include "card/vop.h"
#include "vop/card/vop_card.h"

#define NSLOT 8
#define DATA_MAX (1u << 20) /* max_write and max_read of the mount */
/* a request: header, WRITE's arguments and data; a reply: header and data */
#define IN_SIZE (DATA_MAX + 4096u)
#define OUT_SIZE (DATA_MAX + 4096u)
#define Q_HIPRIO 0
#define Q_REQ 1
#define ATTACH_WAIT_MS 10000
#define TAG_MAX ((int)sizeof(((struct virtio_fs_config *)0)->tag))

struct slot {
	uint64_t in_addr, out_addr;
	uint8_t *in, *out;
	uint64_t unique;
	uint32_t opcode;
	int orphan; /* its connection ended: the reply goes nowhere */
};

struct vfs {
	struct cos *os;
	struct cos_vdev *vd;
	struct mic_vop_vq *vq[2];
	char tag[TAG_MAX + 1];
	struct slot slot[NSLOT];
	int free[NSLOT];
	int nfree;
	int added[2];
	int ctl_fd;
	char ctl_path[sizeof(COS_VIRTIOFS_DIR) + TAG_MAX + 1];
	/* the mounted connection (-1: none) and where it is mounted */
	int fuse_fd;
	char dir[PATH_MAX];
	uint32_t mflags;
};

int cos_virtiofs_tag_ok(const char *tag)
{
	size_t n = strlen(tag);
	if (!n || n > TAG_MAX || tag[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = tag[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("_.:@+-", c)))
			return 0;
	}
	return 1;
}

/* --- forwarding --- */

static void put_slot(struct vfs *v, int i)
{
	v->slot[i].orphan = 0;
	v->free[v->nfree++] = i;
}

static void fuse_events(struct vfs *v)
{
	if (v->fuse_fd >= 0)
		cos_watch_mod(v->os->loop, v->fuse_fd, v->nfree ? EPOLLIN : 0);
}

static void kick(struct vfs *v)
{
	for (int q = 0; q < 2; q++) {
		if (v->added[q])
			mic_vop_vq_kick(v->vq[q]);
		v->added[q] = 0;
	}
}

/* To the kernel: a reply, or an error (no data) for the request unique. */
static void reply_err(struct vfs *v, uint64_t unique, int err)
{
	struct fuse_out_header oh = { sizeof(oh), -err, unique };
	if (v->fuse_fd >= 0 && write(v->fuse_fd, &oh, sizeof(oh)) < 0 && errno != ENOENT)
		cardlog(&v->os->log, "virtio-fs %s: reply: %s", v->tag, strerror(errno));
}

/* The connection ended (unmounted: ENODEV), or the driver ends it.  Its
 * requests still on the device are answered into nothing. */
static void conn_end(struct vfs *v, const char *why)
{
	if (v->fuse_fd < 0)
		return;
	cos_unwatch(v->os->loop, v->fuse_fd);
	close(v->fuse_fd); /* the kernel aborts what the connection still waits for */
	v->fuse_fd = -1;
	bool idle[NSLOT] = { false };
	for (int k = 0; k < v->nfree; k++)
		idle[v->free[k]] = true;
	for (int i = 0; i < NSLOT; i++)
		if (!idle[i])
			v->slot[i].orphan = 1;
	cardlog(&v->os->log, "virtio-fs %s: %s detached (%s)", v->tag, v->dir, why);
}

/* The kernel's INIT reply goes through with the limits of this driver's
 * buffers: the kernel then never writes or reads more than a slot holds. */
static void clamp_init(struct slot *s, uint32_t len)
{
	struct fuse_init_out *o = (struct fuse_init_out *)(s->out + sizeof(struct fuse_out_header));
	size_t have = len - sizeof(struct fuse_out_header);
	if (have >= offsetof(struct fuse_init_out, max_write) + sizeof(o->max_write) &&
	    o->max_write > DATA_MAX)
		o->max_write = DATA_MAX;
	if (have >= offsetof(struct fuse_init_out, max_pages) + sizeof(o->max_pages) &&
	    (o->flags & FUSE_MAX_PAGES) && o->max_pages > DATA_MAX / 4096)
		o->max_pages = DATA_MAX / 4096;
}

/* The device answered slot i with len bytes: pass the reply on, checked,
 * since the kernel would refuse a malformed one and leave its caller
 * waiting for ever. */
static void complete(struct vfs *v, int i, uint32_t len)
{
	struct slot *s = &v->slot[i];
	int orphan = s->orphan;
	put_slot(v, i);
	if (orphan || v->fuse_fd < 0)
		return;
	struct fuse_out_header *oh = (struct fuse_out_header *)s->out;
	uint32_t olen = oh->len;
	if (len < sizeof(*oh) || olen < sizeof(*oh) || olen > len || olen > OUT_SIZE ||
	    oh->unique != s->unique || oh->error > 0 || oh->error <= -4096) {
		cardlog(&v->os->log, "virtio-fs %s: bad reply to opcode %u (%u of %u bytes)", v->tag,
			s->opcode, olen, len);
		reply_err(v, s->unique, EIO);
		return;
	}
	if (oh->error) {
		reply_err(v, s->unique, -oh->error);
		return;
	}
	if (s->opcode == FUSE_INIT)
		clamp_init(s, olen);
	if (write(v->fuse_fd, s->out, olen) < 0 && errno != ENOENT) /* ENOENT: interrupted */
		cardlog(&v->os->log, "virtio-fs %s: reply to opcode %u refused: %s", v->tag, s->opcode,
			strerror(errno));
}

static void used_req(void *ctx, void *tok, uint32_t len)
{
	complete(ctx, (int)(uintptr_t)tok - 1, len);
}

static void used_hiprio(void *ctx, void *tok, uint32_t len)
{
	(void)len;
	put_slot(ctx, (int)(uintptr_t)tok - 1); /* FORGETs have no reply */
}

static void on_doorbell(void *ctx, uint32_t events)
{
	struct vfs *v = ctx;
	(void)events;
	mbus_ack_irq(&v->vd->mdev, v->vd->line);
	mic_vop_vq_drain(v->vq[Q_HIPRIO], used_hiprio, v);
	mic_vop_vq_drain(v->vq[Q_REQ], used_req, v);
	fuse_events(v);
}

/* Puts the request read into slot i on its queue: 1, or 0 when it is
 * dropped, or the negative errno its caller gets. */
static int forward(struct vfs *v, int i, uint32_t n)
{
	struct slot *s = &v->slot[i];
	const struct fuse_in_header *ih = (const struct fuse_in_header *)s->in;
	s->unique = ih->unique;
	s->opcode = ih->opcode;
	/* The reply buffer as large as the reply may be, no larger for a READ:
	 * virtiofsd reads the file into all of it (as Linux's driver sizes it) */
	uint32_t olen = OUT_SIZE;
	if (ih->opcode == FUSE_READ && n >= sizeof(*ih) + sizeof(struct fuse_read_in)) {
		const struct fuse_read_in *ri = (const struct fuse_read_in *)(ih + 1);
		olen = sizeof(struct fuse_out_header) + (ri->size < DATA_MAX ? ri->size : DATA_MAX);
	}
	struct mic_vop_sg sg[2] = { { s->in_addr, n }, { s->out_addr, olen } };
	int q = Q_REQ, rc;
	if (ih->opcode == FUSE_FORGET || ih->opcode == FUSE_BATCH_FORGET) {
		q = Q_HIPRIO;
		rc = mic_vop_vq_add_outbuf(v->vq[q], sg, 1, (void *)(uintptr_t)(i + 1));
	} else {
		rc = mic_vop_vq_add_sgs(v->vq[q], sg, 1, 1, (void *)(uintptr_t)(i + 1));
	}
	if (rc)
		return q == Q_HIPRIO ? 0 : -EIO; /* a lost FORGET only keeps an inode */
	v->added[q] = 1;
	return 1;
}

/* Reads requests while a slot is free (FUSE queues the rest), then kicks
 * once per queue. */
static void on_fuse(void *ctx, uint32_t events)
{
	struct vfs *v = ctx;
	(void)events;
	while (v->nfree && v->fuse_fd >= 0) {
		int i = v->free[--v->nfree];
		struct slot *s = &v->slot[i];
		ssize_t n = read(v->fuse_fd, s->in, IN_SIZE);
		if (n <= 0) {
			int e = n ? errno : ENODEV;
			put_slot(v, i);
			if (e == EAGAIN || e == EINTR)
				break;
			conn_end(v, e == ENODEV ? "unmounted" : strerror(e));
			break;
		}
		const struct fuse_in_header *ih = (const struct fuse_in_header *)s->in;
		if ((size_t)n < sizeof(*ih) || ih->len != (uint32_t)n) {
			put_slot(v, i); /* not from a kernel */
			continue;
		}
		/* An interrupt is not forwarded: virtiofsd cannot cancel a request
		 * it runs, and its reply comes anyway. */
		if (ih->opcode == FUSE_INTERRUPT) {
			put_slot(v, i);
			continue;
		}
		int rc = forward(v, i, (uint32_t)n);
		if (rc <= 0) {
			uint64_t unique = ih->unique;
			put_slot(v, i);
			if (rc)
				reply_err(v, unique, -rc);
		}
	}
	kick(v);
	fuse_events(v);
}

static int attach(struct vfs *v, int fd, const char *dir, uint32_t flags)
{
	if (v->fuse_fd >= 0)
		return -EBUSY;
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	int rc = cos_watch(v->os->loop, fd, v->nfree ? EPOLLIN : 0, on_fuse, v);
	if (rc)
		return rc;
	v->fuse_fd = fd;
	snprintf(v->dir, sizeof(v->dir), "%s", dir);
	v->mflags = flags;
	cardlog(&v->os->log, "virtio-fs %s: mounted on %s", v->tag, dir);
	return 0;
}

/* A mount helper's datagram: reply socket and FUSE device, and where. */
static void on_ctl(void *ctx, uint32_t events)
{
	struct vfs *v = ctx;
	(void)events;
	for (;;) {
		struct cos_virtiofs_attach req;
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(2 * sizeof(int))];
		} cm;
		struct iovec iov = { &req, sizeof(req) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
				     .msg_controllen = sizeof(cm.buf) };
		ssize_t n = recvmsg(v->ctl_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return;
		int fds[2] = { -1, -1 }, nfd = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int j = 0; j < k; j++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(fd));
				if (nfd < 2)
					fds[nfd++] = fd;
				else
					close(fd);
			}
		}
		int32_t rc = -EINVAL;
		if (nfd == 2 && (size_t)n == sizeof(req) && !(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) &&
		    memchr(req.dir, 0, sizeof(req.dir)) && req.dir[0] == '/') {
			rc = attach(v, fds[1], req.dir, req.flags);
			if (!rc)
				fds[1] = -1;
		}
		if (fds[0] >= 0) {
			if (send(fds[0], &rc, sizeof(rc), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
				cardlog(&v->os->log, "virtio-fs %s: mount helper gone", v->tag);
			close(fds[0]);
		}
		if (fds[1] >= 0)
			close(fds[1]);
	}
}

static int ctl_start(struct vfs *v)
{
	mkdir("/run", 0755);
	if (mkdir(COS_VIRTIOFS_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), COS_VIRTIOFS_DIR "/%s", v->tag);
	v->ctl_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (v->ctl_fd < 0)
		return -errno;
	/* EADDRINUSE: another device has this tag (the card's /run is new at
	 * each boot, and a device that goes removes its socket) */
	if (bind(v->ctl_fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return -errno;
	snprintf(v->ctl_path, sizeof(v->ctl_path), COS_VIRTIOFS_DIR "/%s", v->tag); /* ours to remove */
	if (chmod(v->ctl_path, 0600) < 0)
		return -errno;
	return cos_watch(v->os->loop, v->ctl_fd, EPOLLIN, on_ctl, v);
}

static void ctl_stop(struct vfs *v)
{
	if (v->ctl_fd < 0)
		return;
	cos_unwatch(v->os->loop, v->ctl_fd);
	close(v->ctl_fd);
	v->ctl_fd = -1;
	if (v->ctl_path[0])
		unlink(v->ctl_path);
	v->ctl_path[0] = 0;
	rmdir(COS_VIRTIOFS_DIR); /* fails while another share has its socket there */
}

/* --- the mount helper (mic-card as mount) --- */

int cos_virtiofs_mount(const char *tag, const char *dir, unsigned long flags)
{
	char real[PATH_MAX];
	if (!cos_virtiofs_tag_ok(tag)) {
		fprintf(stderr, "mount: %s: not a virtio-fs tag\n", tag);
		return -EINVAL;
	}
	if (!realpath(dir, real)) {
		int e = errno;
		fprintf(stderr, "mount: %s: %s\n", dir, strerror(e));
		return -e;
	}
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), COS_VIRTIOFS_DIR "/%s", tag);
	if (access(a.sun_path, F_OK) < 0) {
		fprintf(stderr, "mount: no virtio-fs device with tag %s\n", tag);
		return -ENOENT;
	}
	int sp[2] = { -1, -1 }, s = -1, fuse = -1, rc;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0 ||
	    (s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0) {
		rc = -errno;
		goto out;
	}
	/* The mount is made here, in the caller's context, not by the driver:
	 * looking up dir may need FUSE servers, the driver itself among them. */
	flags |= MS_NOSUID | MS_NODEV;
	fuse = cos_fuse_mount(tag, real, "virtiofs", flags, DATA_MAX);
	if (fuse < 0) {
		rc = fuse;
		goto out;
	}
	struct cos_virtiofs_attach req = { .flags = (uint32_t)flags };
	snprintf(req.dir, sizeof(req.dir), "%s", real);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(2 * sizeof(int))];
	} cm;
	memset(&cm, 0, sizeof(cm));
	struct iovec iov = { &req, sizeof(req) };
	struct msghdr mh = { .msg_name = &a, .msg_namelen = sizeof(a), .msg_iov = &iov,
			     .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	int fds[2] = { sp[1], fuse };
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	int32_t answer = -ETIMEDOUT;
	struct pollfd p = { sp[0], POLLIN, 0 };
	if (sendmsg(s, &mh, MSG_NOSIGNAL) < 0) {
		rc = -errno;
	} else {
		close(sp[1]);
		sp[1] = -1;
		if (poll(&p, 1, ATTACH_WAIT_MS) == 1 && recv(sp[0], &answer, sizeof(answer), 0) != sizeof(answer))
			answer = -EPIPE;
		rc = answer;
	}
	if (rc) {
		close(fuse);
		fuse = -1;
		umount2(real, MNT_DETACH); /* its connection ended with the close */
	}
out:
	if (rc)
		fprintf(stderr, "mount: %s on %s: %s\n", tag, dir,
			rc == -EBUSY ? "the share is already mounted" : strerror(-rc));
	for (int i = 0; i < 2; i++)
		if (sp[i] >= 0)
			close(sp[i]);
	if (s >= 0)
		close(s);
	if (fuse >= 0)
		close(fuse);
	return rc;
}

/* --- recovery --- */

/* In a child of the card OS: the dead mount off dir, a new one on it, handed
 * to the driver like any mount -t virtiofs (the loop serves the socket). */
static void remount_child(struct vfs *v)
{
	pid_t pid = fork();
	if (pid < 0) {
		cardlog(&v->os->log, "virtio-fs %s: fork: %s: mount it again by hand", v->tag,
			strerror(errno));
		return;
	}
	if (pid > 0)
		return; /* the loop reaps it */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		close(null);
	}
	close_range(3, ~0u, 0); /* above all no FUSE device of ours */
	umount2(v->dir, MNT_DETACH);
	_exit(cos_virtiofs_mount(v->tag, v->dir, v->mflags) ? 1 : 0);
}

/*
 * The host flagged the device NEEDS_RESET (virtiofsd went away and is back)
 * and said so with a config change.  A new virtiofsd knows none of the old
 * one's node IDs and file handles, and may hand out the same numbers for
 * other files, so the old FUSE connection cannot go on: it is ended (its
 * open files and a working directory in it fail with ENOTCONN), the device
 * reset, and the share mounted again on the same directory, with a new
 * connection whose INIT the new virtiofsd answers.
 */
static void vfs_config_changed(struct cos_vdev *vd)
{
	struct vfs *v = vd->mdev.priv;
	if (!v || !mic_vop_cdev_needs_reset(vd->cdev))
		return;
	int remount = v->fuse_fd >= 0;
	conn_end(v, "device reset");
	uint64_t f = 0;
	int rc = cos_vdev_recover(vd, 0, &f, v->vq, 2);
	if (rc) {
		cardlog(&v->os->log, "virtio-fs %s: device reset failed: %s", v->tag, strerror(-rc));
		return;
	}
	/* the reset ended what the old queues held */
	v->nfree = 0;
	for (int i = 0; i < NSLOT; i++)
		put_slot(v, i);
	v->added[0] = v->added[1] = 0;
	cardlog(&v->os->log, "virtio-fs %s: device reset (host flagged it)%s", v->tag,
		remount ? "; mounting the share again" : "");
	if (remount)
		remount_child(v);
}

/* --- probe / remove --- */

static int alloc_slots(struct vfs *v)
{
	for (int i = 0; i < NSLOT; i++) {
		struct slot *s = &v->slot[i];
		if (!(s->in = cos_vdev_alloc(v->vd, IN_SIZE, &s->in_addr)) ||
		    !(s->out = cos_vdev_alloc(v->vd, OUT_SIZE, &s->out_addr)))
			return -ENOMEM;
		v->free[v->nfree++] = i;
	}
	return 0;
}

static int read_tag(struct vfs *v)
{
	struct virtio_fs_config cfg;
	int rc = mic_vop_cdev_read_config(v->vd->cdev, 0, &cfg, sizeof(cfg));
	if (rc)
		return rc;
	memcpy(v->tag, cfg.tag, sizeof(cfg.tag));
	v->tag[sizeof(cfg.tag)] = 0;
	if (le32toh(cfg.num_request_queues) < 1 || !cos_virtiofs_tag_ok(v->tag))
		return -EINVAL;
	return 0;
}

static void vfs_free(struct vfs *v)
{
	ctl_stop(v);
	v->vd->mdev.priv = NULL;
	free(v);
}

static int vfs_probe(struct cos_vdev *vd)
{
	struct cos *os = vd->os;
	struct vfs *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->os = os;
	v->vd = vd;
	v->ctl_fd = -1;
	v->fuse_fd = -1;
	vd->mdev.priv = v;
	const char *what = "negotiate";
	uint64_t f = 0;
	int rc = cos_vdev_setup(vd, 0, &f, v->vq, 2);
	if (!rc)
		what = "config (tag)", rc = read_tag(v);
	if (!rc)
		what = "buffers", rc = alloc_slots(v);
	if (!rc)
		what = "doorbell", rc = cos_vdev_ready(vd, on_doorbell, v);
	if (!rc)
		what = "socket " COS_VIRTIOFS_DIR, rc = ctl_start(v);
	if (!rc)
		vd->config_changed = vfs_config_changed;
	if (rc) {
		cardlog(&os->log, "bus: probe virtio-fs failed: %s: %s", what, strerror(-rc));
		cos_vdev_release(vd);
		vfs_free(v);
		return rc;
	}
	cardlog(&os->log, "bus: probe virtio-fs: tag %s (mount -t virtiofs %s DIR)", v->tag, v->tag);
	return 0;
}

/* What is in flight is abandoned: the connection's callers get ENOTCONN,
 * and the device's reset ends the host's side of it. */
static void vfs_remove(struct cos_vdev *vd)
{
	struct vfs *v = vd->mdev.priv;
	cardlog(&v->os->log, "bus: remove virtio-fs %s", v->tag);
	conn_end(v, "device removed");
	ctl_stop(v);
	cos_vdev_release(vd);
	vfs_free(v);
}

static const struct cos_virtio_driver vfs_driver = {
	.name = "virtio-fs", .virtio_id = VIRTIO_ID_FS,
	.probe = vfs_probe, .remove = vfs_remove,
};
COS_VIRTIO_DRIVER(vfs_driver);
