/* SPDX-License-Identifier: MIT */
/*
 * A hostile card: it writes whatever it likes into its rings and the device
 * page.  The host must refuse, mark only that device broken with a reason,
 * and keep serving the other device.
 */
#include "vop_fixture.h"

struct hx {
	struct fx *f;
	struct fx_dev bad, good;
	struct mic_vop_chain *c;
};

static int hx_setup(void **state)
{
	if (fx_setup(state))
		return -1;
	struct hx *h = calloc(1, sizeof(*h));
	h->f = *state;
	h->c = malloc(sizeof(*h->c));
	struct mic_vop_dev_template t = fx_console_tmpl();
	fx_bring_up(h->f, &t, ~0ull, 0, &h->bad);
	fx_bring_up(h->f, &t, ~0ull, 0, &h->good);
	*state = h;
	return 0;
}

static int hx_teardown(void **state)
{
	struct hx *h = *state;
	void *f = h->f;
	free(h->c);
	free(h);
	return fx_teardown(&f);
}

/* Publishes head at the next avail slot and bumps avail->idx by step. */
static void raw_publish(struct vring *vr, uint16_t head, uint16_t step)
{
	uint16_t i = vr->avail->idx;
	vr->avail->ring[i % vr->num] = head;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	vr->avail->idx = (uint16_t)(i + step);
}

static void set_desc(struct vring *vr, unsigned i, uint64_t a, uint32_t l, uint16_t fl, uint16_t n)
{
	vr->desc[i] = (struct vring_desc){ a, l, fl, n };
}

/* The host refuses the bad device, with a reason containing what, and the
 * good device still carries data both ways. */
static void expect_broken(struct hx *h, unsigned vq, const char *what)
{
	assert_int_equal(mic_vop_host_vq_get(h->bad.hd, vq, h->c), -EIO);
	const char *why = NULL;
	assert_true(mic_vop_host_dev_broken(h->bad.hd, &why));
	assert_non_null(why);
	if (!strstr(why, what))
		fail_msg("reason \"%s\" does not mention \"%s\"", why, what);
	/* Stays broken, and every queue op says so. */
	assert_int_equal(mic_vop_host_vq_get(h->bad.hd, 0, h->c), -EIO);
	struct iovec iov = { NULL, 0 };
	struct fx_copy_desc cd = { &iov, 1, vq, 1, 0 };
	assert_int_equal(fx_copy_desc(h->bad.hd, &cd), -EIO);
	assert_true(mic_vop_host_dev_poll(h->bad.hd) & MIC_VOP_EV_BROKEN);

	struct fx *f = h->f;
	struct mic_vop_sg sg = { fx_buf(f, 32, 'g'), 32 };
	int tok;
	assert_int_equal(mic_vop_vq_add_outbuf(h->good.q[1], &sg, 1, &tok), 0);
	mic_vop_vq_kick(h->good.q[1]);
	char buf[64];
	struct iovec gi = { buf, sizeof(buf) };
	struct fx_copy_desc gcd = { &gi, 1, 1, 1, 0 };
	assert_int_equal(fx_copy_desc(h->good.hd, &gcd), 0);
	assert_int_equal(gcd.out_len, 32);
	assert_ptr_equal(mic_vop_vq_get_buf(h->good.q[1], NULL), &tok);
	assert_int_equal(mic_vop_vq_add_inbuf(h->good.q[0], &sg, 1, &tok), 0);
	gi.iov_len = 5;
	struct fx_copy_desc g2 = { &gi, 1, 0, 1, 0 };
	assert_int_equal(fx_copy_desc(h->good.hd, &g2), 0);
	uint32_t len;
	assert_ptr_equal(mic_vop_vq_get_buf(h->good.q[0], &len), &tok);
	assert_int_equal(len, 5);
	assert_false(mic_vop_host_dev_broken(h->good.hd, NULL));
}

static struct vring *bad_vr(struct hx *h, unsigned vq)
{
	return mic_vop_vq_vring(h->bad.q[vq]);
}

