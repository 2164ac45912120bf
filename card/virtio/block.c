/* SPDX-License-Identifier: MIT */
/*
 * virtio-block driver of the card.  The card OS is a process, so its
 * "kernel" is the host's: the driver makes the virtio disk a disk of that
 * kernel, seen only inside the card's mount namespace:
 *
 *   /dev/vda (block node) -> loop device -> /run/virtio-blk/vda (FUSE file
 *   served here) -> virtio-block requests -> host backend -> disk image
 *
 * The FUSE session runs in the card's single-threaded event loop: a FUSE
 * read, write or fsync becomes one virtio request, and its reply is sent
 * when the host completes the request, so the loop never blocks.  Requests
 * are taken from /dev/fuse only while a request slot is free: FUSE itself
 * queues the rest (backpressure instead of buffering).
 *
 * Everything that makes the kernel do I/O on the FUSE file (opening it,
 * configuring the loop device, syncing and unmounting on removal) runs in
 * a short-lived child, since the kernel waits for this process to answer.
 *
 * Loop devices are global: the driver only touches the one it configured
 * (LO_FLAGS_AUTOCLEAR, so a card that dies leaves nothing behind once its
 * mount namespace is gone) and detaches it on removal, after every mount of
 * the disk in the card was synced and unmounted and the host has flushed.
 */
#define FUSE_USE_VERSION 312
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/loop.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "card/card.h"
#include "lib/clock.h"
#include "vop/card/vop_card.h"

#define SECTOR 512u
#define NSLOT 8
#define DATA_MAX (1u << 20)            /* FUSE max_write / largest read */
#define SLOT_DATA (DATA_MAX + 4096u)   /* room to widen an unaligned read to sectors */
#define MNT_DIR "/run/virtio-blk"
#define FILE_NAME "vda"
#define DEV_NODE "/dev/vda"
#define INO_FILE 2
#define ATTACH_TRIES 8
/* A flush may take long (much dirty data, a slow host disk: one FLUSH is a
 * host fdatasync) but must keep moving: give up only after this long
 * without a completed request.  Giving up loses what is not yet on the
 * host, so this is generous; the host bounds the whole shutdown anyway
 * (the keep-alive below extends its timer up to its own limit). */
#define REMOVE_TIMEOUT_MS 30000

struct slot {
	uint64_t hdr_addr, data_addr;
	struct virtio_blk_outhdr *hdr; /* status byte right after it */
	uint8_t *data;
	fuse_req_t req;
	uint32_t type;
	uint32_t skew, len; /* IN: reply data + skew, len bytes; OUT: len written */
	int expect;         /* self-test request (req == NULL): the status it must get */
};

struct vblk {
	struct card_os *os;
	uint64_t completed; /* requests the host finished: progress while flushing */
	struct card_vdev *vd;
	struct mic_vop_vq *vq;
	unsigned line;
	int line_fd;
	uint64_t capacity; /* sectors */
	int ro, can_flush;
	struct slot slot[NSLOT];
	int free[NSLOT];
	int nfree;
	int added; /* requests added since the last kick */
	struct fuse_session *se;
	struct fuse_buf fbuf;
	int fuse_fd;
	int mounted;
	/* loop device */
	int loop_nr, loop_fd;
	dev_t loop_dev;
	char loop_path[32];
	pid_t attach_pid;
	int attach_tries;
	int attached;
	int st_total, st_done, st_ok; /* self-test (cmdline mic.blk_selftest) */
};

static uint64_t bytes(const struct vblk *v)
{
	return v->capacity * SECTOR;
}

/* --- virtio side --- */

/* len: bytes moved by the device; skew, rlen: the part of a read that
 * goes back to FUSE (a read is widened to whole sectors). */
