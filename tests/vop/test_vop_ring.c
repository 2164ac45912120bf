/* SPDX-License-Identifier: MIT */
/* Buffers both ways through vrings: host walker/copy API against the card
 * virtqueue driver, indirect descriptors, 16-bit index wrap-around,
 * notification suppression, used ring in card memory, copy hook, reset. */
#include "vop_fixture.h"

#define ALL (~0ull)
#define NO_EVENT_IDX (~(1ull << VIRTIO_RING_F_EVENT_IDX))
#define NO_INDIRECT (~(1ull << VIRTIO_RING_F_INDIRECT_DESC))

static void card_to_host(struct fx *f, struct fx_dev *x, unsigned vq, unsigned nseg)
{
	struct mic_vop_sg sg[4];
	for (unsigned i = 0; i < nseg; i++)
		sg[i] = (struct mic_vop_sg){ fx_buf(f, 100 + i, (uint8_t)('a' + i)), 100 + i };
	int token;
	assert_int_equal(mic_vop_vq_add_outbuf(x->q[vq], sg, nseg, &token), 0);
	mic_vop_vq_kick(x->q[vq]);
	char out[1024];
	struct iovec iov = { out, sizeof(out) };
	struct fx_copy_desc cd = { &iov, 1, vq, 1, 0 };
	assert_int_equal(fx_copy_desc(x->hd, &cd), 0);
	unsigned want = 0;
	for (unsigned i = 0; i < nseg; i++) {
		for (unsigned k = 0; k < 100 + i; k++)
			assert_int_equal(out[want + k], 'a' + i);
		want += 100 + i;
	}
	assert_int_equal(cd.out_len, want);
	uint32_t len = 99;
	assert_ptr_equal(mic_vop_vq_get_buf(x->q[vq], &len), &token);
	assert_int_equal(len, 0);
	for (unsigned i = 0; i < nseg; i++)
		mic_vop_cma_free(f->cma, sg[i].addr, sg[i].len);
}

static void roundtrip_both_ways(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	fx_drain_irqs(f);
	unsigned h2c = mic_vop_cdev_h2c_db(x.cd), c2h = mic_vop_host_dev_c2h_db(x.hd);

	/* card -> host (tx queue 1) */
	card_to_host(f, &x, 1, 1);
	assert_int_equal(mic_irq_ack(f->h, c2h), 1);
	assert_int_equal(mic_irq_ack(&f->c, h2c), 1);

	/* host -> card (rx queue 0) */
	uint64_t b = fx_buf(f, 64, 0);
	struct mic_vop_sg sg = { b, 64 };
	int token;
	assert_int_equal(mic_vop_vq_add_inbuf(x.q[0], &sg, 1, &token), 0);
	assert_true(mic_vop_vq_kick(x.q[0]));
	struct iovec iov = { "hello, card", 11 };
	struct fx_copy_desc cd = { &iov, 1, 0, 1, 0 };
	assert_int_equal(fx_copy_desc(x.hd, &cd), 0);
	assert_int_equal(cd.out_len, 11);
	uint32_t len;
	assert_ptr_equal(mic_vop_vq_get_buf(x.q[0], &len), &token);
	assert_int_equal(len, 11);
	assert_memory_equal(mic_vop_cma_ptr(f->cma, b, 11), "hello, card", 11);
	assert_null(mic_vop_vq_get_buf(x.q[0], &len));
	/* Nothing more: -EAGAIN. */
	assert_int_equal(fx_copy_desc(x.hd, &cd), -EAGAIN);
	assert_false(mic_vop_host_dev_broken(x.hd, NULL));
}