static void avail_idx_jump(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	set_desc(vr, 0, fx_buf(h->f, 8, 0), 8, 0, 0);
	raw_publish(vr, 0, 200);
	expect_broken(h, 1, "avail idx");
}

static void descriptor_loop(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	uint64_t b = fx_buf(h->f, 8, 0);
	set_desc(vr, 0, b, 8, VRING_DESC_F_NEXT, 1);
	set_desc(vr, 1, b, 8, VRING_DESC_F_NEXT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "loop");
}

static void head_out_of_ring(void **state)
{
	struct hx *h = *state;
	raw_publish(bad_vr(h, 1), 500, 1);
	expect_broken(h, 1, "head");
}

static void next_out_of_ring(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	set_desc(vr, 3, fx_buf(h->f, 8, 0), 8, VRING_DESC_F_NEXT, 128);
	raw_publish(vr, 3, 1);
	expect_broken(h, 1, "next");
}

static void buffer_outside_card_memory(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 0);
	/* straddles the end of the aperture */
	set_desc(vr, 0, h->f->c.aperture.size - 8, 16, VRING_DESC_F_WRITE, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 0, "outside card memory");
}

static void buffer_in_host_memory(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 0);
	/* The device page's own card address: the host must never write there
	 * on the card's behalf. */
	set_desc(vr, 0, mic_vop_host_dp_card_addr(h->f->vh), 64, VRING_DESC_F_WRITE, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 0, "outside card memory");
}

static void huge_length(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	set_desc(vr, 0, 0, 0xffffffffu, 0, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "longer");
}

static void total_length_bounded(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	mic_vop_host_dev_set_max_chain(h->bad.hd, 1u << 20);
	/* each in card memory, together too long */
	for (unsigned i = 0; i < 3; i++)
		set_desc(vr, i, 0, 512u << 10, i < 2 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "longer");
}

static void readable_after_writable(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	uint64_t b = fx_buf(h->f, 8, 0);
	set_desc(vr, 0, b, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(vr, 1, b, 8, 0, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "readable");
}

static uint64_t indirect_table(struct hx *h, struct vring_desc **t, unsigned n)
{
	uint64_t a = fx_buf(h->f, n * 16, 0);
	*t = mic_vop_cma_ptr(h->f->cma, a, n * 16);
	return a;
}

static void indirect_loop(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	struct vring_desc *t;
	uint64_t a = indirect_table(h, &t, 4);
	uint64_t b = fx_buf(h->f, 8, 0);
	for (unsigned i = 0; i < 4; i++)
		t[i] = (struct vring_desc){ b, 8, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % 4) };
	set_desc(vr, 0, a, 64, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "loop in indirect");
}

static void indirect_nested(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	struct vring_desc *t;
	uint64_t a = indirect_table(h, &t, 2);
	t[0] = (struct vring_desc){ a, 32, VRING_DESC_F_INDIRECT, 0 };
	set_desc(vr, 0, a, 32, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "nested");
}

static void indirect_bad_table(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	struct vring_desc *t;
	uint64_t a = indirect_table(h, &t, 2);
	t[0] = (struct vring_desc){ a, 8, VRING_DESC_F_NEXT, 7 };
	set_desc(vr, 0, a, 32, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "indirect next");
}

static void indirect_odd_length(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	set_desc(vr, 0, fx_buf(h->f, 64, 0), 24, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "indirect table length");
}

static void indirect_table_outside(void **state)
{
	struct hx *h = *state;
	struct vring *vr = bad_vr(h, 1);
	set_desc(vr, 0, h->f->c.aperture.size - 16, 32, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "indirect table");
}

static void indirect_not_negotiated(void **state)
{
	struct hx *h = *state;
	/* A third device negotiated without INDIRECT_DESC. */
	struct mic_vop_dev_template t = fx_console_tmpl();
	fx_bring_up(h->f, &t, ~(1ull << VIRTIO_RING_F_INDIRECT_DESC), 0, &h->bad);
	struct vring *vr = bad_vr(h, 1);
	struct vring_desc *tb;
	uint64_t a = indirect_table(h, &tb, 1);
	tb[0] = (struct vring_desc){ fx_buf(h->f, 8, 0), 8, 0, 0 };
	set_desc(vr, 0, a, 16, VRING_DESC_F_INDIRECT, 0);
	raw_publish(vr, 0, 1);
	expect_broken(h, 1, "without INDIRECT");
}

