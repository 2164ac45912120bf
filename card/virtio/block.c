/* SPDX-License-Identifier: MIT */
/*
 * virtio-block driver of the card: the virtio disk becomes /dev/vda, a FUSE
 * file in the card's mount namespace served from the card's event loop,
 * since the card OS is a process and the host's kernel must never parse a
 * filesystem the card controls.  Design: docs/architecture.md 3.13.
 */
#define FUSE_USE_VERSION 312
#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "card/mount.h"
#include "card/vop.h"
#include "lib/clock.h"
#include "vop/card/vop_card.h"

#define SECTOR 512u
/* Requests in flight: as many as a QD32 job keeps busy (FUSE's
 * max_background is raised to match).  Only NBIG slots carry a full
 * DATA_MAX transfer; the rest take requests of up to SMALL_MAX, so 32
 * slots cost about 11 MiB of card memory rather than 33. */
#define NSLOT 32
#define NBIG 8
#define DATA_MAX (1u << 20)            /* FUSE max_write / largest read */
#define SMALL_MAX (128u << 10)
#define WIDEN 4096u                    /* room to widen an unaligned read to sectors */
/* FUSE's header before a WRITE's payload (fuse_in_header + fuse_write_in),
 * and the room a big slot has in front of its data for it: /dev/fuse is
 * read into the slot so that a write's payload lands on the slot's data,
 * which stays on the DMA engine's 64-byte granule. */
#define FUSE_WRITE_HDR 80u
#define RX_ROOM 128u
_Static_assert(sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in) == FUSE_WRITE_HDR,
	       "FUSE's WRITE header");
_Static_assert(RX_ROOM >= FUSE_WRITE_HDR && RX_ROOM % MIC_VOP_CMA_ALIGN == 0, "room before a big slot");
#define MNT_DIR "/run/virtio-blk"
#define DISK_FILE MNT_DIR "/vda" /* mounted on itself: the FUSE root is the file */
/* A symlink, not a second mount of the file: tools that refuse a device
 * named as a mount point (busybox mke2fs) see a plain file. */
#define DEV_NODE "/dev/vda"
/* A flush may take long (much dirty data, a slow host disk: one FLUSH is a
 * host fdatasync) but must keep moving: give up only after this long
 * without a completed request.  Giving up loses what is not yet on the
 * host, so this is generous; the host bounds the whole shutdown anyway
 * (the keep-alive below extends its timer up to its own limit). */
#define REMOVE_TIMEOUT_MS 30000
/* Holders of the disk still open after the unmounts, with no request for
 * this long: they are not flushing a filesystem (a fuse2fs that is writes
 * without pause until it closes the disk). */
#define CLOSE_QUIET_MS 2000

struct slot {
	uint64_t hdr_addr, data_addr;
	struct virtio_blk_outhdr *hdr; /* status byte right after it */
	uint8_t *data;
	uint32_t cap; /* bytes data holds (a big slot has RX_ROOM before it) */
	fuse_req_t req;
	uint32_t type;
	uint32_t skew, len; /* IN: reply data + skew, len bytes; OUT: len written */
	uint32_t dlen;      /* bytes the device moves (sent again after a device reset) */
	int expect;         /* self-test request (req == NULL): the status it must get */
	/* write of part of a sector, in its read phase: the bytes to merge at
	 * skew once the covering sectors are in (NULL otherwise) */
	uint8_t *rmw;
};

struct vblk {
	struct cos *os;
	uint64_t completed; /* requests the host finished: progress while flushing */
	struct cos_vdev *vd;
	struct mic_vop_vq *vq;
	uint64_t capacity; /* sectors */
	int ro, can_flush;
	struct slot slot[NSLOT];
	int free[NSLOT];
	int nfree;
	int nbigfree; /* free slots that hold any request: FUSE is read while one is */
	int added; /* requests added since the last kick */
	struct fuse_session *se;
	int rx; /* the big slot /dev/fuse is being read into, or -1 */
	int fuse_fd;
	uint32_t fuse_ev; /* what the loop watches fuse_fd for */
	int mounted;
	int opens; /* open files of the disk: fuse2fs holds one until it has flushed */
	int st_total, st_done, st_ok; /* self-test (cmdline mic.blk_selftest) */
};

