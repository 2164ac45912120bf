/* SPDX-License-Identifier: MIT */
/* The block backend (host/backends/block.c) against the card's virtqueue
 * library on a simulated card (never powered on): large writes go to the
 * image straight from card memory and are completed at once, yet requests
 * on the same sectors still land in the order the card queued them. */
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <stdio.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "tests/vop/vop_fixture.h"

#define SECTORS 2048u /* a 1 MiB disk */
#define LEN (64u << 10) /* above VDEV_DMA_MIN: a write from card memory */

struct t {
	struct fx *f;
	char disk[64];
	int fd;
	struct vdev *blk;
	struct mic_vop_vq *q;
};

static int setup(void **state)
{
	void *fx;
	if (fx_setup(&fx))
		return -1;
	struct t *t = calloc(1, sizeof(*t));
	t->f = fx;
	log_init("test_block_backend", LOG_ERR);
	/* byte k of the disk is k / 512: each sector says which it is */
	snprintf(t->disk, sizeof(t->disk), "/tmp/micstack-blk-test.XXXXXX");
	t->fd = mkstemp(t->disk);
	if (t->fd < 0)
		return -1;
	static uint8_t img[SECTORS * 512];
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i / 512);
	if (pwrite(t->fd, img, sizeof(img), 0) != (ssize_t)sizeof(img))
		return -1;
	struct card_cfg cfg = { .name = "micv", .index = 0 };
	snprintf(cfg.disk, sizeof(cfg.disk), "%s", t->disk);
	if (block_backend_start(t->f->vh, t->f->h, &cfg, &t->blk))
		return -1;
	struct mic_vop_cdev *d;
	if (mic_vop_card_scan(t->f->vc) < 1 || !(d = mic_vop_card_find(t->f->vc, VIRTIO_ID_BLOCK, 0)) ||
	    mic_vop_cdev_negotiate(d, ~0ull, NULL) || mic_vop_cdev_setup_vq(d, 0, 0, &t->q) ||
	    mic_vop_cdev_driver_ok(d))
		return -1;
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	vdev_stop(t->blk);
	t->blk->ops->destroy(t->blk);
	close(t->fd);
	unlink(t->disk);
	void *fx = t->f;
	fx_teardown(&fx);
	free(t);
	return 0;
}

struct req {
	uint64_t hdr, data, status;
};

/* Queues a request of type on [sector, sector + LEN/512), a write's data
 * filled with fill. */
static void queue(struct t *t, struct req *r, uint32_t type, uint64_t sector, uint8_t fill)
{
	struct virtio_blk_outhdr h = { htole32(type), 0, htole64(sector) };
	assert_int_equal(mic_vop_cma_alloc(t->f->cma, sizeof(h), &r->hdr), 0);
	assert_int_equal(mic_vop_cma_alloc(t->f->cma, LEN, &r->data), 0);
	assert_int_equal(mic_vop_cma_alloc(t->f->cma, 1, &r->status), 0);
	memcpy(mic_vop_cma_ptr(t->f->cma, r->hdr, sizeof(h)), &h, sizeof(h));
	memset(mic_vop_cma_ptr(t->f->cma, r->data, LEN), fill, LEN);
	*(uint8_t *)mic_vop_cma_ptr(t->f->cma, r->status, 1) = 0xff;
	struct mic_vop_sg sg[3] = { { r->hdr, sizeof(h) }, { r->data, LEN }, { r->status, 1 } };
	int write = type == VIRTIO_BLK_T_OUT;
	assert_int_equal(mic_vop_vq_add_sgs(t->q, sg, write ? 2 : 1, write ? 1 : 2, r), 0);
}

/* Kicks and waits until n requests came back (the device thread or our
 * own serve takes them). */
static void run(struct t *t, unsigned n)
{
	mic_vop_vq_kick(t->q);
	uint64_t until = now_ms() + 5000;
	uint32_t len;
	for (unsigned got = 0; got < n;) {
		assert_true(now_ms() < until);
		if (mic_vop_vq_get_buf(t->q, &len))
			got++;
		else
			vdev_serve_once(t->blk);
	}
}

static uint8_t status(struct t *t, const struct req *r)
{
	return *(uint8_t *)mic_vop_cma_ptr(t->f->cma, r->status, 1);
}

/* A read queued before a large write on the same sectors reads what was
 * there before the write; a read after it, the written bytes. */
static void read_then_write_same_sectors(void **state)
{
	struct t *t = *state;
	struct req rd, wr, rd2;
	queue(t, &rd, VIRTIO_BLK_T_IN, 8, 0);
	queue(t, &wr, VIRTIO_BLK_T_OUT, 8, 0xab);
	queue(t, &rd2, VIRTIO_BLK_T_IN, 8, 0);
	run(t, 3);
	assert_int_equal(status(t, &rd), VIRTIO_BLK_S_OK);
	assert_int_equal(status(t, &wr), VIRTIO_BLK_S_OK);
	assert_int_equal(status(t, &rd2), VIRTIO_BLK_S_OK);
	const uint8_t *old = mic_vop_cma_ptr(t->f->cma, rd.data, LEN);
	for (uint32_t i = 0; i < LEN; i++)
		assert_int_equal(old[i], (uint8_t)(8 + i / 512));
	const uint8_t *now = mic_vop_cma_ptr(t->f->cma, rd2.data, LEN);
	for (uint32_t i = 0; i < LEN; i++)
		assert_int_equal(now[i], 0xab);
	uint8_t got[LEN];
	assert_int_equal(pread(t->fd, got, LEN, 8 * 512), LEN);
	for (uint32_t i = 0; i < LEN; i++)
		assert_int_equal(got[i], 0xab);
	/* the write crossed without the bounce buffer: no DMA channel here,
	 * and the bytes in the file are the card's */
	assert_int_equal(t->blk->dma_copies, 0);
}

/* Two large writes on the same sectors land in the order queued. */
static void writes_in_order(void **state)
{
	struct t *t = *state;
	struct req a, b;
	queue(t, &a, VIRTIO_BLK_T_OUT, 100, 0x11);
	queue(t, &b, VIRTIO_BLK_T_OUT, 104, 0x22); /* overlaps a's last 62 KiB */
	run(t, 2);
	assert_int_equal(status(t, &a), VIRTIO_BLK_S_OK);
	assert_int_equal(status(t, &b), VIRTIO_BLK_S_OK);
	uint8_t got[LEN];
	assert_int_equal(pread(t->fd, got, LEN, 100 * 512), LEN);
	for (uint32_t i = 0; i < LEN; i++)
		assert_int_equal(got[i], i < 4 * 512 ? 0x11 : 0x22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(read_then_write_same_sectors, setup, teardown),
		cmocka_unit_test_setup_teardown(writes_in_order, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