static uint8_t *bad_block(struct hx *h)
{
	return (uint8_t *)mic_vop_host_dp(h->f->vh) + mic_vop_host_dev_offset(h->bad.hd);
}

/* The host checks the page once per wake-up of the device (dev_poll, as
 * the device thread does when the doorbell rings), not at every queue
 * operation: the card's next kick is when it finds out. */
static void page_wakeup(struct hx *h)
{
	mic_vop_host_dev_poll(h->bad.hd);
}

static void page_type_flipped(void **state)
{
	struct hx *h = *state;
	bad_block(h)[0] = VIRTIO_ID_NET;
	page_wakeup(h);
	expect_broken(h, 0, "type changed");
}

static void page_num_vq_flipped(void **state)
{
	struct hx *h = *state;
	bad_block(h)[1] = 4;
	page_wakeup(h);
	expect_broken(h, 0, "counts changed");
}

static void page_vq_num_flipped(void **state)
{
	struct hx *h = *state;
	struct mic_vqconfig *vq = (void *)(bad_block(h) + mic_dp_vq_off(1));
	vq->num = 64;
	page_wakeup(h);
	expect_broken(h, 1, "num/address");
}

static void page_vq_address_flipped(void **state)
{
	struct hx *h = *state;
	struct mic_vqconfig *vq = (void *)(bad_block(h) + mic_dp_vq_off(0));
	vq->address += 4096;
	page_wakeup(h);
	expect_broken(h, 0, "num/address");
}

/* Things only checked when the host latches DRIVER_OK: bring the bad
 * device up again by hand. */
static void renegotiate(struct hx *h)
{
	mic_vop_cdev_reset_start(h->bad.cd);
	mic_vop_host_dev_poll(h->bad.hd);
	assert_int_equal(mic_vop_cdev_reset_wait(h->bad.cd, 100), 0);
	assert_int_equal(mic_vop_cdev_negotiate(h->bad.cd, ~0ull, NULL), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(h->bad.cd, 0, 0, &h->bad.q[0]), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(h->bad.cd, 1, 0, &h->bad.q[1]), 0);
}

static void unoffered_features(void **state)
{
	struct hx *h = *state;
	renegotiate(h);
	uint8_t *gf = bad_block(h) + mic_dp_guest_feat_off(2, MIC_VOP_FEATURE_LEN);
	gf[1] |= 0x80; /* bit 15: never offered */
	mic_vop_cdev_driver_ok(h->bad.cd);
	expect_broken(h, 0, "not offered");
}

static void no_version_1(void **state)
{
	struct hx *h = *state;
	renegotiate(h);
	uint8_t *gf = bad_block(h) + mic_dp_guest_feat_off(2, MIC_VOP_FEATURE_LEN);
	gf[4] = 0;
	mic_vop_cdev_driver_ok(h->bad.cd);
	expect_broken(h, 0, "VERSION_1");
}

static void bad_doorbell(void **state)
{
	struct hx *h = *state;
	renegotiate(h);
	mic_vop_cdev_driver_ok(h->bad.cd);
	/* Re-latch with a doorbell out of range. */
	renegotiate(h);
	mic_vop_cdev_set_h2c_db(h->bad.cd, 3);
	mic_vop_cdev_driver_ok(h->bad.cd);
	struct mic_device_ctrl *ctl =
		(void *)(bad_block(h) + mic_dp_ctrl_off(2, MIC_VOP_FEATURE_LEN, 12));
	ctl->h2c_vdev_db = 42;
	expect_broken(h, 0, "doorbell");
}

