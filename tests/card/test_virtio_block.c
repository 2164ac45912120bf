/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-block driver (card/virtio/block.c) against the fake loop
 * and transport (fake_cos.h) and a fake libfuse: the test hands the driver
 * FUSE requests through its session fd and sees its replies, and plays the
 * host on the request queue.  The test runs in a mount namespace of its own
 * with /run and /dev on tmpfs, where the driver makes /dev/vda; the children
 * a removal forks (unmount, flush) are real.  The fake loop's clock makes
 * the removal's timeouts take no real time.
 */
#define FUSE_USE_VERSION 312
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fake_cos.h"

#define NSLOT 32 /* the driver's request slots */
#define NBIG 8   /* of which hold 1 MiB */
#define SECTOR 512
#define CAPACITY 2048 /* sectors */
#define TEST_ALARM_S 60

/* --- a fake libfuse: requests queued by the test, replies recorded --- */

enum { RQ_READ, RQ_WRITE, RQ_FSYNC, RQ_OPEN, RQ_RELEASE };

struct fuse_req {
	struct fuse_session *se;
	int kind;
	off_t off;
	size_t size;
	const char *wbuf;
	const char *wseen; /* where the driver was handed the write's payload */
	int replied;
	int err;         /* fuse_reply_err */
	size_t count;    /* fuse_reply_write, fuse_reply_buf's size */
	uint8_t *data;   /* fuse_reply_buf's bytes */
};

struct fuse_session {
	const struct fuse_lowlevel_ops *ops;
	void *ud;
	int fd, peer; /* the driver reads fd; the "kernel" writes peer */
	int mounted;
	struct fuse_req *q[48];
	int nq;
	struct fuse_req *cur;
};

/* What a fake library cannot reach through its arguments. */
static struct {
	struct fuse_session *se;
	int mount_fail;
} fz;

struct fuse_session *fuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *op,
				      size_t op_size, void *userdata)
{
	(void)args;
	assert_int_equal(op_size, sizeof(*op));
	struct fuse_session *se = calloc(1, sizeof(*se));
	assert_non_null(se);
	se->ops = op;
	se->ud = userdata;
	/* A request is a message, as one read of /dev/fuse is one request. */
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	se->fd = sv[0];
	se->peer = sv[1];
	fz.se = se;
	return se;
}

void fuse_opt_free_args(struct fuse_args *args)
{
	(void)args;
}

int fuse_session_mount(struct fuse_session *se, const char *mountpoint)
{
	(void)mountpoint;
	if (fz.mount_fail)
		return -1;
	se->mounted = 1;
	return 0;
}

int fuse_session_fd(struct fuse_session *se)
{
	return se->fd;
}

void fuse_session_exit(struct fuse_session *se)
{
	(void)se;
}

int fuse_session_exited(struct fuse_session *se)
{
	(void)se;
	return 0;
}

void fuse_session_unmount(struct fuse_session *se)
{
	se->mounted = 0;
}

void fuse_session_destroy(struct fuse_session *se)
{
	close(se->fd);
	close(se->peer);
	if (fz.se == se)
		fz.se = NULL;
	free(se);
}

/* The driver read one message (the header) into buf: the kernel would
 * have put a WRITE's payload right after its 80-byte header in the same
 * buffer, and libfuse hands the driver a pointer to it there. */
void fuse_session_process_buf(struct fuse_session *se, const struct fuse_buf *buf)
{
	assert_int_equal(buf->size, sizeof(struct fuse_in_header));
	assert_true(se->nq > 0);
	struct fuse_req *r = se->q[0];
	memmove(se->q, se->q + 1, (size_t)--se->nq * sizeof(se->q[0]));
	struct fuse_file_info fi = { .flags = O_RDWR };
	r->se = se;
	char *payload = (char *)buf->mem + sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in);
	switch (r->kind) {
	case RQ_READ: se->ops->read(r, FUSE_ROOT_ID, r->size, r->off, &fi); break;
	case RQ_WRITE:
		memcpy(payload, r->wbuf, r->size);
		r->wseen = payload;
		se->ops->write(r, FUSE_ROOT_ID, payload, r->size, r->off, &fi);
		break;
	case RQ_FSYNC: se->ops->fsync(r, FUSE_ROOT_ID, 0, &fi); break;
	case RQ_OPEN: se->ops->open(r, FUSE_ROOT_ID, &fi); break;
	case RQ_RELEASE: se->ops->release(r, FUSE_ROOT_ID, &fi); break;
	}
}

