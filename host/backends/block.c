/* SPDX-License-Identifier: MIT */
/*
 * virtio-block backend: the card's disk is a host file (cfg->disk), served
 * from one queue with every request validated before it touches the file.
 * Checks, bounce buffer and wake-up model: docs/architecture.md, 3.13.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "host/card.h"
#include "lib/log.h"

#define SECTOR 512u
#define VQ_REQ 0
#define VQ_NUM 128
/* Bounce buffer: all of HOST_POOL_BLOCK (so DMA reaches it), else heap. */
#define BOUNCE_SIZE (4u << 20)
#define SEG_MAX (MIC_VOP_MAX_SEGS - 2) /* data segments besides header and status */
/* Requests whose file I/O is in flight at once: what a QD32 job on the
 * card keeps queued (the card's driver has 32 slots). */
#define BATCH 32
#define ST_PENDING 0xfe /* not a virtio status: file I/O queued in the batch */

/* A request taken from the ring whose file I/O waits for the batch. */
struct breq {
	struct mic_vop_chain chain;
	uint8_t status;
	uint8_t write;
	uint8_t *buf; /* in the bounce buffer */
	uint32_t len;
	uint64_t off;
	/* a write straight from card memory (buf NULL), done in prepare: the
	 * segments the walker checked */
	struct iovec iov[MIC_VOP_MAX_SEGS];
	int niov;
};

struct block {
	struct vdev vd;
	int fd;
	int ro;
	int disk_dma; /* cfg disk_dma: large writes by DMA through the bounce buffer */
	uint64_t capacity; /* sectors */
	uint8_t *bounce;
	int bounce_malloced;
	char id[VIRTIO_BLK_ID_BYTES];
	uint64_t io_errs;
	struct io_uring ring;
	int have_ring; /* else one pread/pwrite at a time */
	/* The batch: pend[0..npend) wait for their file I/O; the bounce
	 * buffer is handed out from bounce_used up.  BATCH + 1 entries, so
	 * the request being taken is never one of the batch's. */
	struct breq req[BATCH + 1];
	struct breq *spare[BATCH + 1], *pend[BATCH];
	unsigned nspare, npend;
	size_t bounce_used;
	int used; /* chains completed since the last notify */
};

/* A failure of the host file itself (disk full, I/O error): the card gets
 * IOERR, and the administrator must hear of it, since the card's data did
 * not land.  The first ten, then every 1000th, so a full disk cannot flood
 * the log. */
static void io_error(struct block *b, const char *what, uint64_t off)
{
	int e = errno;
	b->io_errs++;
	if (b->io_errs <= 10 || b->io_errs % 1000 == 0)
		log_warn("%s: block: %s at byte %llu of the disk image: %s (%llu host I/O errors)",
			 b->vd.card, what, (unsigned long long)off, strerror(e),
			 (unsigned long long)b->io_errs);
}