static void used_ring_moved_to_host_memory(void **state)
{
	struct hx *h = *state;
	renegotiate(h);
	struct mic_vqconfig *vq = (void *)(bad_block(h) + mic_dp_vq_off(1));
	struct mic_device_ctrl *ctl =
		(void *)(bad_block(h) + mic_dp_ctrl_off(2, MIC_VOP_FEATURE_LEN, 12));
	/* Aim the host's used-ring writes at the device page. */
	mic_vop_cdev_driver_ok(h->bad.cd);
	mic_vop_host_dev_poll(h->bad.hd);
	assert_true(mic_vop_host_dev_ready(h->bad.hd));
	vq->used_address = mic_vop_host_dp_card_addr(h->f->vh);
	ctl->used_address_updated = 1;
	/* already latched before the move: ignored until the next latch */
	mic_vop_host_dev_poll(h->bad.hd);
	assert_true(mic_vop_host_dev_ready(h->bad.hd));
	renegotiate(h);
	mic_vop_cdev_driver_ok(h->bad.cd);
	vq->used_address = mic_vop_host_dp_card_addr(h->f->vh);
	ctl->used_address_updated = 1;
	expect_broken(h, 0, "used ring moved");
}

/* After a reset the broken device works again. */
static void recovers_after_reset(void **state)
{
	struct hx *h = *state;
	raw_publish(bad_vr(h, 1), 500, 1);
	expect_broken(h, 1, "head");
	renegotiate(h);
	mic_vop_cdev_driver_ok(h->bad.cd);
	assert_false(mic_vop_host_dev_broken(h->bad.hd, NULL));
	struct mic_vop_sg sg = { fx_buf(h->f, 8, 'r'), 8 };
	int tok;
	assert_int_equal(mic_vop_vq_add_outbuf(h->bad.q[1], &sg, 1, &tok), 0);
	char buf[8];
	struct iovec iov = { buf, 8 };
	struct fx_copy_desc cd = { &iov, 1, 1, 1, 0 };
	assert_int_equal(fx_copy_desc(h->bad.hd, &cd), 0);
	assert_memory_equal(buf, "rrrrrrrr", 8);
	/* Host-initiated reset too. */
	raw_publish(bad_vr(h, 1), 500, 1);
	assert_int_equal(mic_vop_host_vq_get(h->bad.hd, 1, h->c), -EIO);
	mic_vop_host_dev_reset(h->bad.hd);
	assert_false(mic_vop_host_dev_broken(h->bad.hd, NULL));
	assert_false(mic_vop_host_dev_ready(h->bad.hd));
}

/* The card rewrites descriptors after the host took the chain: the host
 * copies from its validated snapshot. */
static void rewrite_after_walk(void **state)
{
	struct hx *h = *state;
	struct mic_vop_sg sg = { fx_buf(h->f, 8, 's'), 8 };
	int tok;
	assert_int_equal(mic_vop_vq_add_outbuf(h->bad.q[1], &sg, 1, &tok), 0);
	assert_int_equal(mic_vop_host_vq_get(h->bad.hd, 1, h->c), 1);
	struct vring *vr = bad_vr(h, 1);
	vr->desc[h->c->head].addr = ~0ull;
	vr->desc[h->c->head].len = 1u << 30;
	char buf[64];
	struct iovec iov = { buf, sizeof(buf) };
	assert_int_equal(mic_vop_host_chain_pull(h->bad.hd, h->c, &iov, 1), 8);
	assert_int_equal(mic_vop_host_vq_put(h->bad.hd, h->c), 0);
	assert_false(mic_vop_host_dev_broken(h->bad.hd, NULL));
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, hx_setup, hx_teardown)
	const struct CMUnitTest tests[] = {
		T(avail_idx_jump), T(descriptor_loop), T(head_out_of_ring), T(next_out_of_ring),
		T(buffer_outside_card_memory), T(buffer_in_host_memory), T(huge_length),
		T(total_length_bounded), T(readable_after_writable), T(indirect_loop),
		T(indirect_nested), T(indirect_bad_table), T(indirect_odd_length),
		T(indirect_table_outside), T(indirect_not_negotiated), T(page_type_flipped),
		T(page_num_vq_flipped), T(page_vq_num_flipped), T(page_vq_address_flipped),
		T(unoffered_features), T(no_version_1), T(bad_doorbell),
		T(used_ring_moved_to_host_memory), T(recovers_after_reset), T(rewrite_after_walk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