void *fuse_req_userdata(fuse_req_t req)
{
	return req->se->ud;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	req->replied++;
	req->err = err;
	return 0;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	req->replied++;
	req->count = count;
	return 0;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	req->replied++;
	req->count = size;
	free(req->data);
	req->data = malloc(size ? size : 1);
	assert_non_null(req->data);
	if (size)
		memcpy(req->data, buf, size);
	return 0;
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double timeout)
{
	(void)attr;
	(void)timeout;
	req->replied++;
	return 0;
}

int fuse_lowlevel_notify_inval_inode(struct fuse_session *se, fuse_ino_t ino, off_t off, off_t len)
{
	(void)se;
	(void)ino;
	(void)off;
	(void)len;
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	(void)fi;
	req->replied++;
	return 0;
}

/* --- kill, seen through the linker: whom the driver kills --- */

int __real_kill(pid_t pid, int sig);
static int kills;

int __wrap_kill(pid_t pid, int sig)
{
	kills++;
	return __real_kill(pid, sig);
}

/* --- the test --- */

struct t {
	struct cos os;
	struct cos_vdev vd;
	struct cos_loop *f;
	const struct cos_virtio_driver *drv;
	int fds0;
	struct fuse_req req[48];
	int nreq;
	const struct fake_fault *fault; /* the probe_fails tests' */
};

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	t->fault = *state;
	alarm(TEST_ALARM_S);
	memset(&fz, 0, sizeof(fz));
	kills = 0;
	t->fds0 = fake_count_fds();
	t->f = fake_create(&t->os, &t->vd, (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX));
	uint64_t cap = htole64(CAPACITY);
	memcpy(t->f->cdev.config, &cap, sizeof(cap));
	t->drv = fake_driver(VIRTIO_ID_BLOCK);
	*state = t;
	return t->drv ? 0 : -1;
}

static int teardown(void **state)
{
	struct t *t = *state;
	for (int i = 0; i < t->nreq; i++)
		free(t->req[i].data);
	fake_destroy(t->f);
	free(t);
	alarm(0);
	return 0;
}

static struct mic_vop_vq *vq(struct t *t)
{
	return t->f->vq[0];
}

static int fuse_fd(void)
{
	assert_non_null(fz.se);
	return fz.se->fd;
}

/* A FUSE request from the kernel: queued on the session, taken by the
 * driver when the loop says its fd is readable (and the driver asks). */
static struct fuse_req *fuse_request(struct t *t, int kind, off_t off, size_t size,
				     const char *wbuf)
{
	assert_true(t->nreq < 48);
	struct fuse_req *r = &t->req[t->nreq++];
	*r = (struct fuse_req){ .kind = kind, .off = off, .size = size, .wbuf = wbuf };
	fz.se->q[fz.se->nq++] = r;
	struct fuse_in_header h = { .len = sizeof(h), .unique = (uint64_t)t->nreq };
	assert_int_equal(write(fz.se->peer, &h, sizeof(h)), sizeof(h));
	return r;
}

static int deliver(struct t *t)
{
	return fake_fire(t->f, fuse_fd(), EPOLLIN);
}

struct blk_req {
	struct virtio_blk_outhdr hdr;
	uint8_t *data;
	uint32_t data_len;
	int data_out;
	uint8_t *status;
};