static void mixed_chain_step_api(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	for (int ind = 0; ind < 2; ind++) {
		struct fx_dev x;
		fx_bring_up(f, &t, ind ? ALL : NO_INDIRECT, 0, &x);
		struct mic_vop_sg sg[4] = {
			{ fx_buf(f, 16, 'h'), 16 }, { fx_buf(f, 8, 'i'), 8 },
			{ fx_buf(f, 32, 0), 32 }, { fx_buf(f, 1, 0), 1 },
		};
		int token;
		unsigned free0 = mic_vop_vq_num_free(x.q[0]);
		assert_int_equal(mic_vop_vq_add_sgs(x.q[0], sg, 2, 2, &token), 0);
		assert_int_equal(mic_vop_vq_num_free(x.q[0]), free0 - (ind ? 1 : 4));
		struct vring *vr = mic_vop_vq_vring(x.q[0]);
		assert_int_equal(!!(vr->desc[0].flags & VRING_DESC_F_INDIRECT), ind);

		struct mic_vop_chain *c = malloc(sizeof(*c));
		assert_int_equal(mic_vop_host_vq_get(x.hd, 0, c), 1);
		assert_int_equal(c->nseg, 4);
		assert_int_equal(c->nread, 2);
		assert_int_equal(c->read_len, 24);
		assert_int_equal(c->write_len, 33);
		char a[10], b2[100];
		struct iovec iv[2] = { { a, 10 }, { b2, 100 } };
		assert_int_equal(mic_vop_host_chain_pull(x.hd, c, iv, 2), 24);
		assert_int_equal(mic_vop_host_chain_pull(x.hd, c, iv, 2), 0);
		assert_memory_equal(a, "hhhhhhhhhh", 10);
		assert_memory_equal(b2, "hhhhhhiiiiiiii", 14);
		memset(b2, 'w', sizeof(b2));
		b2[32] = 'S';
		struct iovec wv[2] = { { b2, 20 }, { b2 + 20, 80 } };
		assert_int_equal(mic_vop_host_chain_push(x.hd, c, wv, 2), 33);
		assert_int_equal(mic_vop_host_vq_put(x.hd, c), 0);
		mic_vop_host_vq_notify(x.hd, 0);
		uint32_t len;
		assert_ptr_equal(mic_vop_vq_get_buf(x.q[0], &len), &token);
		assert_int_equal(len, 33);
		assert_int_equal(*(char *)mic_vop_cma_ptr(f->cma, sg[3].addr, 1), 'S');
		assert_int_equal(mic_vop_vq_num_free(x.q[0]), free0);
		free(c);
	}
}

/* Direct I/O on a chain (the net backend's readv/writev): the iovecs are
 * the checked segments' own card memory from the cursor on, readable and
 * writable parts apart, and advancing stops at the chain's end. */
static void chain_iov_direct(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	struct mic_vop_sg sg[4] = {
		{ fx_buf(f, 16, 'h'), 16 }, { fx_buf(f, 8, 'i'), 8 },
		{ fx_buf(f, 32, 0), 32 }, { fx_buf(f, 1, 0), 1 },
	};
	int token;
	assert_int_equal(mic_vop_vq_add_sgs(x.q[0], sg, 2, 2, &token), 0);
	struct mic_vop_chain *c = malloc(sizeof(*c));
	assert_int_equal(mic_vop_host_vq_get(x.hd, 0, c), 1);
	char hdr[10];
	struct iovec h = { hdr, sizeof(hdr) };
	assert_int_equal(mic_vop_host_chain_pull(x.hd, c, &h, 1), 10);
	struct iovec iv[4];
	assert_int_equal(mic_vop_host_chain_iov(c, false, iv, 4), 2);
	assert_ptr_equal(iv[0].iov_base, (char *)mic_vop_cma_ptr(f->cma, sg[0].addr, 16) + 10);
	assert_int_equal(iv[0].iov_len, 6);
	assert_ptr_equal(iv[1].iov_base, mic_vop_cma_ptr(f->cma, sg[1].addr, 8));
	assert_int_equal(iv[1].iov_len, 8);
	assert_int_equal(mic_vop_host_chain_iov(c, false, iv, 1), 1); /* capped at max */
	assert_int_equal(mic_vop_host_chain_iov(c, true, iv, 4), 2);
	assert_ptr_equal(iv[0].iov_base, mic_vop_cma_ptr(f->cma, sg[2].addr, 32));
	assert_int_equal(iv[0].iov_len, 32);
	assert_ptr_equal(iv[1].iov_base, mic_vop_cma_ptr(f->cma, sg[3].addr, 1));
	memset(iv[0].iov_base, 'w', 32);
	*(char *)iv[1].iov_base = 'S';
	mic_vop_host_chain_advance(c, true, 1000); /* clamped to the 33 bytes */
	assert_int_equal(c->write_done, 33);
	assert_int_equal(mic_vop_host_chain_iov(c, true, iv, 4), 0);
	mic_vop_host_chain_advance(c, false, 14);
	assert_int_equal(c->read_done, 24);
	assert_int_equal(mic_vop_host_chain_iov(c, false, iv, 4), 0);
	assert_int_equal(mic_vop_host_vq_put(x.hd, c), 0);
	mic_vop_host_vq_notify(x.hd, 0);
	uint32_t len;
	assert_ptr_equal(mic_vop_vq_get_buf(x.q[0], &len), &token);
	assert_int_equal(len, 33);
	assert_int_equal(*(char *)mic_vop_cma_ptr(f->cma, sg[3].addr, 1), 'S');
	free(c);
}