static uint64_t bytes(const struct vblk *v)
{
	return v->capacity * SECTOR;
}

/* --- virtio side --- */

/* Puts slot i's request (header, data, status) in the ring. */
static int queue_slot(struct vblk *v, int i)
{
	struct slot *s = &v->slot[i];
	uint8_t *status = (uint8_t *)(s->hdr + 1);
	*status = 0xff; /* a host that answers nothing is an error */
	struct mic_vop_sg sg[3] = { { s->hdr_addr, sizeof(*s->hdr) } };
	unsigned out = 1, in = 0;
	if (s->type == VIRTIO_BLK_T_OUT)
		sg[out++] = (struct mic_vop_sg){ s->data_addr, s->dlen };
	else if (s->dlen)
		sg[out + in++] = (struct mic_vop_sg){ s->data_addr, s->dlen };
	sg[out + in++] = (struct mic_vop_sg){ s->hdr_addr + sizeof(*s->hdr), 1 };
	int rc = mic_vop_vq_add_sgs(v->vq, sg, out, in, (void *)(uintptr_t)(i + 1));
	if (rc)
		return rc;
	v->added = 1;
	return 0;
}

/* len: bytes moved by the device; skew, rlen: the part of a read that
 * goes back to FUSE (a read is widened to whole sectors).  Slot i is
 * taken from the free list by the caller. */
static int submit_slot(struct vblk *v, int i, fuse_req_t req, uint32_t type, uint64_t sector,
		       uint32_t len, const void *wdata, uint32_t skew, uint32_t rlen)
{
	struct slot *s = &v->slot[i];
	s->req = req;
	s->type = type;
	s->skew = skew;
	s->len = type == VIRTIO_BLK_T_IN ? rlen : len;
	s->dlen = len;
	s->hdr->type = htole32(type);
	s->hdr->ioprio = 0;
	s->hdr->sector = htole64(sector);
	if (type == VIRTIO_BLK_T_OUT && wdata && wdata != s->data)
		memcpy(s->data, wdata, len);
	return queue_slot(v, i);
}

static int is_big(int i)
{
	return i < NBIG;
}

/* A free slot whose buffer holds len bytes, a small one if one does;
 * -1 if none. */
static int slot_take(struct vblk *v, uint32_t len)
{
	int pick = -1;
	for (int k = 0; k < v->nfree; k++) {
		if (v->slot[v->free[k]].cap < len)
			continue;
		pick = k;
		if (!is_big(v->free[k]))
			break;
	}
	if (pick < 0)
		return -1;
	int i = v->free[pick];
	v->free[pick] = v->free[--v->nfree];
	v->nbigfree -= is_big(i);
	return i;
}

/* Takes slot i if it is free; -1 if not. */
static int slot_take_this(struct vblk *v, int i)
{
	for (int k = 0; k < v->nfree; k++) {
		if (v->free[k] != i)
			continue;
		v->free[k] = v->free[--v->nfree];
		v->nbigfree -= is_big(i);
		return i;
	}
	return -1;
}

static void slot_put(struct vblk *v, int i)
{
	v->free[v->nfree++] = i;
	v->nbigfree += is_big(i);
}