static int submit(struct vblk *v, fuse_req_t req, uint32_t type, uint64_t sector, uint32_t len,
		  const void *wdata, uint32_t skew, uint32_t rlen)
{
	int i = v->free[--v->nfree];
	struct slot *s = &v->slot[i];
	s->req = req;
	s->type = type;
	s->skew = skew;
	s->len = type == VIRTIO_BLK_T_IN ? rlen : len;
	s->hdr->type = htole32(type);
	s->hdr->ioprio = 0;
	s->hdr->sector = htole64(sector);
	uint8_t *status = (uint8_t *)(s->hdr + 1);
	*status = 0xff; /* a host that answers nothing is an error */
	struct mic_vop_sg sg[3] = { { s->hdr_addr, sizeof(*s->hdr) } };
	unsigned out = 1, in = 0;
	if (type == VIRTIO_BLK_T_OUT) {
		if (wdata)
			memcpy(s->data, wdata, len);
		sg[out++] = (struct mic_vop_sg){ s->data_addr, len };
	} else if (len) {
		sg[out + in++] = (struct mic_vop_sg){ s->data_addr, len };
	}
	sg[out + in++] = (struct mic_vop_sg){ s->hdr_addr + sizeof(*s->hdr), 1 };
	int rc = mic_vop_vq_add_sgs(v->vq, sg, out, in, (void *)(uintptr_t)(i + 1));
	if (rc) {
		v->free[v->nfree++] = i;
		return rc;
	}
	v->added = 1;
	return 0;
}

static void kick(struct vblk *v)
{
	if (v->added)
		mic_vop_vq_kick(v->vq);
	v->added = 0;
}

/* Fault injection for the host's checks: requests no FUSE caller can
 * make (out of range, wrapping, misaligned, unknown type), each with the
 * status the host must answer. */
static void selftest_start(struct vblk *v)
{
	static const struct {
		uint32_t type;
		int64_t sector_from_end; /* sector = capacity + this ... */
		uint64_t abs_sector;      /* ... unless this is set */
		uint32_t len;
		int expect;
	} t[] = {
		{ VIRTIO_BLK_T_OUT, 0, 0, 512, VIRTIO_BLK_S_IOERR },       /* just past the end */
		{ VIRTIO_BLK_T_OUT, 0, UINT64_MAX - 1, 1024, VIRTIO_BLK_S_IOERR }, /* wraps */
		{ VIRTIO_BLK_T_IN, -1, 0, 1024, VIRTIO_BLK_S_IOERR },      /* straddles the end */
		{ VIRTIO_BLK_T_OUT, -1, 0, 100, VIRTIO_BLK_S_IOERR },      /* not whole sectors */
		{ 99, 0, 1, 0, VIRTIO_BLK_S_UNSUPP },                      /* unknown type */
		{ VIRTIO_BLK_T_GET_ID, 0, 1, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_OK },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]) && v->nfree; i++) {
		uint64_t sector = t[i].abs_sector ? t[i].abs_sector :
						    v->capacity + (uint64_t)t[i].sector_from_end;
		int slot = v->free[v->nfree - 1];
		memset(v->slot[slot].data, 0xee, t[i].len);
		if (submit(v, NULL, t[i].type, sector, t[i].len, NULL, 0, t[i].len))
			continue;
		v->slot[slot].expect = t[i].expect;
		v->st_total++;
	}
	kick(v);
}

static void selftest_done(struct vblk *v, struct slot *s, uint8_t status)
{
	v->st_done++;
	if (status == s->expect)
		v->st_ok++;
	else
		cardlog(&v->os->log, "virtio-block selftest: type %u got status %u, expected %d", s->type,
			status, s->expect);
	if (s->type == VIRTIO_BLK_T_GET_ID && status == VIRTIO_BLK_S_OK)
		cardlog(&v->os->log, "virtio-block selftest: id '%.*s'", VIRTIO_BLK_ID_BYTES, (char *)s->data);
	if (v->st_done == v->st_total)
		cardlog(&v->os->log, "virtio-block selftest: %d/%d as expected", v->st_ok, v->st_total);
}

static void complete(struct vblk *v, int i)
{
	struct slot *s = &v->slot[i];
	uint8_t status = *(volatile uint8_t *)(s->hdr + 1);
	fuse_req_t req = s->req;
	s->req = NULL;
	v->free[v->nfree++] = i;
	v->completed++;
	if (!req) {
		selftest_done(v, s, status);
		return;
	}
	if (status != VIRTIO_BLK_S_OK) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (s->type == VIRTIO_BLK_T_IN)
		fuse_reply_buf(req, (const char *)s->data + s->skew, s->len);
	else if (s->type == VIRTIO_BLK_T_OUT)
		fuse_reply_write(req, s->len);
	else
		fuse_reply_err(req, 0);
}

static void fuse_events(struct vblk *v)
{
	if (v->mounted)
		card_watch_mod(v->os, v->fuse_fd, v->nfree ? EPOLLIN : 0);
}