static void indirect_roundtrip(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	uint64_t avail0 = mic_vop_cma_avail(f->cma);
	card_to_host(f, &x, 1, 4);
	assert_int_equal(mic_vop_cma_avail(f->cma), avail0); /* table freed */
	/* Without INDIRECT_DESC on the host side nothing is indirect. */
	t.features &= ~(1ull << VIRTIO_RING_F_INDIRECT_DESC);
	struct fx_dev y;
	fx_bring_up(f, &t, ALL, 0, &y);
	card_to_host(f, &y, 1, 4);
	assert_false(mic_vop_host_dev_features(y.hd) & (1ull << VIRTIO_RING_F_INDIRECT_DESC));
}

/* 70000 buffers in batches: avail and used indices wrap past 65535. */
static void index_wraparound(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	struct mic_vop_sg sg[64];
	for (unsigned i = 0; i < 64; i++)
		sg[i] = (struct mic_vop_sg){ fx_buf(f, 4, 0), 4 };
	struct mic_vop_chain *c = malloc(sizeof(*c));
	uint32_t seq = 0, got = 0;
	struct vring *vr = mic_vop_vq_vring(x.q[0]);
	while (got < 70000) {
		for (unsigned i = 0; i < 64; i++)
			assert_int_equal(mic_vop_vq_add_inbuf(x.q[0], &sg[i], 1, &sg[i]), 0);
		mic_vop_vq_kick(x.q[0]);
		int r;
		while ((r = mic_vop_host_vq_get(x.hd, 0, c)) == 1) {
			uint32_t v = seq++;
			struct iovec iov = { &v, 4 };
			assert_int_equal(mic_vop_host_chain_push(x.hd, c, &iov, 1), 4);
			assert_int_equal(mic_vop_host_vq_put(x.hd, c), 0);
		}
		assert_int_equal(r, 0);
		mic_vop_host_vq_notify(x.hd, 0);
		struct mic_vop_sg *s;
		uint32_t len;
		while ((s = mic_vop_vq_get_buf(x.q[0], &len))) {
			uint32_t v;
			memcpy(&v, mic_vop_cma_ptr(f->cma, s->addr, 4), 4);
			assert_int_equal(v, got);
			got++;
		}
	}
	/* Past 65535 both indices wrapped; they stay in step with the count. */
	assert_int_equal(vr->used->idx, (uint16_t)got);
	assert_int_equal(vr->avail->idx, (uint16_t)got);
	assert_false(mic_vop_host_dev_broken(x.hd, NULL));
	free(c);
	fx_drain_irqs(f);
}

static void event_idx_suppression(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	fx_drain_irqs(f);
	unsigned h2c = mic_vop_cdev_h2c_db(x.cd), c2h = mic_vop_host_dev_c2h_db(x.hd);
	struct mic_vop_sg sg = { fx_buf(f, 8, 1), 8 };
	int tok[8];
	/* Card -> host kicks: only the first of a burst the host has not seen. */
	unsigned kicks = 0;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[i]), 0);
		kicks += mic_vop_vq_kick(x.q[1]);
	}
	assert_int_equal(kicks, 1);
	assert_int_equal(mic_irq_ack(f->h, c2h), 1);
	struct mic_vop_chain *c = malloc(sizeof(*c));
	unsigned rung = 0;
	/* Card wants an interrupt for the next used buffer only. */
	assert_true(mic_vop_vq_enable_cb(x.q[1]));
	while (mic_vop_host_vq_get(x.hd, 1, c) == 1) {
		mic_vop_host_vq_put(x.hd, c);
		rung += mic_vop_host_vq_notify(x.hd, 1);
	}
	assert_int_equal(rung, 1);
	assert_int_equal(mic_irq_ack(&f->c, h2c), 1);
	/* The host drained the ring and re-armed: the next add kicks again. */
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[3]), 0);
	assert_true(mic_vop_vq_kick(x.q[1]));
	assert_int_equal(mic_irq_ack(f->h, c2h), 1);
	/* Card drains its used buffers: event index follows. */
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(mic_vop_vq_get_buf(x.q[1], NULL), &tok[i]);
	assert_int_equal(mic_vop_host_vq_get(x.hd, 1, c), 1);
	mic_vop_host_vq_put(x.hd, c);
	assert_int_equal(mic_vop_host_vq_notify(x.hd, 1), 1);
	/* Callbacks disabled: no interrupt. */
	assert_ptr_equal(mic_vop_vq_get_buf(x.q[1], NULL), &tok[3]);
	mic_vop_vq_disable_cb(x.q[1]);
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[4]), 0);
	mic_vop_vq_kick(x.q[1]);
	assert_int_equal(mic_vop_host_vq_get(x.hd, 1, c), 1);
	mic_vop_host_vq_put(x.hd, c);
	assert_int_equal(mic_vop_host_vq_notify(x.hd, 1), 0);
	assert_false(mic_vop_vq_enable_cb(x.q[1])); /* one pending */
	/* Host polling: kicks disabled with EVENT_IDX means avail_event stays. */
	mic_vop_host_vq_disable_notify(x.hd, 1);
	assert_int_equal(mic_vop_host_vq_get(x.hd, 1, c), 0);
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[5]), 0);
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[6]), 0);
	assert_false(mic_vop_vq_kick(x.q[1]));
	assert_true(mic_vop_host_vq_enable_notify(x.hd, 1)); /* buffers pending */
	free(c);
}