/* Takes a slot and submits; its index in *slot (if given), or -errno. */
static int submit(struct vblk *v, fuse_req_t req, uint32_t type, uint64_t sector, uint32_t len,
		  const void *wdata, uint32_t skew, uint32_t rlen, int *slot)
{
	int i = slot_take(v, len);
	if (i < 0)
		return -ENOSPC;
	int rc = submit_slot(v, i, req, type, sector, len, wdata, skew, rlen);
	if (rc)
		slot_put(v, i);
	else if (slot)
		*slot = i;
	return rc;
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
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t sector = t[i].abs_sector ? t[i].abs_sector :
						    v->capacity + (uint64_t)t[i].sector_from_end;
		int slot = slot_take(v, t[i].len);
		if (slot < 0)
			break;
		memset(v->slot[slot].data, 0xee, t[i].len);
		if (submit_slot(v, slot, NULL, t[i].type, sector, t[i].len, NULL, 0, t[i].len)) {
			slot_put(v, slot);
			continue;
		}
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

/* The read phase of a partial-sector write is in: merge the caller's
 * bytes and write the covering sectors back from the same slot. */
static void rmw_write(struct vblk *v, int i, uint8_t status)
{
	struct slot *s = &v->slot[i];
	uint8_t *bytes_in = s->rmw;
	uint32_t skew = s->skew, n = s->len;
	uint64_t sector = le64toh(s->hdr->sector);
	uint32_t len = (skew + n + SECTOR - 1) & ~(SECTOR - 1);
	fuse_req_t req = s->req;
	s->rmw = NULL;
	if (status == VIRTIO_BLK_S_OK) {
		memcpy(s->data + skew, bytes_in, n);
		status = submit_slot(v, i, req, VIRTIO_BLK_T_OUT, sector, len, NULL, 0, 0) ?
				 VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
	}
	free(bytes_in);
	if (status == VIRTIO_BLK_S_OK) {
		s->len = n; /* what the caller wrote, for the reply */
		return;
	}
	s->req = NULL;
	slot_put(v, i);
	fuse_reply_err(req, EIO);
}

static void complete(struct vblk *v, int i)
{
	struct slot *s = &v->slot[i];
	uint8_t status = *(volatile uint8_t *)(s->hdr + 1);
	v->completed++;
	if (s->rmw) {
		rmw_write(v, i, status);
		return;
	}
	fuse_req_t req = s->req;
	s->req = NULL;
	slot_put(v, i);
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
	uint32_t ev = v->nbigfree ? EPOLLIN : 0;
	/* only on a change: an epoll_ctl per wake-up cost as much as a reply */
	if (v->mounted && ev != v->fuse_ev && cos_watch_mod(v->os->loop, v->fuse_fd, ev) == 0)
		v->fuse_ev = ev;
}

static void used(void *ctx, void *tok, uint32_t len)
{
	(void)len;
	complete(ctx, (int)(uintptr_t)tok - 1);
}

static void on_doorbell(void *ctx, uint32_t events)
{
	struct vblk *v = ctx;
	(void)events;
	mbus_ack_irq(&v->vd->mdev, v->vd->line);
	mic_vop_vq_drain(v->vq, used, v);
	kick(v); /* second halves of partial-sector writes */
	fuse_events(v);
}

/* --- FUSE side: the mount's root is the disk, a file --- */

static void file_attr(const struct vblk *v, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFREG | (v->ro ? 0444 : 0644);
	st->st_nlink = 1;
	st->st_size = (off_t)bytes(v);
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)v->capacity;
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
	/* With it the kernel would set the size to 0 itself on O_TRUNC (dd
	 * without conv=notrunc); without it asks setattr, which keeps it. */
	conn->want &= ~(unsigned)FUSE_CAP_ATOMIC_O_TRUNC;
	/* Asynchronous direct I/O (libaio) reaches us as background
	 * requests, of which the kernel passes on 12 by default: let as many
	 * through as we have slots, or a QD32 job runs at QD12. */
	conn->max_background = NSLOT;
	conn->congestion_threshold = NSLOT * 3 / 4;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	file_attr(v, &st);
	/* The size changes only when the device is recovered, which
	 * invalidates this (vblk_config_changed). */
	fuse_reply_attr(req, &st, 86400);
}

/* A disk keeps its size, owner and mode, as a block device does: truncation
 * (open with O_TRUNC, dd's ftruncate before a seek) is accepted and changes
 * nothing, so that tools written for block devices work on the file. */