/* The host's view of posted request i. */
static struct blk_req host_req(struct t *t, unsigned i)
{
	struct fake_buf *b = &vq(t)->posted[i];
	struct blk_req r = { 0 };
	assert_int_equal(b->sg[0].len, sizeof(r.hdr));
	memcpy(&r.hdr, fake_ptr(t->f, b->sg[0].addr, sizeof(r.hdr)), sizeof(r.hdr));
	unsigned n = b->out + b->in;
	assert_int_equal(b->sg[n - 1].len, 1);
	r.status = fake_ptr(t->f, b->sg[n - 1].addr, 1);
	if (n == 3) {
		r.data = fake_ptr(t->f, b->sg[1].addr, b->sg[1].len);
		r.data_len = b->sg[1].len;
		r.data_out = b->out == 2;
	}
	return r;
}

/* The host's view of posted request 0, checked to be a request of type for
 * data_len bytes from sector. */
static struct blk_req host_expect(struct t *t, uint32_t type, uint64_t sector, uint32_t data_len)
{
	struct blk_req r = host_req(t, 0);
	assert_int_equal(le32toh(r.hdr.type), type);
	assert_int_equal(le64toh(r.hdr.sector), sector);
	assert_int_equal(r.data_len, data_len);
	return r;
}

/* The host completes posted request i with status, and rings. */
static void host_complete(struct t *t, unsigned i, uint8_t status)
{
	struct blk_req r = host_req(t, i);
	*r.status = status;
	fake_use(vq(t), i, 1 + (r.data_out ? 0 : r.data_len));
	fake_doorbell(t->f);
}

static void probe(struct t *t)
{
	assert_int_equal(t->drv->probe(&t->vd), 0);
	assert_non_null(fz.se);
	assert_true(fz.se->mounted);
}

static void check_all_released(struct t *t)
{
	fake_check_released(t->f, &t->vd);
	assert_null(t->os.spare);
	assert_null(fz.se); /* the FUSE session destroyed */
	struct stat st;
	assert_int_equal(lstat("/dev/vda", &st), -1);
	assert_int_equal(lstat("/run/virtio-blk", &st), -1);
	assert_int_equal(fake_count_fds(), t->fds0);
}

static void remove_dev(struct t *t)
{
	t->drv->remove(&t->vd);
	check_all_released(t);
}

static void probe_makes_vda_and_remove_releases(void **state)
{
	struct t *t = *state;
	probe(t);
	assert_int_equal(t->f->nvq, 1);
	assert_int_equal(fake_live_mem(t->f), 2 * NSLOT);
	char link[64] = "";
	assert_true(readlink("/dev/vda", link, sizeof(link) - 1) > 0);
	assert_string_equal(link, "/run/virtio-blk/vda");
	assert_true(fake_watch_of(t->f, fuse_fd())->events & EPOLLIN);
	assert_non_null(t->os.spare);
	assert_int_equal(t->os.spare(t->os.spare_ctx, getpid()), 0); /* not a fuse2fs */
	assert_true(fake_logged(t->f, "probe virtio-block: 2048 sectors"));
	assert_int_equal(vq(t)->nposted, 0);
	t->drv->remove(&t->vd);
	assert_true(fake_logged(t->f, "disk synced, unmounted"));
	check_all_released(t);
}

/* Each step of the probe failing: the probe says so and leaves nothing;
 * own: the FUSE mount fails. */
#define FAILED "probe virtio-block failed: "
static const struct fake_fault faults[] = {
	{ "probe_fails_setup", .setup = -ENOTSUP, .log = FAILED "negotiate" },
	{ "probe_fails_config", .config = -EINVAL, .log = FAILED "config" },
	{ "probe_fails_first_alloc", .alloc_at = 1, .log = FAILED "buffers" },
	{ "probe_fails_last_alloc", .alloc_at = 2 * NSLOT, .log = FAILED "buffers" },
	{ "probe_fails_ready", .ready = -EBUSY, .log = FAILED "doorbell" },
	{ "probe_fails_fuse_mount", .own = 1, .log = FAILED "FUSE" },
};

static void probe_fails(void **state)
{
	struct t *t = *state;
	fz.mount_fail = t->fault->own;
	fake_probe_fails(t->f, t->drv, &t->vd, t->fault);
	check_all_released(t);
}

/* card -> host: a FUSE write is one virtio write request; its reply goes
 * back when the host completes it. */