static void flag_suppression_without_event_idx(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, NO_EVENT_IDX, 0, &x);
	fx_drain_irqs(f);
	struct mic_vop_sg sg = { fx_buf(f, 8, 1), 8 };
	int tok[4];
	struct mic_vop_chain *c = malloc(sizeof(*c));
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[0]), 0);
	assert_true(mic_vop_vq_kick(x.q[1]));
	mic_vop_host_vq_disable_notify(x.hd, 1);
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[1]), 0);
	assert_false(mic_vop_vq_kick(x.q[1]));
	assert_true(mic_vop_host_vq_enable_notify(x.hd, 1));
	while (mic_vop_host_vq_get(x.hd, 1, c) == 1)
		mic_vop_host_vq_put(x.hd, c);
	mic_vop_vq_disable_cb(x.q[1]);
	assert_int_equal(mic_vop_host_vq_notify(x.hd, 1), 0);
	assert_false(mic_vop_vq_enable_cb(x.q[1]));
	assert_non_null(mic_vop_vq_get_buf(x.q[1], NULL));
	assert_non_null(mic_vop_vq_get_buf(x.q[1], NULL));
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], &sg, 1, &tok[2]), 0);
	assert_true(mic_vop_vq_kick(x.q[1]));
	assert_int_equal(mic_vop_host_vq_get(x.hd, 1, c), 1);
	mic_vop_host_vq_put(x.hd, c);
	assert_int_equal(mic_vop_host_vq_notify(x.hd, 1), 1);
	free(c);
}

static void used_ring_in_card_memory(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, MIC_VOP_VQ_USED_IN_CARDMEM, &x);
	struct vring *vr = mic_vop_vq_vring(x.q[1]);
	uint8_t *ap = f->c.aperture.va;
	assert_true((uint8_t *)vr->used >= ap && (uint8_t *)vr->used < ap + f->c.aperture.size);
	card_to_host(f, &x, 1, 2);
	assert_int_equal(vr->used->idx, 1);
	assert_false(mic_vop_host_dev_broken(x.hd, NULL));
}

struct hook_ctx {
	unsigned calls, bytes;
};
static int hook(void *ctx, enum mic_vop_dir dir, uint64_t card_addr, void *card_ptr,
		void *host_buf, size_t len)
{
	struct hook_ctx *h = ctx;
	(void)card_addr;
	h->calls++;
	if (len < 64)
		return 1; /* small: let the library memcpy */
	h->bytes += len;
	if (dir == MIC_VOP_HOST_TO_CARD)
		memcpy(card_ptr, host_buf, len);
	else
		memcpy(host_buf, card_ptr, len);
	return 0;
}

static void copy_hook(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	struct hook_ctx hc = { 0, 0 };
	mic_vop_host_dev_set_copy(x.hd, hook, &hc);
	card_to_host(f, &x, 1, 2);
	assert_int_equal(hc.calls, 2);
	assert_int_equal(hc.bytes, 201);
}

static void card_requested_reset(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	card_to_host(f, &x, 1, 1);
	mic_vop_cdev_reset_start(x.cd);
	/* Asking whether the device is ready does not consume the request
	 * (the backend would then never hear of the reset): poll reports it. */
	assert_true(mic_vop_host_dev_ready(x.hd));
	assert_true(mic_vop_host_dev_poll(x.hd) & MIC_VOP_EV_RESET);
	assert_false(mic_vop_host_dev_ready(x.hd));
	assert_int_equal(mic_vop_cdev_reset_wait(x.cd, 100), 0);
	assert_int_equal(mic_vop_cdev_negotiate(x.cd, ALL, NULL), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(x.cd, 0, 0, &x.q[0]), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(x.cd, 1, 0, &x.q[1]), 0);
	assert_int_equal(mic_vop_cdev_driver_ok(x.cd), 0);
	assert_true(mic_vop_host_dev_poll(x.hd) & MIC_VOP_EV_READY);
	card_to_host(f, &x, 1, 3);
}