static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)attr;
	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if ((to_set & FUSE_SET_ATTR_SIZE) && v->ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct stat st;
	file_attr(v, &st);
	fuse_reply_attr(req, &st, 86400);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (v->ro && (fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fi->keep_cache = 1; /* only we change the disk */
	if (fuse_reply_open(req, fi) == 0)
		v->opens++;
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct vblk *v = fuse_req_userdata(req);
	(void)ino;
	(void)fi;
	if (v->opens > 0)
		v->opens--;
	fuse_reply_err(req, 0);
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
		   (uint32_t)(end - (uint64_t)off), NULL))
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
	if (off < 0 || size > DATA_MAX) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	if ((uint64_t)off >= bytes(v)) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	if (size > bytes(v) - (uint64_t)off)
		size = (size_t)(bytes(v) - (uint64_t)off);
	if (off % SECTOR == 0 && size % SECTOR == 0) {
		/* The payload was read into a big slot (on_fuse): write it from
		 * there, with no copy, unless a small slot takes it (a small
		 * write must not hold a big slot, or FUSE is read less often). */
		int i = slot_take(v, (uint32_t)size);
		if (i >= 0 && is_big(i) && i != v->rx && v->rx >= 0 &&
		    buf == (const char *)v->slot[v->rx].data) {
			int rx = slot_take_this(v, v->rx);
			if (rx >= 0) {
				slot_put(v, i);
				i = rx;
			}
		}
		if (i < 0 || submit_slot(v, i, req, VIRTIO_BLK_T_OUT, (uint64_t)off / SECTOR,
					 (uint32_t)size, buf, 0, 0)) {
			if (i >= 0)
				slot_put(v, i);
			fuse_reply_err(req, EIO);
		}
		return;
	}
	/* Part of a sector (libext2fs rewrites superblock fields by the byte):
	 * read the covering sectors, merge, write them (rmw_write).  Buffered
	 * writes to the file come one at a time from the kernel (it holds the
	 * inode lock while a write-through write waits), so no other write can
	 * slip in between the two halves; concurrent O_DIRECT writes of parts
	 * of one sector could (a real disk refuses unaligned direct I/O). */
	uint8_t *copy = malloc(size);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, buf, size);
	uint64_t a = (uint64_t)off & ~(uint64_t)(SECTOR - 1);
	uint64_t e = ((uint64_t)off + size + SECTOR - 1) & ~(uint64_t)(SECTOR - 1);
	int slot;
	if (submit(v, req, VIRTIO_BLK_T_IN, a / SECTOR, (uint32_t)(e - a), NULL,
		   (uint32_t)((uint64_t)off - a), (uint32_t)size, &slot)) {
		free(copy);
		fuse_reply_err(req, EIO);
		return;
	}
	v->slot[slot].rmw = copy;
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
	if (submit(v, req, VIRTIO_BLK_T_FLUSH, 0, 0, NULL, 0, 0, NULL))
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
	.getattr = op_getattr,
	.setattr = op_setattr,
	.open = op_open,
	.release = op_release,
	.read = op_read,
	.write = op_write,
	.fsync = op_fsync,
	.flush = op_flush,
};

/* Reads one FUSE request into a free big slot (v->rx), FUSE_WRITE_HDR
 * bytes before its data, so that a WRITE's payload lands where the
 * request's data segment points and goes to the host with no copy of our
 * own (libfuse's receive would read into its own buffer; op_write would
 * then copy).  The kernel wants room for max_write + FUSE_WRITE_HDR:
 * the slot has DATA_MAX + WIDEN.  Returns the request's length, 0 when
 * the session ended, or -errno. */
static int fuse_receive(struct vblk *v)
{
	v->rx = -1;
	for (int k = 0; k < v->nfree && v->rx < 0; k++)
		if (is_big(v->free[k]))
			v->rx = v->free[k];
	if (v->rx < 0)
		return -EAGAIN;
	struct slot *s = &v->slot[v->rx];
	for (;;) {
		ssize_t n = read(v->fuse_fd, s->data - FUSE_WRITE_HDR, FUSE_WRITE_HDR + s->cap);
		if (n >= (ssize_t)sizeof(struct fuse_in_header))
			return (int)n;
		if (n >= 0)
			return -EIO;
		if (errno == ENOENT) /* the request was interrupted: the next */
			continue;
		if (errno == ENODEV) { /* unmounted, or the connection aborted */
			fuse_session_exit(v->se);
			return 0;
		}
		return -errno;
	}
}