static void write_path(void **state)
{
	struct t *t = *state;
	probe(t);
	static char buf[4096];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (char)(i * 3);
	struct fuse_req *w = fuse_request(t, RQ_WRITE, 8192, sizeof(buf), buf);
	int kicks = vq(t)->kicks;
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, 1);
	assert_true(vq(t)->kicks > kicks);
	struct blk_req r = host_expect(t, VIRTIO_BLK_T_OUT, 8192 / SECTOR, sizeof(buf));
	assert_true(r.data_out);
	assert_memory_equal(r.data, buf, sizeof(buf));
	assert_int_equal(w->replied, 0); /* not before the host is done */
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(w->replied, 1);
	assert_int_equal(w->count, sizeof(buf));
	/* an error on the host is EIO */
	struct fuse_req *w2 = fuse_request(t, RQ_WRITE, 0, 512, buf);
	assert_true(deliver(t));
	host_complete(t, 0, VIRTIO_BLK_S_IOERR);
	assert_int_equal(w2->replied, 1);
	assert_int_equal(w2->err, EIO);
	/* fsync is a FLUSH */
	struct fuse_req *s = fuse_request(t, RQ_FSYNC, 0, 0, NULL);
	assert_true(deliver(t));
	r = host_req(t, 0);
	assert_int_equal(le32toh(r.hdr.type), VIRTIO_BLK_T_FLUSH);
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(s->replied, 1);
	assert_int_equal(s->err, 0);
	remove_dev(t);
}

/* host -> card: a read is widened to whole sectors; FUSE gets the part
 * it asked for. */
static void read_path(void **state)
{
	struct t *t = *state;
	probe(t);
	struct fuse_req *rd = fuse_request(t, RQ_READ, 700, 1000, NULL);
	assert_true(deliver(t));
	struct blk_req r = host_expect(t, VIRTIO_BLK_T_IN, 1, 1536); /* sectors 1..3 */
	assert_false(r.data_out);
	for (uint32_t i = 0; i < r.data_len; i++)
		r.data[i] = (uint8_t)(512 + i); /* byte k of the disk is k mod 256 */
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(rd->replied, 1);
	assert_int_equal(rd->count, 1000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(rd->data[i], (uint8_t)(700 + i));
	/* past the end: nothing, and no request */
	struct fuse_req *end = fuse_request(t, RQ_READ, CAPACITY * SECTOR, 512, NULL);
	assert_true(deliver(t));
	assert_int_equal(end->replied, 1);
	assert_int_equal(end->count, 0);
	assert_int_equal(vq(t)->nposted, 0);
	remove_dev(t);
}

/* A write of part of a sector: read the covering sectors, merge, write. */
static void partial_sector_write(void **state)
{
	struct t *t = *state;
	probe(t);
	struct fuse_req *w = fuse_request(t, RQ_WRITE, 1000, 10, "0123456789");
	assert_true(deliver(t));
	/* sector 1 holds bytes 512..1023 */
	struct blk_req r = host_expect(t, VIRTIO_BLK_T_IN, 1, 512);
	memset(r.data, 'x', r.data_len);
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(w->replied, 0);
	/* the write phase, posted from the doorbell */
	assert_int_equal(vq(t)->nposted, 1);
	r = host_expect(t, VIRTIO_BLK_T_OUT, 1, 512);
	assert_memory_equal(r.data + 1000 - 512, "0123456789", 10);
	assert_int_equal(r.data[1000 - 512 - 1], 'x');
	assert_int_equal(r.data[1000 - 512 + 10], 'x');
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(w->replied, 1);
	assert_int_equal(w->count, 10);
	remove_dev(t);
}

/* Requests are taken from FUSE only while a slot is free. */
static void fuse_backpressure(void **state)
{
	struct t *t = *state;
	probe(t);
	static char buf[512];
	struct fuse_req *w[NSLOT + 1];
	for (int i = 0; i <= NSLOT; i++)
		w[i] = fuse_request(t, RQ_WRITE, (off_t)i * 512, 512, buf);
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, NSLOT);
	assert_int_equal(fz.se->nq, 1); /* the last one left to FUSE */
	assert_false(fake_watch_of(t->f, fuse_fd())->events & EPOLLIN);
	assert_false(deliver(t));
	/* small requests fill the small slots first, then the 1 MiB ones */
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(w[0]->replied, 1);
	/* a small slot free is not enough: FUSE's next request may be 1 MiB */
	assert_false(fake_watch_of(t->f, fuse_fd())->events & EPOLLIN);
	host_complete(t, NSLOT - 2, VIRTIO_BLK_S_OK); /* the last posted: a 1 MiB slot */
	assert_int_equal(w[NSLOT - 1]->replied, 1);
	assert_true(fake_watch_of(t->f, fuse_fd())->events & EPOLLIN);
	assert_true(deliver(t));
	assert_int_equal(fz.se->nq, 0);
	assert_int_equal(vq(t)->nposted, NSLOT - 1);
	fake_use_all(vq(t), 1);
	fake_doorbell(t->f);
	for (int i = 0; i <= NSLOT; i++)
		assert_int_equal(w[i]->replied, 1);
	remove_dev(t);
}