static void used(void *ctx, void *tok, uint32_t len)
{
	(void)len;
	complete(ctx, (int)(uintptr_t)tok - 1);
}

static void on_doorbell(struct card_os *c, void *ctx, uint32_t events)
{
	struct vblk *v = ctx;
	(void)c;
	(void)events;
	mbus_ack_irq(&v->vd->mdev, v->line);
	mic_vop_vq_drain(v->vq, used, v);
	fuse_events(v);
}

/* --- FUSE side: one file, the disk --- */

static void file_attr(const struct vblk *v, fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | (v->ro ? 0444 : 0644);
		st->st_nlink = 1;
		st->st_size = (off_t)bytes(v);
		st->st_blksize = 4096;
		st->st_blocks = (blkcnt_t)v->capacity;
	}
}

static void op_init(void *ud, struct fuse_conn_info *conn)
{
	(void)ud;
	conn->max_write = DATA_MAX;
	conn->max_readahead = DATA_MAX;
	/* write data must sit in our receive buffer, not in a pipe */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* write-through: a write is on the host before the card hears "done" */
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct vblk *v = fuse_req_userdata(req);
	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = INO_FILE;
	e.attr_timeout = e.entry_timeout = 86400; /* the size never changes */
	file_attr(v, INO_FILE, &e.attr);
	fuse_reply_entry(req, &e);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != INO_FILE) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	file_attr(v, ino, &st);
	fuse_reply_attr(req, &st, 86400);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	static const char *const names[] = { ".", "..", FILE_NAME };
	char buf[512];
	size_t used = 0;
	for (off_t i = off; i < 3; i++) {
		struct stat st = { .st_ino = i == 2 ? INO_FILE : FUSE_ROOT_ID,
				   .st_mode = i == 2 ? S_IFREG : S_IFDIR };
		size_t n = fuse_add_direntry(req, buf + used, sizeof(buf) - used, names[i], &st, i + 1);
		if (n > sizeof(buf) - used || used + n > size)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	if (ino != INO_FILE) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (v->ro && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1; /* only we change the disk */
	fuse_reply_open(req, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)ino;
	(void)fi;
	if (off < 0 || (uint64_t)off >= bytes(v) || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	uint64_t end = (uint64_t)off + (size < DATA_MAX ? size : DATA_MAX);
	if (end > bytes(v))
		end = bytes(v);
	/* the device reads whole sectors: widen, reply with the asked part */
	uint64_t a = (uint64_t)off & ~(uint64_t)(SECTOR - 1);
	uint64_t e = (end + SECTOR - 1) & ~(uint64_t)(SECTOR - 1);
	if (submit(v, req, VIRTIO_BLK_T_IN, a / SECTOR, (uint32_t)(e - a), NULL, (uint32_t)((uint64_t)off - a),
		   (uint32_t)(end - (uint64_t)off)))
		fuse_reply_err(req, EIO);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)ino;
	(void)fi;
	if (v->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	/* Loop devices write whole sectors; a partial sector would need a
	 * read-modify-write nobody here asks for. */
	if (off < 0 || off % SECTOR || size % SECTOR || size > DATA_MAX) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if ((uint64_t)off >= bytes(v)) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	if (size > bytes(v) - (uint64_t)off)
		size = (size_t)(bytes(v) - (uint64_t)off);
	if (submit(v, req, VIRTIO_BLK_T_OUT, (uint64_t)off / SECTOR, (uint32_t)size, buf, 0, 0))
		fuse_reply_err(req, EIO);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)ino;
	(void)datasync;
	(void)fi;
	if (!v->can_flush || v->ro) {
		fuse_reply_err(req, 0);
		return;
	}
	if (submit(v, req, VIRTIO_BLK_T_FLUSH, 0, 0, NULL, 0, 0))
		fuse_reply_err(req, EIO);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0); /* writes are write-through: nothing to do on close */
}

static const struct fuse_lowlevel_ops fuse_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.getattr = op_getattr,
	.readdir = op_readdir,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.flush = op_flush,
};

/* Takes FUSE requests while a slot is free (each I/O request needs at most
 * one), then kicks the host once for the whole batch. */