/* Takes FUSE requests while a big slot is free (any request fits one; a
 * small one is taken instead when it fits), then kicks the host once for
 * the whole batch. */
static void on_fuse(void *ctx, uint32_t events)
{
	struct vblk *v = ctx;
	(void)events;
	while (v->nbigfree && v->mounted) {
		int res = fuse_receive(v);
		if (res == -EAGAIN || res == -EINTR)
			break;
		if (res <= 0 || fuse_session_exited(v->se)) {
			cardlog(&v->os->log, "virtio-block: FUSE session ended (%s)",
				res < 0 ? strerror(-res) : "unmounted");
			cos_unwatch(v->os->loop, v->fuse_fd);
			v->mounted = 0;
			break;
		}
		struct fuse_buf fb = { .mem = v->slot[v->rx].data - FUSE_WRITE_HDR, .size = (size_t)res };
		fuse_session_process_buf(v->se, &fb);
	}
	v->rx = -1; /* only op_write, called from the loop above, looks at it */
	kick(v);
	fuse_events(v);
}

static int fuse_start(struct vblk *v)
{
	char *argv[] = { "mic-card", "-o", "fsname=virtio-blk,subtype=virtio-blk", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	/* the mount point: FUSE mounts a file on a file */
	mkdir("/run", 0755);
	mkdir(MNT_DIR, 0755);
	int f = open(DISK_FILE, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f < 0)
		return -errno;
	close(f);
	v->se = fuse_session_new(&args, &fuse_ops, sizeof(fuse_ops), v);
	fuse_opt_free_args(&args); /* libfuse may have copied them */
	if (!v->se)
		return -ENOMEM;
	if (fuse_session_mount(v->se, DISK_FILE) != 0)
		return -ENODEV; /* libfuse printed why; /dev/fuse or mount refused */
	v->mounted = 1;
	unlink(DEV_NODE);
	if (symlink(DISK_FILE, DEV_NODE) < 0)
		return -errno;
	v->fuse_fd = fuse_session_fd(v->se);
	int fl = fcntl(v->fuse_fd, F_GETFL);
	if (fl < 0 || fcntl(v->fuse_fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	v->fuse_ev = EPOLLIN;
	return cos_watch(v->os->loop, v->fuse_fd, EPOLLIN, on_fuse, v);
}

static void fuse_stop(struct vblk *v)
{
	if (v->se) {
		if (v->mounted)
			cos_unwatch(v->os->loop, v->fuse_fd);
		v->mounted = 0;
		fuse_session_unmount(v->se);
		fuse_session_destroy(v->se);
		v->se = NULL;
	}
	unlink(DEV_NODE);
	unlink(DISK_FILE);
	rmdir(MNT_DIR);
}

/* --- removal: unmount, let the filesystem servers flush, flush --- */

/* In a forked helper: no inherited fd but stdio.  Above all not the FUSE
 * device: if we die while the helper is blocked on the disk, the kernel
 * must see the FUSE server gone and fail the helper's I/O, or both stay
 * stuck in the kernel for ever, and with them the card's teardown. */
static void child_close_fds(void)
{
	close_range(3, ~0u, 0);
}

/* Child: unmounts every filesystem mounted from the disk (fuse2fs mounts:
 * type fuse.*, source /dev/vda), innermost first.  A real unmount ends the
 * FUSE connection; fuse2fs then writes what it holds and exits, which the
 * parent waits for.  Exit status: 0, or DETACH_LAZY when a mount was still
 * busy and was detached lazily. */
enum { DETACH_LAZY = 1, DETACH_UNSYNCED = 2 };

static int unmount_child(void)
{
	child_close_fds();
	enum { MAXMNT = 64 };
	char(*targets)[PATH_MAX] = calloc(MAXMNT, PATH_MAX);
	int n = 0, lazy = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	struct cos_mnt *m = malloc(sizeof(*m));
	while (f && m && targets && n < MAXMNT && cos_mountinfo_next(f, m)) {
		if (strncmp(m->type, "fuse", 4) || (strcmp(m->src, DEV_NODE) && strcmp(m->src, DISK_FILE)))
			continue;
		snprintf(targets[n++], PATH_MAX, "%s", m->dir);
	}
	free(m);
	if (f)
		fclose(f);
	for (int i = n - 1; i >= 0; i--) {
		if (umount2(targets[i], 0) < 0 && umount2(targets[i], MNT_DETACH) == 0)
			lazy++; /* still busy after the card's processes were stopped */
	}
	free(targets);
	return lazy ? DETACH_LAZY : 0;
}

/* Child: the final flush (FUSE fsync, a FLUSH to the host). */
static int flush_child(void)
{
	child_close_fds();
	int fd = open(DISK_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return DETACH_UNSYNCED;
	int rc = fsync(fd) < 0 ? DETACH_UNSYNCED : 0;
	close(fd);
	return rc;
}

/* What a removal waits for while the card's event loop keeps serving FUSE
 * and the virtqueue: a child to exit and no request in flight, or, with
 * until_closed, also nobody holding the disk open. */
struct serve {
	struct vblk *v;
	pid_t child; /* 0 once it has exited */
	int status;
	int until_closed;
	uint64_t deadline, quiet, seen;
	int opens;
	int result;
};

static void served_child_exit(void *ctx, pid_t pid, int status)
{
	struct serve *w = ctx;
	(void)pid;
	w->child = 0;
	w->status = status;
}

/* For cos_loop_run_until: nonzero once w->result is known (0: done; 1: the
 * holders have been idle for CLOSE_QUIET_MS, they are not flushing;
 * -ETIMEDOUT: no progress for REMOVE_TIMEOUT_MS). */
static int serve_done(void *ctx)
{
	struct serve *w = ctx;
	struct vblk *v = w->v;
	if (v->completed != w->seen || v->opens != w->opens || v->nfree != NSLOT) {
		if (v->completed != w->seen || v->opens != w->opens)
			w->deadline = now_ms() + REMOVE_TIMEOUT_MS;
		w->seen = v->completed;
		w->opens = v->opens;
		w->quiet = now_ms();
	}
	if (w->child <= 0 && v->nfree == NSLOT) {
		if (!w->until_closed || !v->opens || !v->mounted)
			return w->result = 0, 1;
		if (now_ms() - w->quiet >= CLOSE_QUIET_MS)
			return w->result = 1, 1;
	}
	if (now_ms() >= w->deadline)
		return w->result = -ETIMEDOUT, 1;
	return 0;
}

static int serve_until(struct vblk *v, struct serve *w, int until_closed)
{
	w->v = v;
	w->until_closed = until_closed;
	w->deadline = now_ms() + REMOVE_TIMEOUT_MS;
	w->quiet = now_ms();
	w->seen = v->completed;
	w->opens = v->opens;
	cos_loop_run_until(v->os->loop, serve_done, w, 20);
	return w->result;
}

/* Runs fn in a child while serving the disk; its exit status, or -1. */
static int run_served(struct vblk *v, int (*fn)(void))
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(fn());
	if (pid < 0) {
		cardlog(&v->os->log, "virtio-block: fork: %s", strerror(errno));
		return -1;
	}
	struct serve w = { .child = pid };
	if (cos_on_exit(v->os->loop, pid, served_child_exit, &w) || serve_until(v, &w, 0)) {
		if (w.child > 0) { /* once reaped, its pid may be another process's */
			cos_on_exit_cancel(v->os->loop, pid);
			kill(pid, SIGKILL);
			waitpid(pid, &w.status, 0);
		}
		return -1;
	}
	return WIFEXITED(w.status) ? WEXITSTATUS(w.status) : -1;
}

/* As at a real disk's removal: every filesystem on it unmounted, its
 * fuse2fs gone having written all it held (it keeps the disk open until
 * then), then one FLUSH, so that all the card wrote is on the host's disk
 * before the device goes. */
static void detach(struct vblk *v)
{
	struct cos *os = v->os;
	if (!v->mounted)
		return;
	int um = run_served(v, unmount_child);
	if (um < 0)
		cardlog(&os->log, "virtio-block: unmounting timed out");
	struct serve w = { 0 };
	int left = um >= 0 && !(um & DETACH_LAZY) ? serve_until(v, &w, 1) : 0;
	if (left < 0)
		cardlog(&os->log, "virtio-block: the disk's users did not finish (%d open)", v->opens);
	else if (left > 0)
		cardlog(&os->log, "virtio-block: %d idle open file(s) of the disk left", v->opens);
	int fl = run_served(v, flush_child);
	if (fl < 0)
		cardlog(&os->log, "virtio-block: flush timed out: data not yet on the host is lost");
	else if (fl & DETACH_UNSYNCED)
		cardlog(&os->log, "virtio-block: flushing the disk failed (I/O error): data may be "
				  "lost");
	else if (um < 0 || left < 0)
		cardlog(&os->log, "virtio-block: disk flushed, but a filesystem on it may not be");
	else if (um & DETACH_LAZY)
		cardlog(&os->log, "virtio-block: a mount was busy: synced, detached lazily");
	else
		cardlog(&os->log, "virtio-block: disk synced, unmounted");
}

/* The card OS stops its processes before its devices go, but not the
 * fuse2fs serving a filesystem on this disk: the writers it serves must be
 * able to finish, and the unmount at removal then makes it flush. */
static int vblk_spare(void *ctx, pid_t pid)
{
	(void)ctx;
	return cos_fuse2fs_of(pid, DISK_FILE); /* the path its fd names */
}

/* --- recovery --- */

#define VBLK_FEATURES                                                                     \
	((1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |               \
	 (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO))

/* The host flagged the device NEEDS_RESET (its backend went away and came
 * back) and said so with a config change: reset it and send again every
 * request still in flight, so no write FUSE has not yet been told of is
 * lost, and nothing FUSE was told of is done twice in a way that matters
 * (a block write or read repeated lands the same). */
static void vblk_config_changed(struct cos_vdev *vd)
{
	struct vblk *v = vd->mdev.priv;
	if (!v || !mic_vop_cdev_needs_reset(vd->cdev))
		return;
	uint64_t f = 0;
	int rc = cos_vdev_recover(vd, VBLK_FEATURES, &f, &v->vq, 1);
	uint64_t cap = 0;
	if (!rc)
		rc = mic_vop_cdev_read_config(vd->cdev, 0, &cap, sizeof(cap));
	if (rc) {
		cardlog(&v->os->log, "virtio-block: device reset failed: %s", strerror(-rc));
		return;
	}
	/* A backend that was not there when the card booted offered nothing
	 * yet (0 sectors): its size and features come now (3.21). */
	v->ro = !!(f & (1ull << VIRTIO_BLK_F_RO));
	v->can_flush = !!(f & (1ull << VIRTIO_BLK_F_FLUSH));
	if (le64toh(cap) != v->capacity) {
		v->capacity = le64toh(cap);
		/* Attributes only (offset < 0): no page lock, so no wait on a
		 * request of ours in flight. */
		fuse_lowlevel_notify_inval_inode(v->se, FUSE_ROOT_ID, -1, 0);
		cardlog(&v->os->log, "virtio-block: " DEV_NODE " now %llu sectors%s (features %#llx)",
			(unsigned long long)v->capacity, v->ro ? ", read-only" : "",
			(unsigned long long)f);
	}
	bool idle[NSLOT] = { false };
	for (int k = 0; k < v->nfree; k++)
		idle[v->free[k]] = true;
	int again = 0;
	for (int i = 0; i < NSLOT; i++)
		if (!idle[i] && queue_slot(v, i) == 0)
			again++;
	kick(v);
	cardlog(&v->os->log, "virtio-block: device reset (host flagged it); %d request(s) sent again",
		again);
}

/* --- probe / remove --- */

static int alloc_slots(struct vblk *v)
{
	for (int i = 0; i < NSLOT; i++) {
		struct slot *s = &v->slot[i];
		s->cap = (is_big(i) ? DATA_MAX : SMALL_MAX) + WIDEN;
		uint32_t room = is_big(i) ? RX_ROOM : 0;
		if (!(s->hdr = cos_vdev_alloc(v->vd, MIC_VOP_CMA_ALIGN, &s->hdr_addr)) ||
		    !(s->data = cos_vdev_alloc(v->vd, room + s->cap, &s->data_addr)))
			return -ENOMEM;
		s->data += room;
		s->data_addr += room;
		slot_put(v, i);
	}
	return 0;
}

/* After cos_vdev_release, which frees the slots' card memory. */
static void vblk_free(struct vblk *v)
{
	if (v->os->spare_ctx == v)
		v->os->spare = NULL, v->os->spare_ctx = NULL;
	fuse_stop(v);
	for (int i = 0; i < NSLOT; i++)
		free(v->slot[i].rmw); /* a partial write cut off in its read phase */
	v->vd->mdev.priv = NULL;
	free(v);
}

static int vblk_probe(struct cos_vdev *vd)
{
	struct mbus_device *dev = &vd->mdev;
	struct cos *os = vd->os;
	struct vblk *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->os = os;
	v->vd = vd;
	v->fuse_fd = -1;
	v->rx = -1;
	dev->priv = v;
	const char *what = "negotiate";
	uint64_t f = 0, cap = 0;
	int rc = cos_vdev_setup(vd, VBLK_FEATURES, &f, &v->vq, 1);
	if (!rc && (what = "config", rc = mic_vop_cdev_read_config(vd->cdev, 0, &cap, sizeof(cap))) == 0) {
		v->capacity = le64toh(cap);
		v->ro = !!(f & (1ull << VIRTIO_BLK_F_RO));
		v->can_flush = !!(f & (1ull << VIRTIO_BLK_F_FLUSH));
	}
	if (!rc)
		what = "buffers", rc = alloc_slots(v);
	if (!rc)
		what = "doorbell", rc = cos_vdev_ready(vd, on_doorbell, v);
	if (!rc)
		vd->config_changed = vblk_config_changed;
	if (!rc && strstr(os->bp.cmdline, "mic.blk_selftest"))
		selftest_start(v);
	if (!rc)
		what = "FUSE (/dev/fuse, mount " DISK_FILE ")", rc = fuse_start(v);
	if (rc) {
		cardlog(&os->log, "bus: probe virtio-block failed: %s: %s", what, strerror(-rc));
		cos_vdev_release(vd);
		vblk_free(v);
		return rc;
	}
	cardlog(&os->log, "bus: probe virtio-block: %llu sectors%s (features %#llx)",
		(unsigned long long)v->capacity, v->ro ? ", read-only" : "", (unsigned long long)f);
	os->spare = vblk_spare;
	os->spare_ctx = v;
	cardlog(&os->log, "virtio-block: " DEV_NODE " (file, %llu sectors%s)",
		(unsigned long long)v->capacity, v->ro ? ", read-only" : "");
	return 0;
}

static void vblk_remove(struct cos_vdev *vd)
{
	struct vblk *v = vd->mdev.priv;
	struct cos *os = v->os;
	cardlog(&os->log, "bus: remove virtio-block");
	detach(v);
	/* answer what is still in flight before the session goes */
	struct serve w = { 0 };
	if (v->nfree != NSLOT && serve_until(v, &w, 0))
		cardlog(&os->log, "virtio-block: %d request(s) unanswered", NSLOT - v->nfree);
	/* Slots still in flight are freed too once the host acknowledges the
	 * reset: from then on it no longer writes them. */
	cos_vdev_release(v->vd);
	vblk_free(v);
}

static const struct cos_virtio_driver vblk_driver = {
	.name = "virtio-block", .virtio_id = VIRTIO_ID_BLOCK,
	.probe = vblk_probe, .remove = vblk_remove,
};
COS_VIRTIO_DRIVER(vblk_driver);