/* Requests over 128 KiB take the 1 MiB slots; with all of those busy
 * FUSE is not read, though small slots are free. */
static void big_requests_take_big_slots(void **state)
{
	struct t *t = *state;
	probe(t);
	static char big[1 << 20], small[512];
	struct fuse_req *w[NBIG + 1];
	for (int i = 0; i < NBIG; i++)
		w[i] = fuse_request(t, RQ_WRITE, 0, sizeof(big), big);
	w[NBIG] = fuse_request(t, RQ_WRITE, 0, sizeof(small), small);
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, NBIG);
	for (int i = 0; i < NBIG; i++)
		assert_int_equal(host_req(t, (unsigned)i).data_len, sizeof(big));
	assert_int_equal(fz.se->nq, 1);
	assert_false(fake_watch_of(t->f, fuse_fd())->events & EPOLLIN);
	host_complete(t, 0, VIRTIO_BLK_S_OK);
	assert_int_equal(w[0]->replied, 1);
	assert_true(deliver(t));
	assert_int_equal(fz.se->nq, 0);
	assert_int_equal(host_req(t, NBIG - 1).data_len, sizeof(small));
	fake_use_all(vq(t), 1);
	fake_doorbell(t->f);
	for (int i = 0; i <= NBIG; i++)
		assert_int_equal(w[i]->replied, 1);
	t->drv->remove(&t->vd);
	check_all_released(t);
}

/* A write too big for a small slot is sent from where FUSE put its
 * payload (the driver reads /dev/fuse into a 1 MiB slot, header in front):
 * no copy in the card.  A small write is copied into a small slot, so it
 * does not hold a 1 MiB one. */
static void big_write_not_copied(void **state)
{
	struct t *t = *state;
	probe(t);
	static char big[512 << 10], mid[192 << 10], small[4096]; /* the disk is 1 MiB */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 1);
	memcpy(mid, big + 5, sizeof(mid));
	memcpy(small, big + 9, sizeof(small));
	struct fuse_req *w[3] = {
		fuse_request(t, RQ_WRITE, 0, sizeof(big), big),
		fuse_request(t, RQ_WRITE, 512 << 10, sizeof(mid), mid),
		fuse_request(t, RQ_WRITE, 768 << 10, sizeof(small), small),
	};
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, 3);
	struct blk_req r[3];
	for (unsigned i = 0; i < 3; i++) {
		r[i] = host_req(t, i);
		assert_true(r[i].data_out);
		assert_int_equal(r[i].data_len, w[i]->size);
		assert_memory_equal(r[i].data, w[i]->wbuf, w[i]->size);
	}
	assert_ptr_equal(r[0].data, w[0]->wseen);
	assert_ptr_equal(r[1].data, w[1]->wseen);
	assert_ptr_not_equal(r[2].data, w[2]->wseen);
	/* the payload's slot is on the DMA engine's granule */
	assert_int_equal((uintptr_t)w[0]->wseen % 64, 0);
	assert_int_equal(vq(t)->posted[0].sg[1].addr % 64, 0);
	for (int i = 0; i < 3; i++)
		host_complete(t, 0, VIRTIO_BLK_S_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(w[i]->replied, 1);
		assert_int_equal(w[i]->count, w[i]->size);
	}
	remove_dev(t);
}