/* Full pread/pwrite: a short transfer is retried, 0 bytes is an error. */
static int file_io(struct block *b, int write, uint8_t *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = write ? pwrite(b->fd, buf, len, (off_t)off) :
				    pread(b->fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = write ? ENOSPC : EIO;
			io_error(b, write ? "write" : "read", off);
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Full pwritev of a write's card-memory segments (consumed as it goes). */
static int file_writev(struct block *b, struct breq *r)
{
	struct iovec *iov = r->iov;
	int cnt = r->niov;
	uint64_t off = r->off;
	while (cnt > 0) {
		ssize_t n = pwritev(b->fd, iov, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENOSPC;
			io_error(b, "write", off);
			return -1;
		}
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/* Whether a write of len bytes goes to the file straight from card
 * memory (the kernel's page-cache copy is then the only copy on the host)
 * rather than by DMA (or CPU) into the bounce buffer and from there:
 * from VDEV_DMA_MIN up, unless the config asks for the seed's DMA path
 * and a working channel is there.  Why: docs/architecture.md 3.13. */
static int write_direct(const struct block *b, uint32_t len)
{
	return len >= VDEV_DMA_MIN && (!b->disk_dma || !b->vd.dma || b->vd.dma_off);
}

/* Writes zeros then the status byte so the status is the chain's last
 * writable byte, whatever the request left unwritten. */
static void finish(struct block *b, struct mic_vop_chain *c, uint8_t status)
{
	struct mic_vop_host_dev *dev = b->vd.dev;
	static const uint8_t zeros[4096];
	if (c->write_len == 0)
		return; /* nowhere to put a status: just hand the chain back */
	while (c->write_done + 1 < c->write_len) {
		uint32_t n = c->write_len - 1 - c->write_done;
		struct iovec iov = { (void *)zeros, n < sizeof(zeros) ? n : sizeof(zeros) };
		if (mic_vop_host_chain_push(dev, c, &iov, 1) <= 0)
			return;
	}
	struct iovec iov = { &status, 1 };
	mic_vop_host_chain_push(dev, c, &iov, 1);
}

/* Checks [sector, sector + len/512) against the capacity without a sum
 * that could wrap. */
static int range_ok(const struct block *b, uint64_t sector, uint32_t len)
{
	return len % SECTOR == 0 && len <= BOUNCE_SIZE && sector <= b->capacity &&
	       len / SECTOR <= b->capacity - sector;
}

/* Completes a request: read data to the card, status, used ring. */
static void complete(struct block *b, struct breq *r)
{
	struct mic_vop_host_dev *dev = b->vd.dev;
	if (r->status == VIRTIO_BLK_S_OK && r->buf && !r->write) {
		struct iovec iov = { r->buf, r->len };
		if (mic_vop_host_chain_push(dev, &r->chain, &iov, 1) != (ssize_t)r->len)
			r->status = VIRTIO_BLK_S_IOERR;
	}
	if (r->status == VIRTIO_BLK_S_OK && (r->buf || r->niov)) {
		vdev_stat_add(&b->vd.stats, r->write ? VS_WRITES : VS_READS, 1);
		vdev_stat_add(&b->vd.stats, r->write ? VS_WRITE_BYTES : VS_READ_BYTES, r->len);
	}
	if (r->status != VIRTIO_BLK_S_OK)
		vdev_stat_add(&b->vd.stats, VS_ERRORS, 1);
	finish(b, &r->chain, r->status);
	if (mic_vop_host_vq_put(dev, &r->chain) == 0)
		b->used = 1;
}

/* The reads of the whole batch at once, through io_uring: the card's
 * queue depth reaches the image file (reads that miss the host's page
 * cache go to the disk together, not one after another).  Writes go to
 * the host's page cache by pwrite, in this thread, while the reads are in
 * flight: a buffered write is a copy, not a wait, ext4 takes them one at
 * a time anyway, and io_uring would hand each to a worker thread (ext4
 * has no non-blocking buffered write), a wake-up per batch for nothing.
 * What io_uring leaves undone (a short transfer, EAGAIN/EINTR, a refused
 * submission) is done by pread. */
static void batch_io(struct block *b)
{
	unsigned n = b->npend, sub = 0, want = 0;
	int8_t done[BATCH] = { 0 };
	if (b->have_ring) {
		for (unsigned i = 0; i < n; i++) {
			struct breq *r = b->pend[i];
			if (r->write)
				continue;
			struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
			if (!sqe)
				break;
			io_uring_prep_read(sqe, b->fd, r->buf, r->len, r->off);
			io_uring_sqe_set_data64(sqe, i);
			want++;
		}
		int rc = want ? io_uring_submit(&b->ring) : 0;
		sub = rc > 0 ? (unsigned)rc : 0;
		if (sub < want) {
			/* Unsubmitted entries would go with a later submission:
			 * never submit again. */
			log_warn("%s: block: io_uring refused requests (%s): one at a time from now on",
				 b->vd.card, strerror(rc < 0 ? -rc : EAGAIN));
			b->have_ring = 0;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct breq *r = b->pend[i];
		if (r->write)
			done[i] = file_io(b, 1, r->buf, r->len, r->off) ? -1 : 1;
	}
	for (unsigned got = 0; got < sub;) {
		struct io_uring_cqe *cqe;
		int rc = io_uring_wait_cqe(&b->ring, &cqe);
		if (rc == -EINTR || rc == -EAGAIN)
			continue;
		if (rc < 0) {
			/* cannot happen with a live ring; the rest stay undone */
			log_err("%s: block: io_uring wait: %s", b->vd.card, strerror(-rc));
			b->have_ring = 0;
			break;
		}
		uint64_t i = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&b->ring, cqe);
		got++;
		if (i >= n)
			continue;
		struct breq *r = b->pend[i];
		if (res == (int)r->len) {
			done[i] = 1;
		} else if (res >= 0) {
			/* short: the rest by pread (0 bytes is an error there) */
			done[i] = file_io(b, 0, r->buf + res, r->len - (uint32_t)res,
					  r->off + (uint64_t)res) ? -1 : 1;
		} else if (res != -EAGAIN && res != -EINTR) {
			errno = -res;
			io_error(b, "read", r->off);
			done[i] = -1;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct breq *r = b->pend[i];
		if (!done[i])
			done[i] = file_io(b, r->write, r->buf, r->len, r->off) ? -1 : 1;
		r->status = done[i] > 0 ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
	}
}

/* Runs the batch: file I/O, then every request completed in the order
 * the card queued them. */
static void run_batch(struct block *b)
{
	if (!b->npend)
		return;
	batch_io(b);
	for (unsigned i = 0; i < b->npend; i++) {
		complete(b, b->pend[i]);
		b->spare[b->nspare++] = b->pend[i];
	}
	b->npend = 0;
	b->bounce_used = 0;
}

/* Makes room in the batch for a transfer of len bytes at off: runs the
 * batch first when the bounce buffer is too full, or when the transfer
 * overlaps one in the batch of which either writes, so that requests on
 * the same sectors land in the order the card queued them, as when the
 * backend served one request at a time.  Returns its bounce space (NULL
 * for a direct write, which needs none). */
static uint8_t *batch_room(struct block *b, int write, uint64_t off, uint32_t len, int direct)
{
	int flush = !direct && BOUNCE_SIZE - b->bounce_used < len;
	for (unsigned i = 0; i < b->npend && !flush; i++) {
		struct breq *r = b->pend[i];
		flush = (write || r->write) && off < r->off + r->len && r->off < off + len;
	}
	if (flush)
		run_batch(b);
	if (direct)
		return NULL;
	uint8_t *p = b->bounce + b->bounce_used;
	b->bounce_used += len;
	return p;
}

/* Validates a request; its status, or ST_PENDING with its file I/O set
 * up in r (data of a write already pulled from the card). */
static uint8_t prepare(struct block *b, struct breq *r)
{
	struct mic_vop_host_dev *dev = b->vd.dev;
	struct mic_vop_chain *c = &r->chain;
	struct virtio_blk_outhdr h;
	r->buf = NULL;
	r->niov = 0;
	if (c->read_len < sizeof(h) || c->write_len < 1)
		return VIRTIO_BLK_S_IOERR;
	struct iovec hv = { &h, sizeof(h) };
	if (mic_vop_host_chain_pull(dev, c, &hv, 1) != (ssize_t)sizeof(h))
		return VIRTIO_BLK_S_IOERR;
	uint32_t type = le32toh(h.type);
	uint64_t sector = le64toh(h.sector);
	switch (type) {
	case VIRTIO_BLK_T_IN: {
		uint32_t len = c->write_len - 1;
		if (c->read_len != sizeof(h) || !range_ok(b, sector, len))
			return VIRTIO_BLK_S_IOERR;
		r->write = 0;
		r->len = len;
		r->off = sector * SECTOR;
		r->buf = batch_room(b, 0, r->off, len, 0);
		return ST_PENDING;
	}
	case VIRTIO_BLK_T_OUT: {
		uint32_t len = c->read_len - (uint32_t)sizeof(h);
		if (b->ro || c->write_len != 1 || !range_ok(b, sector, len))
			return VIRTIO_BLK_S_IOERR;
		r->write = 1;
		r->len = len;
		r->off = sector * SECTOR;
		if (write_direct(b, len)) {
			/* The walker checked these segments; the card may still
			 * change the bytes while the kernel copies them, which
			 * only changes what it wrote.  The header was copied. */
			batch_room(b, 1, r->off, len, 1);
			r->niov = mic_vop_host_chain_iov(c, false, r->iov, MIC_VOP_MAX_SEGS);
			size_t got = 0;
			for (int i = 0; i < r->niov; i++)
				got += r->iov[i].iov_len;
			if (got != len) {
				r->niov = 0;
				return VIRTIO_BLK_S_IOERR;
			}
			/* Written now, not with the batch: it is a copy, not a
			 * wait, and its completion goes to the card at once
			 * (block_serve), so the card refills its queue while
			 * the rest of the batch is written. */
			return file_writev(b, r) ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
		}
		r->buf = batch_room(b, 1, r->off, len, 0);
		struct iovec iov = { r->buf, len };
		if (mic_vop_host_chain_pull(dev, c, &iov, 1) != (ssize_t)len) {
			r->buf = NULL;
			return VIRTIO_BLK_S_IOERR;
		}
		return ST_PENDING;
	}
	case VIRTIO_BLK_T_FLUSH:
		if (c->read_len != sizeof(h) || c->write_len != 1)
			return VIRTIO_BLK_S_IOERR;
		/* Every write taken before the flush is in the file first. */
		run_batch(b);
		if (b->ro || fdatasync(b->fd) == 0) {
			vdev_stat_add(&b->vd.stats, VS_FLUSHES, 1);
			return VIRTIO_BLK_S_OK;
		}
		io_error(b, "flush", 0);
		return VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_GET_ID: {
		if (c->read_len != sizeof(h))
			return VIRTIO_BLK_S_IOERR;
		uint32_t room = c->write_len - 1;
		struct iovec iov = { b->id, room < sizeof(b->id) ? room : sizeof(b->id) };
		if (mic_vop_host_chain_push(dev, c, &iov, 1) < 0)
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

/* Takes every available request (up to the budget): the file I/O of reads
 * and writes is batched (run_batch: BATCH at once, or fewer when the
 * bounce buffer fills or requests overlap), anything else is answered at
 * once.  All are complete when serve returns, so a reset finds nothing
 * in flight; one signal to the card for the lot. */
static void block_serve(struct vdev *vd)
{
	struct block *b = vd->priv;
	b->used = 0;
	for (unsigned left = VDEV_BUDGET; vdev_budget(vd, &left);) {
		struct breq *r = b->spare[b->nspare - 1];
		if (mic_vop_host_vq_get(vd->dev, VQ_REQ, &r->chain) != 1)
			break;
		b->nspare--; /* before prepare, which may run the batch */
		r->status = prepare(b, r);
		if (r->status != ST_PENDING) {
			complete(b, r);
			b->spare[b->nspare++] = r;
			if (r->niov && b->used) { /* a large write: tell the card now */
				mic_vop_host_vq_notify(vd->dev, VQ_REQ);
				b->used = 0;
			}
			continue;
		}
		b->pend[b->npend++] = r;
		if (b->npend == BATCH)
			run_batch(b);
	}
	run_batch(b);
	if (b->used)
		mic_vop_host_vq_notify(vd->dev, VQ_REQ);
	vd->fd_events = 0;
}

static void block_reset(struct vdev *vd)
{
	/* Requests are served whole within one serve(): nothing in flight. */
	(void)vd;
}

static void block_destroy(struct vdev *vd)
{
	struct block *b = vd->priv;
	if (b->fd >= 0) {
		if (!b->ro && fdatasync(b->fd) < 0)
			log_err("%s: block: final flush of the disk image failed: %s; the card's last "
				"writes may be lost", b->vd.card, strerror(errno));
		close(b->fd);
	}
	if (b->have_ring)
		io_uring_queue_exit(&b->ring);
	if (b->bounce_malloced)
		free(b->bounce);
	free(b);
}

static const enum vdev_stat block_stats[] = {
	VS_READS, VS_WRITES, VS_FLUSHES, VS_READ_BYTES, VS_WRITE_BYTES, VS_ERRORS,
};

static const struct vdev_ops block_ops = {
	.name = "block",
	.stats = block_stats,
	.nstats = sizeof(block_stats) / sizeof(block_stats[0]),
	.serve = block_serve,
	.reset = block_reset,
	.destroy = block_destroy,
};

int block_backend_start(struct mic_vop_host *vop, struct mic_hw_view *view,
			const struct card_cfg *cfg, struct vdev **out)
{
	struct block *b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->vd.ops = &block_ops;
	b->vd.priv = b;
	b->vd.fd = -1;
	b->ro = cfg->disk_readonly;
	b->disk_dma = cfg->disk_dma;
	b->fd = b->ro ? -1 : open(cfg->disk, O_RDWR | O_CLOEXEC);
	if (b->fd < 0 && (b->ro || errno == EACCES || errno == EROFS || errno == EPERM)) {
		b->ro = 1;
		b->fd = open(cfg->disk, O_RDONLY | O_CLOEXEC);
	}
	struct stat st;
	int rc = 0;
	if (b->fd < 0 || fstat(b->fd, &st) < 0)
		rc = -errno;
	else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		rc = -EINVAL;
	if (rc) {
		log_err("%s: disk %s: %s", cfg->name, cfg->disk, strerror(-rc));
		block_destroy(&b->vd);
		return rc;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		off_t end = lseek(b->fd, 0, SEEK_END);
		size = end > 0 ? (uint64_t)end : 0;
	}
	b->capacity = size / SECTOR;
	if (size % SECTOR)
		log_warn("%s: disk %s: %" PRIu64 " trailing bytes beyond the last sector are not used",
			 cfg->name, cfg->disk, size % SECTOR);
	_Static_assert(BOUNCE_SIZE == 4u << 20, "bounce buffer is HOST_POOL_BLOCK");
	b->bounce = host_pool_va(view, HOST_POOL_BLOCK);
	if (!b->bounce) {
		b->bounce = malloc(BOUNCE_SIZE);
		b->bounce_malloced = 1;
		if (!b->bounce) {
			block_destroy(&b->vd);
			return -ENOMEM;
		}
	}
	for (int i = 0; i <= BATCH; i++)
		b->spare[b->nspare++] = &b->req[i];
	/* Without io_uring (refused by a seccomp filter or sysctl) requests
	 * are served as before, one pread/pwrite at a time. */
	int urc = io_uring_queue_init(BATCH, &b->ring, 0);
	if (urc == 0)
		b->have_ring = 1;
	else
		log_warn("%s: block: no io_uring (%s): file I/O one request at a time", cfg->name,
			 strerror(-urc));
	/* the serial may fill all 20 bytes without a NUL (virtio spec) */
	char id[64];
	snprintf(id, sizeof(id), "micstack-%s", cfg->name);
	size_t idlen = strlen(id);
	memcpy(b->id, id, idlen < sizeof(b->id) ? idlen : sizeof(b->id));
	struct virtio_blk_config bc;
	memset(&bc, 0, sizeof(bc));
	bc.capacity = htole64(b->capacity);
	bc.seg_max = htole32(SEG_MAX);
	bc.blk_size = htole32(SECTOR);
	uint64_t features = MIC_VOP_TRANSPORT_FEATURES | (1ull << VIRTIO_BLK_F_SEG_MAX) |
			    (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (b->ro)
		features |= 1ull << VIRTIO_BLK_F_RO;
	/* Only the fields up to blk_size: the rest needs features we lack, and
	 * the device block has room for 120..192 config bytes only. */
	struct mic_vop_dev_template t = {
		.type = VIRTIO_ID_BLOCK,
		.num_vq = 1,
		.vq_num = { VQ_NUM },
		.features = features,
		.config_len = (uint8_t)(offsetof(struct virtio_blk_config, blk_size) + sizeof(bc.blk_size)),
		.config = &bc,
	};
	rc = vdev_start(&b->vd, vop, view, cfg->name, &t);
	if (rc) {
		block_destroy(&b->vd);
		return rc;
	}
	/* header + largest transfer + status */
	mic_vop_host_dev_set_max_chain(b->vd.dev, BOUNCE_SIZE + 2 * SECTOR);
	log_info("%s: disk %s, %" PRIu64 " sectors%s", cfg->name, cfg->disk, b->capacity,
		 b->ro ? ", read-only" : "");
	*out = &b->vd;
	return 0;
}
