/* SPDX-License-Identifier: MIT */
/*
 * The card drivers' shared probe and release (card/vop.c): the card memory
 * a driver took is freed exactly when the host has acknowledged the reset,
 * whether or not buffers were in flight then.  Block used to keep its
 * request slots whenever a request was in flight (acknowledged or not); the
 * console never freed its buffers.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "vop_fixture.h"

#include "card/vop.h"

/* The linker makes the driver table's bounds only if the section exists. */
static int nop_probe(struct cos_vdev *vd)
{
	(void)vd;
	return 0;
}
static void nop_remove(struct cos_vdev *vd)
{
	(void)vd;
}
static const struct cos_virtio_driver nop_driver = {
	.name = "nop", .virtio_id = 0, .probe = nop_probe, .remove = nop_remove,
};
COS_VIRTIO_DRIVER(nop_driver);

#define NBUF 16
#define BUF 4096u

struct host_side {
	struct mic_vop_host_dev *hd;
	atomic_int stop, acked;
};

/* micd's device poll: acknowledges the card's reset when it asks. */
static void *host_poll(void *arg)
{
	struct host_side *h = arg;
	while (!atomic_load(&h->stop) && !atomic_load(&h->acked)) {
		if (mic_vop_host_dev_poll(h->hd) & MIC_VOP_EV_RESET)
			atomic_store(&h->acked, 1);
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* A console-shaped device probed through the helper, every receive buffer
 * posted and the host told: all of them are in flight. */
static void probe_with_bufs_in_flight(struct fx *f, struct cos *os, struct cos_vdev *vd,
				      struct host_side *h)
{
	struct mic_vop_dev_template t = fx_console_tmpl();
	assert_int_equal(mic_vop_host_add_device(f->vh, &t, &h->hd), 0);
	assert_true(mic_vop_card_scan(f->vc) >= 1);
	memset(vd, 0, sizeof(*vd));
	vd->os = os;
	vd->cma = f->cma;
	vd->line_fd = -1; /* no doorbell: nothing to watch in this test */
	snprintf(vd->mdev.name, sizeof(vd->mdev.name), "test-vdev");
	vd->cdev = mic_vop_card_find(f->vc, VIRTIO_ID_CONSOLE, 0);
	assert_non_null(vd->cdev);
	struct mic_vop_vq *vq[2];
	assert_int_equal(cos_vdev_setup(vd, 1ull /* F_SIZE */, NULL, vq, 2), 0);
	for (int i = 0; i < NBUF; i++) {
		uint64_t a;
		assert_non_null(cos_vdev_alloc(vd, BUF, &a));
		struct mic_vop_sg sg = { a, BUF };
		assert_int_equal(mic_vop_vq_add_inbuf(vq[0], &sg, 1, (void *)(uintptr_t)(i + 1)), 0);
	}
	assert_int_equal(mic_vop_cdev_driver_ok(vd->cdev), 0);
	assert_true(mic_vop_host_dev_poll(h->hd) & MIC_VOP_EV_READY);
	mic_vop_vq_kick(vq[0]);
	assert_true(mic_vop_vq_num_free(vq[0]) < mic_vop_vq_size(vq[0]));
}

static void acked_release_frees_in_flight_buffers(void **state)
{
	struct fx *f = *state;
	struct cos os = { .log = { .prog = "test" } };
	struct cos_vdev vd;
	struct host_side h = { 0 };
	uint64_t before = mic_vop_cma_avail(f->cma);
	probe_with_bufs_in_flight(f, &os, &vd, &h);
	assert_true(mic_vop_cma_avail(f->cma) <= before - NBUF * BUF);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, host_poll, &h), 0);
	int rc = cos_vdev_release(&vd);
	atomic_store(&h.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(rc, 0);
	assert_true(atomic_load(&h.acked));
	/* buffers and card-memory used rings all back */
	assert_int_equal(mic_vop_cma_avail(f->cma), before);
	free(vd.mem);
}

static void unacked_release_keeps_buffers(void **state)
{
	struct fx *f = *state;
	struct cos os = { .log = { .prog = "test" } };
	struct cos_vdev vd;
	struct host_side h = { 0 };
	uint64_t before = mic_vop_cma_avail(f->cma);
	probe_with_bufs_in_flight(f, &os, &vd, &h);
	/* no host poll: the host never lets go */
	assert_int_not_equal(cos_vdev_release(&vd), 0);
	assert_true(mic_vop_cma_avail(f->cma) <= before - NBUF * BUF);
	free(vd.mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(acked_release_frees_in_flight_buffers, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(unacked_release_keeps_buffers, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