static void on_fuse(struct card_os *c, void *ctx, uint32_t events)
{
	struct vblk *v = ctx;
	(void)c;
	(void)events;
	while (v->nfree && v->mounted) {
		int res = fuse_session_receive_buf(v->se, &v->fbuf);
		if (res == -EAGAIN || res == -EINTR)
			break;
		if (res <= 0 || fuse_session_exited(v->se)) {
			cardlog(&v->os->log, "virtio-block: FUSE session ended (%s)",
				res < 0 ? strerror(-res) : "unmounted");
			card_unwatch(v->os, v->fuse_fd);
			v->mounted = 0;
			break;
		}
		fuse_session_process_buf(v->se, &v->fbuf);
	}
	kick(v);
	fuse_events(v);
}

static int fuse_start(struct vblk *v)
{
	char *argv[] = { "mic-card", "-o", "fsname=virtio-blk,subtype=virtio-blk", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	mkdir("/run", 0755);
	mkdir(MNT_DIR, 0755);
	v->se = fuse_session_new(&args, &fuse_ops, sizeof(fuse_ops), v);
	fuse_opt_free_args(&args); /* libfuse may have copied them */
	if (!v->se)
		return -ENOMEM;
	if (fuse_session_mount(v->se, MNT_DIR) != 0)
		return -ENODEV; /* libfuse printed why; /dev/fuse or mount refused */
	v->mounted = 1;
	v->fuse_fd = fuse_session_fd(v->se);
	int fl = fcntl(v->fuse_fd, F_GETFL);
	if (fl < 0 || fcntl(v->fuse_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return card_watch(v->os, v->fuse_fd, EPOLLIN, on_fuse, v);
}

static void fuse_stop(struct vblk *v)
{
	if (!v->se)
		return;
	if (v->mounted)
		card_unwatch(v->os, v->fuse_fd);
	v->mounted = 0;
	fuse_session_unmount(v->se);
	fuse_session_destroy(v->se);
	v->se = NULL;
	free(v->fbuf.mem);
	v->fbuf.mem = NULL;
	rmdir(MNT_DIR);
}

/* --- loop device --- */

static void on_attach_exit(struct card_os *c, void *ctx, pid_t pid, int status);

/* The loop's device number as the kernel registered it (sysfs), or the
 * classic major 7 numbering. */
static dev_t loop_devno(int nr)
{
	char p[64];
	unsigned ma = 7, mi = (unsigned)nr;
	snprintf(p, sizeof(p), "/sys/block/loop%d/dev", nr);
	FILE *f = fopen(p, "re");
	if (f) {
		if (fscanf(f, "%u:%u", &ma, &mi) != 2) {
			ma = 7;
			mi = (unsigned)nr;
		}
		fclose(f);
	}
	return makedev(ma, mi);
}

static void loop_forget(struct vblk *v)
{
	if (v->loop_fd >= 0)
		close(v->loop_fd);
	v->loop_fd = -1;
	if (v->loop_path[0])
		unlink(v->loop_path);
	v->loop_path[0] = 0;
}

/* In a forked helper: keep only the loop device (and stdio).  Above all not
 * the FUSE device: if we die while the helper is blocked on the disk, the
 * kernel must see the FUSE server gone and fail the helper's I/O, or both
 * stay stuck in the kernel for ever, and with them the card's teardown. */
static void child_keep_only(int fd)
{
	if (fd > 3)
		close_range(3, (unsigned)fd - 1, 0);
	close_range((unsigned)fd + 1, ~0u, 0);
}

/* Child: opens the FUSE file and binds it to the loop device. */
static int attach_child(struct vblk *v)
{
	child_keep_only(v->loop_fd);
	int f = open(MNT_DIR "/" FILE_NAME, (v->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (f < 0)
		return errno;
	struct loop_config lc;
	memset(&lc, 0, sizeof(lc));
	lc.fd = (uint32_t)f;
	lc.block_size = SECTOR;
	/* direct I/O: one FUSE request per loop request, no second page cache */
	lc.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO | (v->ro ? LO_FLAGS_READ_ONLY : 0);
	snprintf((char *)lc.info.lo_file_name, sizeof(lc.info.lo_file_name), "virtio-blk:%s",
		 v->os->bp.name);
	if (ioctl(v->loop_fd, LOOP_CONFIGURE, &lc) == 0)
		return 0;
	if (errno == EINVAL) {
		lc.info.lo_flags &= ~(uint32_t)LO_FLAGS_DIRECT_IO;
		if (ioctl(v->loop_fd, LOOP_CONFIGURE, &lc) == 0)
			return 0;
	}
	if (errno != ENOTTY && errno != EINVAL)
		return errno;
	/* kernels before LOOP_CONFIGURE (5.8) */
	if (ioctl(v->loop_fd, LOOP_SET_FD, f) < 0)
		return errno;
	if (ioctl(v->loop_fd, LOOP_SET_STATUS64, &lc.info) < 0) {
		int e = errno;
		ioctl(v->loop_fd, LOOP_CLR_FD, 0);
		return e;
	}
	return 0;
}

static int start_attach(struct vblk *v)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	int e = errno;
	close(ctl);
	if (nr < 0)
		return -e;
	v->loop_nr = nr;
	v->loop_dev = loop_devno(nr);
	snprintf(v->loop_path, sizeof(v->loop_path), "/dev/loop%d", nr);
	unlink(v->loop_path);
	if (mknod(v->loop_path, S_IFBLK | 0600, v->loop_dev) < 0) {
		e = errno;
		v->loop_path[0] = 0;
		return -e;
	}
	v->loop_fd = open(v->loop_path, O_RDWR | O_CLOEXEC);
	if (v->loop_fd < 0) {
		e = errno;
		loop_forget(v);
		return -e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		e = errno;
		loop_forget(v);
		return -e;
	}
	if (pid == 0)
		_exit(attach_child(v));
	v->attach_pid = pid;
	return card_on_exit(v->os, pid, on_attach_exit, v);
}

static void on_attach_exit(struct card_os *c, void *ctx, pid_t pid, int status)
{
	struct vblk *v = ctx;
	(void)pid;
	v->attach_pid = 0;
	int err = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
	if (err == 0) {
		v->attached = 1;
		unlink(DEV_NODE);
		if (mknod(DEV_NODE, S_IFBLK | 0660, v->loop_dev) < 0)
			cardlog(&c->log, "virtio-block: mknod " DEV_NODE ": %s", strerror(errno));
		else
			cardlog(&c->log, "virtio-block: " DEV_NODE " (loop%d, %llu sectors%s)",
				v->loop_nr, (unsigned long long)v->capacity, v->ro ? ", read-only" : "");
		return;
	}
	loop_forget(v);
	/* EBUSY: another user took the free loop device first */
	if (err == EBUSY && !c->halting && ++v->attach_tries < ATTACH_TRIES) {
		int rc = start_attach(v);
		if (!rc)
			return;
		err = -rc;
	}
	cardlog(&c->log, "virtio-block: cannot attach a loop device: %s (disk only at " MNT_DIR "/" FILE_NAME ")",
		strerror(err));
}

/* --- removal: flush, detach, unmount --- */

/* Child: syncs and unmounts every mount of our disk in the card's mount
 * namespace, flushes the device (which sends FLUSH to the host), detaches
 * the loop.  Exit status: 0, or DETACH_LAZY (some mount was busy and was detached
 * lazily), plus DETACH_UNSYNCED when a flush failed: data may be lost. */
enum { DETACH_LAZY = 1, DETACH_UNSYNCED = 2 };

static int detach_child(struct vblk *v)
{
	child_keep_only(v->loop_fd);
	enum { MAXMNT = 64 };
	char(*targets)[PATH_MAX] = calloc(MAXMNT, PATH_MAX);
	int n = 0, lazy = 0, unsynced = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[2 * PATH_MAX];
	while (f && targets && fgets(line, sizeof(line), f) && n < MAXMNT) {
		unsigned ma, mi;
		int off = 0;
		if (sscanf(line, "%*d %*d %u:%u %*s %n", &ma, &mi, &off) != 2 || !off ||
		    makedev(ma, mi) != v->loop_dev)
			continue;
		/* the mount point, with the kernel's octal escapes (\040...) undone */
		char *t = targets[n], *p = line + off;
		size_t k = 0;
		while (*p && *p != ' ' && k < PATH_MAX - 1) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] && p[3]) {
				t[k++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 4;
			} else {
				t[k++] = *p++;
			}
		}
		t[k] = 0;
		n++;
	}
	if (f)
		fclose(f);
	int failed = 0;
	for (int i = n - 1; i >= 0; i--) {
		int d = open(targets[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (d < 0 || syncfs(d) < 0) {
			unsynced++;
			failed |= d >= 0; /* the flush itself failed: I/O error */
		}
		if (d >= 0)
			close(d);
		if (umount2(targets[i], 0) < 0) {
			/* still busy after the card's processes were stopped */
			if (umount2(targets[i], MNT_DETACH) == 0)
				lazy++;
		}
	}
	int sync_all = unsynced || !targets;
	free(targets);
	if (sync_all)
		sync(); /* a mount we could not reach by path: flush everything */
	if (fsync(v->loop_fd) < 0)
		failed = 1;
	ioctl(v->loop_fd, LOOP_CLR_FD, 0);
	return (lazy ? DETACH_LAZY : 0) | (failed ? DETACH_UNSYNCED : 0);
}

/* The event loop has ended: serve FUSE and the virtqueue here until the
 * child is done and no request is in flight, or the time is up. */
static int serve_until(struct vblk *v, pid_t child, int *child_status)
{
	uint64_t deadline = now_ms() + REMOVE_TIMEOUT_MS;
	uint64_t seen = v->completed;
	while (now_ms() < deadline) {
		if (v->completed != seen) {
			seen = v->completed;
			deadline = now_ms() + REMOVE_TIMEOUT_MS;
		}
		card_halting_keepalive(v->os); /* still flushing: do not reset us */
		if (child > 0 && waitpid(child, child_status, WNOHANG) == child)
			child = 0;
		if (child <= 0 && v->nfree == NSLOT)
			return 0;
		struct pollfd p[2] = {
			{ .fd = v->line_fd, .events = POLLIN },
			{ .fd = v->mounted ? v->fuse_fd : -1, .events = v->nfree ? POLLIN : 0 },
		};
		if (poll(p, 2, 20) < 0 && errno != EINTR)
			break;
		if (p[0].revents)
			on_doorbell(v->os, v, 0);
		if (p[1].revents)
			on_fuse(v->os, v, 0);
	}
	return -ETIMEDOUT;
}

static void detach(struct vblk *v)
{
	struct card_os *os = v->os;
	if (v->attach_pid > 0) {
		/* still attaching: let it finish so that we know what to undo */
		int st;
		card_on_exit_cancel(os, v->attach_pid);
		if (serve_until(v, v->attach_pid, &st) == 0 && WIFEXITED(st) && !WEXITSTATUS(st))
			v->attached = 1;
		v->attach_pid = 0;
	}
	if (!v->attached) {
		loop_forget(v);
		return;
	}
	pid_t pid = fork();
	if (pid == 0)
		_exit(detach_child(v));
	/* The child's copy of the loop fd is now the last one: its exit ends the
	 * loop device while we still answer FUSE. */
	close(v->loop_fd);
	v->loop_fd = -1;
	int st = 0;
	if (pid < 0)
		cardlog(&os->log, "virtio-block: cannot flush: %s", strerror(errno));
	else if (serve_until(v, pid, &st))
		cardlog(&os->log, "virtio-block: flush and detach timed out: data not yet on the "
				  "host is lost");
	else if (!WIFEXITED(st) || (WEXITSTATUS(st) & DETACH_UNSYNCED))
		cardlog(&os->log, "virtio-block: flushing the disk failed (I/O error): data may be "
				  "lost");
	else if (WEXITSTATUS(st) & DETACH_LAZY)
		cardlog(&os->log, "virtio-block: a mount was busy: synced, detached lazily");
	else
		cardlog(&os->log, "virtio-block: disk synced, unmounted, loop%d detached", v->loop_nr);
	unlink(DEV_NODE);
	loop_forget(v);
	v->attached = 0;
}

/* --- probe / remove --- */

static int alloc_slots(struct vblk *v)
{
	for (int i = 0; i < NSLOT; i++) {
		struct slot *s = &v->slot[i];
		if (mic_vop_cma_alloc(v->vd->cma, MIC_VOP_CMA_ALIGN, &s->hdr_addr) ||
		    mic_vop_cma_alloc(v->vd->cma, SLOT_DATA, &s->data_addr))
			return -ENOMEM;
		s->hdr = mic_vop_cma_ptr(v->vd->cma, s->hdr_addr, MIC_VOP_CMA_ALIGN);
		s->data = mic_vop_cma_ptr(v->vd->cma, s->data_addr, SLOT_DATA);
		v->free[v->nfree++] = i;
	}
	return 0;
}

static void free_slots(struct vblk *v)
{
	for (int i = 0; i < NSLOT; i++) {
		struct slot *s = &v->slot[i];
		if (s->hdr)
			mic_vop_cma_free(v->vd->cma, s->hdr_addr, MIC_VOP_CMA_ALIGN);
		if (s->data)
			mic_vop_cma_free(v->vd->cma, s->data_addr, SLOT_DATA);
	}
}

static void vblk_free(struct vblk *v)
{
	fuse_stop(v);
	free_slots(v);
	v->vd->mdev.priv = NULL;
	free(v);
}

static int vblk_probe(struct mbus_device *dev)
{
	struct card_vdev *vd = (struct card_vdev *)dev;
	struct card_os *os = dev->driver->data;
	struct vblk *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->os = os;
	v->vd = vd;
	v->line_fd = v->loop_fd = v->fuse_fd = -1;
	dev->priv = v;
	const char *what = "negotiate";
	uint64_t f = 0, cap = 0;
	int rc = mic_vop_cdev_negotiate(vd->cdev, MIC_VOP_CARD_TRANSPORT_FEATURES |
				 (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
				 (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO), &f);
	if (!rc && (what = "config", rc = mic_vop_cdev_read_config(vd->cdev, 0, &cap, sizeof(cap))) == 0) {
		v->capacity = le64toh(cap);
		v->ro = !!(f & (1ull << VIRTIO_BLK_F_RO));
		v->can_flush = !!(f & (1ull << VIRTIO_BLK_F_FLUSH));
	}
	if (!rc && (what = "virtqueue", rc = mic_vop_cdev_setup_vq(vd->cdev, 0, CARD_VQ_FLAGS, &v->vq)) == 0)
		what = "buffers", rc = alloc_slots(v);
	if (!rc) {
		what = "doorbell";
		v->line = mic_vop_cdev_h2c_db(vd->cdev);
		v->line_fd = mbus_request_irq(dev, v->line, NULL, NULL);
		if (v->line_fd < 0)
			rc = v->line_fd;
		else if (!(rc = mic_vop_cdev_driver_ok(vd->cdev)))
			rc = card_watch(os, v->line_fd, EPOLLIN, on_doorbell, v);
		if (rc && v->line_fd >= 0) {
			mbus_free_irq(dev, v->line);
			v->line_fd = -1;
		}
	}
	if (!rc && strstr(os->bp.cmdline, "mic.blk_selftest"))
		selftest_start(v);
	if (!rc)
		what = "FUSE (/dev/fuse, mount " MNT_DIR ")", rc = fuse_start(v);
	if (!rc)
		what = "loop device (/dev/loop-control)", rc = start_attach(v);
	if (rc) {
		cardlog(&os->log, "bus: probe virtio-block failed: %s: %s", what, strerror(-rc));
		loop_forget(v);
		if (v->line_fd >= 0)
			card_vdev_release(vd, v->line, v->line_fd);
		else
			mic_vop_cdev_reset(vd->cdev, 1000);
		vblk_free(v);
		return rc;
	}
	cardlog(&os->log, "bus: probe virtio-block: %llu sectors%s (features %#llx)",
		(unsigned long long)v->capacity, v->ro ? ", read-only" : "", (unsigned long long)f);
	return 0;
}

static void vblk_remove(struct mbus_device *dev)
{
	struct vblk *v = dev->priv;
	struct card_os *os = v->os;
	cardlog(&os->log, "bus: remove virtio-block");
	detach(v);
	/* answer what is still in flight before the session goes */
	if (v->nfree != NSLOT && serve_until(v, 0, NULL))
		cardlog(&os->log, "virtio-block: %d request(s) unanswered", NSLOT - v->nfree);
	int busy = v->nfree != NSLOT;
	if (busy) {
		/* the host may still write into the slots: leak them rather than
		 * let a later allocation be overwritten */
		for (int i = 0; i < NSLOT; i++)
			v->slot[i].hdr = NULL, v->slot[i].data = NULL;
	}
	card_vdev_release(v->vd, v->line, v->line_fd);
	vblk_free(v);
}

void virtio_block_driver_init(struct mbus_driver *drv, struct card_os *os)
{
	static const uint32_t ids[] = { MBUS_DEV_VIRTIO_BASE + VIRTIO_ID_BLOCK, MBUS_DEV_ANY };
	card_virtio_driver(drv, os, "virtio-block", ids, vblk_probe, vblk_remove);
}
