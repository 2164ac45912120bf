/* SPDX-License-Identifier: MIT */
/* Shared fixture of the vop tests: one simulated card (never powered on),
 * its host view, an in-process card view of the same memory, a host vop
 * context and a card vop context.  Header-only: each test includes it once. */
#ifndef VOP_FIXTURE_H
#define VOP_FIXTURE_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <linux/virtio_ids.h>

#include "hw/mic_hw.h"
#include "mic/boot.h"
#include "vop/card/vop_card.h"
#include "vop/host/vop_host.h"

#define FX_POOL_OFF   (1ull << 20) /* leave the start of hostmem to others */
#define FX_POOL_SIZE  (4ull << 20)
#define FX_HEAP_SIZE  (64ull << 20)

struct fx {
	struct mic_hw *hw;
	struct mic_hw_view *h;       /* host view */
	struct mic_hw_view c;        /* card view */
	struct mic_vop_host *vh;
	struct mic_vop_cma *cma;
	struct mic_vop_card *vc;
};

static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mic_hw_config cfg = { .name = "micv", .index = 0, .device_id = 0x2250,
				     .aperture_size = 256ull << 20, .hostmem_size = 8ull << 20,
				     .bootstrap = "/bin/false" };
	if (!f || mic_hw_create(&cfg, &f->hw))
		return -1;
	f->h = mic_hw_host_view(f->hw);
	mic_hw_card_view(f->hw, &f->c);
	if (mic_vop_host_create(f->h, FX_POOL_OFF, FX_POOL_SIZE, &f->vh))
		return -1;
	if (mic_vop_cma_create(&f->c, MIC_CARD_HEAP_ADDR, FX_HEAP_SIZE, &f->cma))
		return -1;
	if (mic_vop_card_open(&f->c, f->cma, &f->vc))
		return -1;
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	mic_vop_card_close(f->vc);
	mic_vop_cma_destroy(f->cma);
	mic_vop_host_destroy(f->vh);
	mic_hw_destroy(f->hw);
	free(f);
	return 0;
}

static inline struct mic_vop_dev_template fx_console_tmpl(void)
{
	struct mic_vop_dev_template t = {
		.type = VIRTIO_ID_CONSOLE, .num_vq = 2, .vq_num = { 128, 128 },
		.features = MIC_VOP_TRANSPORT_FEATURES | 1ull /* VIRTIO_CONSOLE_F_SIZE */,
		.config_len = 12,
	};
	return t;
}

/* A device brought up on both sides. */
struct fx_dev {
	struct mic_vop_host_dev *hd;
	struct mic_vop_cdev *cd;
	struct mic_vop_vq *q[2];
};

static inline void fx_bring_up(struct fx *f, const struct mic_vop_dev_template *t,
			       uint64_t card_features, unsigned vq_flags, struct fx_dev *out)
{
	assert_int_equal(mic_vop_host_add_device(f->vh, t, &out->hd), 0);
	assert_true(mic_vop_card_scan(f->vc) >= 1);
	size_t off = mic_vop_host_dev_offset(out->hd);
	out->cd = NULL;
	for (unsigned i = 0; i < mic_vop_card_num_devs(f->vc); i++) {
		struct mic_vop_cdev *d = mic_vop_card_dev(f->vc, i);
		if (!mic_vop_cdev_removed(d) && mic_vop_cdev_type(d) == t->type)
			out->cd = d; /* the newest of that type */
	}
	(void)off;
	assert_non_null(out->cd);
	assert_false(mic_vop_host_dev_ready(out->hd));
	assert_int_equal(mic_vop_cdev_negotiate(out->cd, card_features, NULL), 0);
	for (unsigned i = 0; i < t->num_vq && i < 2; i++)
		assert_int_equal(mic_vop_cdev_setup_vq(out->cd, i, vq_flags, &out->q[i]), 0);
	assert_int_equal(mic_vop_cdev_driver_ok(out->cd), 0);
	assert_true(mic_vop_host_dev_poll(out->hd) & MIC_VOP_EV_READY);
	assert_true(mic_vop_host_dev_ready(out->hd));
}

/* Card buffer in the cma, filled with a pattern. */
static inline uint64_t fx_buf(struct fx *f, uint32_t len, uint8_t fill)
{
	uint64_t a;
	assert_int_equal(mic_vop_cma_alloc(f->cma, len, &a), 0);
	memset(mic_vop_cma_ptr(f->cma, a, len), fill, len);
	return a;
}

static inline void fx_drain_irqs(struct fx *f)
{
	for (unsigned i = 0; i < MIC_NUM_DOORBELLS; i++) {
		mic_irq_ack(f->h, i);
		mic_irq_ack(&f->c, i);
	}
}

/*
 * What the original COPY_DESC call did, built the way a backend uses the
 * host's ring API: takes the next chain of vring vr_idx, copies its readable
 * bytes into iov if it has any, else iov into its writable bytes, completes
 * it and signals the card.  Returns 0, -EAGAIN (no chain) or the API's
 * error.  Same fields as the former struct mic_vop_copy_desc; update_used
 * must be set (no chain is held between calls).
 */
struct fx_copy_desc {
	const struct iovec *iov;
	int iovcnt;
	unsigned vr_idx;
	int update_used;
	uint32_t out_len;
};

static inline int fx_copy_desc(struct mic_vop_host_dev *d, struct fx_copy_desc *cd)
{
	static struct mic_vop_chain c; /* large; tests run one at a time */
	cd->out_len = 0;
	assert_true(cd->update_used);
	int r = mic_vop_host_vq_get(d, cd->vr_idx, &c);
	if (r <= 0)
		return r ? r : -EAGAIN;
	ssize_t n = c.read_len ? mic_vop_host_chain_pull(d, &c, cd->iov, cd->iovcnt) :
				 mic_vop_host_chain_push(d, &c, cd->iov, cd->iovcnt);
	if (n < 0)
		return (int)n;
	cd->out_len = (uint32_t)n;
	if ((r = mic_vop_host_vq_put(d, &c)))
		return r;
	mic_vop_host_vq_notify(d, cd->vr_idx);
	return 0;
}

#endif