/* A reset the host does not acknowledge frees none of the queues' card
 * memory: the host may still write the used rings and walk the indirect
 * tables.  The old code freed them whatever the answer. */
static void unacked_reset_keeps_card_memory(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	uint64_t before = mic_vop_cma_avail(f->cma);
	fx_bring_up(f, &t, ALL, MIC_VOP_VQ_USED_IN_CARDMEM, &x);
	struct mic_vop_sg sg[2] = { { fx_buf(f, 64, 1), 64 }, { fx_buf(f, 64, 2), 64 } };
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], sg, 2, (void *)1), 0); /* indirect */
	uint64_t held = mic_vop_cma_avail(f->cma);
	/* used rings, the indirect table and the two buffers */
	assert_true(held <= before - 2 * mic_vring_used_size(128) - 3 * 64);
	/* nobody polls on the host side: no acknowledgement */
	assert_int_equal(mic_vop_cdev_reset(x.cd, 20), -ETIMEDOUT);
	assert_int_equal(mic_vop_cma_avail(f->cma), held);
}

/* Acknowledged, the same memory goes back (the buffers are the driver's). */
static void acked_reset_frees_card_memory(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	uint64_t before = mic_vop_cma_avail(f->cma);
	fx_bring_up(f, &t, ALL, MIC_VOP_VQ_USED_IN_CARDMEM, &x);
	struct mic_vop_sg sg[2] = { { fx_buf(f, 64, 1), 64 }, { fx_buf(f, 64, 2), 64 } };
	assert_int_equal(mic_vop_vq_add_outbuf(x.q[1], sg, 2, (void *)1), 0);
	mic_vop_cdev_reset_start(x.cd);
	assert_true(mic_vop_host_dev_poll(x.hd) & MIC_VOP_EV_RESET);
	assert_int_equal(mic_vop_cdev_reset_wait(x.cd, 100), 0);
	assert_int_equal(mic_vop_cma_avail(f->cma), before - 2 * 64);
}

/* The reset hook (a vhost-user backend's quiesce) runs while the rings
 * still hold what the card put there and before the card hears that the
 * reset is done, for a reset the card asked for, a host one and a card
 * reset alike. */
struct reset_seen {
	struct mic_vop_host_dev *hd;
	const uint8_t *ack;
	int calls, acked, zeroed;
};

static void note_reset(void *ctx)
{
	struct reset_seen *r = ctx;
	struct mic_vop_vring_info vi;
	assert_int_equal(mic_vop_host_dev_vring(r->hd, 1, &vi), 0);
	uint16_t avail;
	memcpy(&avail, (const uint8_t *)vi.avail + 2, sizeof(avail));
	r->calls++;
	r->acked += *(volatile const uint8_t *)r->ack != 0;
	r->zeroed += avail == 0;
}

static void reset_hook_runs_before_rings_zeroed(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ALL, 0, &x);
	card_to_host(f, &x, 1, 1);
	struct reset_seen r = { .hd = x.hd };
	r.ack = (const uint8_t *)mic_vop_host_dp(f->vh) + mic_vop_host_dev_offset(x.hd) +
		mic_dp_ctrl_off(t.num_vq, MIC_VOP_FEATURE_LEN, t.config_len) +
		offsetof(struct mic_device_ctrl, host_ack);
	mic_vop_host_dev_set_reset_hook(x.hd, note_reset, &r);
	mic_vop_cdev_reset_start(x.cd);
	assert_true(mic_vop_host_dev_poll(x.hd) & MIC_VOP_EV_RESET);
	assert_int_equal(mic_vop_cdev_reset_wait(x.cd, 100), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.acked, 0);
	assert_int_equal(r.zeroed, 0);
	/* host reset and card reset: the hook runs too (rings already empty) */
	mic_vop_host_dev_reset(x.hd);
	mic_vop_host_reset(f->vh);
	assert_int_equal(r.calls, 3);
}

int main(void)
{
#define T(n) cmocka_unit_test_setup_teardown(n, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
		T(roundtrip_both_ways), T(mixed_chain_step_api), T(chain_iov_direct),
		T(indirect_roundtrip),
		T(index_wraparound), T(event_idx_suppression),
		T(flag_suppression_without_event_idx), T(used_ring_in_card_memory), T(copy_hook),
		T(card_requested_reset), T(reset_hook_runs_before_rings_zeroed), T(unacked_reset_keeps_card_memory),
		T(acked_reset_frees_card_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
