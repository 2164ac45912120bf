/* SPDX-License-Identifier: MIT */
/*
 * host/vdev.c against a hostile card: a device the card breaks while its
 * thread still has budget left over must not keep that thread polling
 * without a timeout, and a card that loops on resets cannot flood micd's
 * log (lines it causes go through the device's limit, lib/log.h).
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "host/backends/backends.h"
#include "lib/log.h"
#include "tests/vop/vop_fixture.h"

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A console whose card driver is up, served by its own device thread. */
static struct vdev *console_up(struct fx *f, struct mic_vop_cdev **dp, struct mic_vop_vq **q)
{
	struct vdev *vd;
	assert_int_equal(console_backend_start(f->vh, f->h, "micv", "/tmp", &vd), 0);
	struct mic_vop_cdev *d;
	assert_true(mic_vop_card_scan(f->vc) >= 1);
	assert_non_null(d = mic_vop_card_find(f->vc, VIRTIO_ID_CONSOLE, 0));
	assert_int_equal(mic_vop_cdev_negotiate(d, ~0ull, NULL), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(d, 0, 0, &q[0]), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(d, 1, 0, &q[1]), 0);
	assert_int_equal(mic_vop_cdev_driver_ok(d), 0);
	vdev_serve_once(vd); /* latches DRIVER_OK */
	*dp = d;
	return vd;
}

static void broken_with_budget_left_sleeps(void **state)
{
	struct fx *f = *state;
	log_init("test", LOG_ERR);
	struct mic_vop_cdev *d;
	struct mic_vop_vq *q[2];
	struct vdev *vd = console_up(f, &d, q);
	/* more transmit chains than one pass's budget: work left over */
	for (int i = 0; i < 2 * 64; i++) {
		struct mic_vop_sg sg = { fx_buf(f, 1, 'x'), 1 };
		assert_int_equal(mic_vop_vq_add_sgs(q[1], &sg, 1, 0, (void *)(uintptr_t)(i + 1)), 0);
	}
	vdev_serve_once(vd);
	assert_int_equal(vd->more, 1);
	/* the card scribbles on its device page's type byte: broken */
	uint8_t *dp = mic_vop_host_dp(f->vh);
	dp[mic_vop_host_dev_offset(vd->dev)] ^= 0x40;
	vdev_serve_once(vd);
	assert_true(mic_vop_host_dev_broken(vd->dev, NULL));
	assert_int_equal(vd->more, 0);
	/* and its thread sleeps: a spinning one takes the whole second */
	double c0 = cpu_s();
	sleep(1);
	assert_true(cpu_s() - c0 < 0.5);
	vdev_stop(vd);
	vd->ops->destroy(vd);
}

static int count(const char *text, const char *what)
{
	int n = 0;
	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

static void reset_flood_is_limited(void **state)
{
	struct fx *f = *state;
	log_init("test", LOG_INFO);
	struct mic_vop_cdev *d;
	struct mic_vop_vq *q[2];
	struct vdev *vd = console_up(f, &d, q);
	char path[] = "/tmp/test_vdev_hostile.XXXXXX";
	int out = mkstemp(path), saved = dup(2);
	assert_true(out >= 0 && saved >= 0);
	unlink(path);
	fflush(stderr);
	dup2(out, 2);
	for (int i = 0; i < 2000; i++) {
		mic_vop_cdev_reset_start(d);
		vdev_serve_once(vd);
		mic_vop_cdev_reset_wait(d, 1000);
	}
	/* tokens again after 0.5 s: the next line says what was left out */
	usleep(500 * 1000);
	mic_vop_cdev_reset_start(d);
	vdev_serve_once(vd);
	mic_vop_cdev_reset_wait(d, 1000);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	static char log[1 << 20];
	ssize_t n = pread(out, log, sizeof(log) - 1, 0);
	close(out);
	assert_true(n > 0);
	log[n] = 0;
	int resets = count(log, "console device reset by the card");
	printf("2001 resets asked for, %d logged\n", resets);
	assert_true(resets >= 20);
	assert_true(resets <= 40); /* a burst of 20, then 5 a second */
	assert_int_equal(count(log, "more lines the card caused were not logged"), 1);
	vdev_stop(vd);
	vd->ops->destroy(vd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(broken_with_budget_left_sleeps, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(reset_flood_is_limited, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