/* The host answers while the removal waits: every request is answered
 * before the device goes. */
static void host_answers(struct cos_loop *f, void *ctx)
{
	struct t *t = ctx;
	(void)f;
	if (vq(t)->nposted)
		host_complete(t, 0, VIRTIO_BLK_S_OK);
}

static void remove_waits_for_requests_in_flight(void **state)
{
	struct t *t = *state;
	probe(t);
	static char buf[4096];
	struct fuse_req *w = fuse_request(t, RQ_WRITE, 0, sizeof(buf), buf);
	struct fuse_req *p = fuse_request(t, RQ_WRITE, 4100, 3, "abc");
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, 2);
	t->f->host = host_answers;
	t->f->host_ctx = t;
	t->drv->remove(&t->vd);
	assert_int_equal(w->replied, 1);
	assert_int_equal(w->count, sizeof(buf));
	assert_int_equal(p->replied, 1); /* both phases of the partial write */
	assert_int_equal(p->count, 3);
	assert_true(fake_logged(t->f, "disk synced, unmounted"));
	check_all_released(t);
}

/* The host never answers: the removal gives up after its timeouts (on the
 * fake clock), says so, and still releases everything, the request slots
 * in flight and a partial write's saved bytes (ASan: no leak) included. */
static void remove_with_requests_never_answered(void **state)
{
	struct t *t = *state;
	probe(t);
	static char buf[4096];
	struct fuse_req *w = fuse_request(t, RQ_WRITE, 0, sizeof(buf), buf);
	struct fuse_req *p = fuse_request(t, RQ_WRITE, 4100, 3, "abc");
	assert_true(deliver(t));
	assert_int_equal(vq(t)->nposted, 2);
	uint64_t t0 = fake_now_ms();
	t->drv->remove(&t->vd);
	assert_true(fake_now_ms() - t0 >= 30000); /* it did wait, on the fake clock */
	assert_true(fake_logged(t->f, "2 request(s) unanswered"));
	assert_true(fake_logged(t->f, "flush timed out"));
	assert_int_equal(w->replied, 0);
	assert_int_equal(p->replied, 0);
	/* its children (unmount, flush) exited by themselves and were reaped:
	 * no kill of a pid that may be another process's by now */
	assert_int_equal(kills, 0);
	check_all_released(t);
}

/* Unacknowledged by the host, the memory it may still write stays. */
static void remove_unacknowledged_keeps_memory(void **state)
{
	struct t *t = *state;
	probe(t);
	t->f->release_rc = -ETIMEDOUT;
	t->drv->remove(&t->vd);
	assert_int_equal(t->f->releases, 1);
	assert_int_equal(fake_live_mem(t->f), 2 * NSLOT);
	assert_null(t->vd.mdev.priv);
	assert_null(fz.se);
}

int main(void)
{
	/* /dev/vda and /run/virtio-blk of the driver stay in the test's own
	 * mount namespace, on tmpfs */
	fake_isolate(CLONE_NEWNS);
	if (mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0 ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755") < 0) {
		perror("mount tmpfs");
		return 1;
	}
#define T(n) cmocka_unit_test_setup_teardown(n, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(probe_makes_vda_and_remove_releases), T(write_path), T(read_path),
		T(partial_sector_write), T(fuse_backpressure), T(big_requests_take_big_slots), T(big_write_not_copied), T(remove_waits_for_requests_in_flight),
		T(remove_with_requests_never_answered), T(remove_unacknowledged_keeps_memory),
	};
	return fake_run_tests(tests, sizeof(tests) / sizeof(tests[0]), probe_fails, faults,
			      sizeof(faults) / sizeof(faults[0]), setup, teardown);
}
