/* SPDX-License-Identifier: MIT */
/* Device page: byte layout, building and parsing, config change, removal. */
#include <fcntl.h>

#include "vop_fixture.h"

#include "vop/dp.h"

static uint64_t rd(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	memcpy(&v, p, n); /* little-endian host */
	return v;
}

static void abi_offsets(void **state)
{
	(void)state;
	assert_int_equal(MIC_DP_FIRST_DEV, 16);
	assert_int_equal(offsetof(struct mic_dp_hdr, h2c_config_db), 6);
	assert_int_equal(offsetof(struct mic_device_ctrl, h2c_vdev_db), 14);
	/* console: 2 vqs, 8 feature bytes, 12 config bytes */
	assert_int_equal(mic_dp_vq_off(0), 8);
	assert_int_equal(mic_dp_vq_off(1), 32);
	assert_int_equal(mic_dp_host_feat_off(2), 56);
	assert_int_equal(mic_dp_guest_feat_off(2, 8), 64);
	assert_int_equal(mic_dp_config_off(2, 8), 72);
	assert_int_equal(mic_dp_desc_size(2, 8, 12), 84);
	assert_int_equal(mic_dp_ctrl_off(2, 8, 12), 88);
	assert_int_equal(mic_dp_total_size(2, 8, 12), 104);
	assert_int_equal(mic_dp_total_size(4, 8, 0), 8 + 96 + 16 + 16);
	/* ring geometry, 128 entries at 4 KiB alignment */
	assert_int_equal(mic_vring_avail_off(128), 2048);
	assert_int_equal(mic_vring_used_off(128), 4096);
	assert_int_equal(mic_vring_size(128), 4096 + 6 + 8 * 128);
}

static void page_bytes_after_add(void **state)
{
	struct fx *f = *state;
	uint8_t *dp = mic_vop_host_dp(f->vh);
	assert_int_equal(rd(dp, 4), MIC_DP_MAGIC);
	assert_int_equal((int8_t)dp[6], MIC_DB_CONFIG);
	uint64_t a = mic_vop_host_dp_card_addr(f->vh);
	assert_int_equal(a, MIC_SYSMEM_BASE + FX_POOL_OFF);
	assert_int_equal(mic_spad_read(&f->c, MIC_SPAD_DP_LO), (uint32_t)a);
	assert_int_equal(mic_spad_read(&f->c, MIC_SPAD_DP_HI), (uint32_t)(a >> 32));
	assert_ptr_equal(mic_sysmem(&f->c, a, MIC_DP_SIZE), dp);

	struct mic_vop_dev_template t = fx_console_tmpl();
	uint8_t cfg[12] = { 80, 0, 25, 0, 1, 0, 0, 0, 9, 9, 9, 9 };
	t.config = cfg;
	struct mic_vop_host_dev *d;
	assert_int_equal(mic_vop_host_add_device(f->vh, &t, &d), 0);
	const uint8_t *b = dp + 16;
	assert_int_equal(mic_vop_host_dev_offset(d), 16);
	assert_int_equal((int8_t)b[0], VIRTIO_ID_CONSOLE);
	assert_int_equal(b[1], 2);
	assert_int_equal(b[2], 8);
	assert_int_equal(b[3], 12);
	assert_int_equal(b[4], 0); /* status */
	for (unsigned i = 0; i < 2; i++) {
		const uint8_t *vq = b + 8 + 24 * i;
		uint64_t addr = rd(vq, 8), used = rd(vq + 8, 8);
		assert_true(addr > a && addr % 4096 == 0);
		assert_int_equal(used, addr + 4096);
		assert_int_equal(rd(vq + 16, 2), 128);
		assert_non_null(mic_sysmem(&f->c, addr, mic_vring_size(128)));
	}
	uint64_t hf = rd(b + 56, 8);
	assert_int_equal(hf, MIC_VOP_TRANSPORT_FEATURES | 1);
	assert_int_equal(rd(b + 64, 8), 0); /* guest features */
	assert_memory_equal(b + 72, cfg, 12);
	assert_int_equal(rd(b + 88, 8), 0);              /* ctrl.vdev */
	assert_int_equal((int8_t)b[88 + 13], MIC_DB_C2H_VDEV0);
	assert_int_equal((int8_t)b[88 + 14], -1);        /* h2c db: card's */
	assert_int_equal(b[104], 0);                     /* end of list */
	assert_int_equal(mic_vop_host_dev_c2h_db(d), MIC_DB_C2H_VDEV0);
	assert_int_equal(mic_vop_host_remove_device(f->vh, d, 0), 0);
	assert_int_equal((int8_t)b[0], -1);
}

static void add_find_parse_remove(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template con = fx_console_tmpl();
	struct mic_vop_dev_template net = { .type = VIRTIO_ID_NET, .num_vq = 2,
					    .vq_num = { 128, 64 },
					    .features = MIC_VOP_TRANSPORT_FEATURES, .config_len = 10 };
	struct mic_vop_dev_template blkt = { .type = VIRTIO_ID_BLOCK, .num_vq = 1,
					     .vq_num = { 128 },
					     .features = MIC_VOP_TRANSPORT_FEATURES,
					     .config_len = 60 };
	struct mic_vop_host_dev *dc, *dn, *db, *dc2;
	assert_int_equal(mic_vop_host_add_device(f->vh, &con, &dc), 0);
	assert_int_equal(mic_vop_host_add_device(f->vh, &net, &dn), 0);
	assert_int_equal(mic_vop_host_add_device(f->vh, &blkt, &db), 0);
	assert_int_equal(mic_vop_host_add_device(f->vh, &con, &dc2), 0);
	assert_ptr_equal(mic_vop_host_find(f->vh, VIRTIO_ID_CONSOLE, 0), dc);
	assert_ptr_equal(mic_vop_host_find(f->vh, VIRTIO_ID_CONSOLE, 1), dc2);
	assert_ptr_equal(mic_vop_host_find(f->vh, VIRTIO_ID_NET, 0), dn);
	assert_null(mic_vop_host_find(f->vh, VIRTIO_ID_NET, 1));
	assert_int_not_equal(mic_vop_host_dev_c2h_db(dc), mic_vop_host_dev_c2h_db(dn));

	/* The shared parser sees what the host built. */
	size_t off = MIC_DP_FIRST_DEV;
	struct mic_dp_dev info;
	int8_t types[4];
	unsigned n = 0;
	const char *why = NULL;
	int r;
	while ((r = mic_dp_next(mic_vop_host_dp(f->vh), MIC_DP_SIZE, &off, &info, &why)) == 1)
		types[n++] = info.type;
	assert_int_equal(r, 0);
	assert_int_equal(n, 4);
	assert_int_equal(types[1], VIRTIO_ID_NET);
	assert_int_equal(types[2], VIRTIO_ID_BLOCK);

	assert_int_equal(mic_vop_card_scan(f->vc), 4);
	struct mic_vop_cdev *cn = mic_vop_card_find(f->vc, VIRTIO_ID_NET, 0);
	assert_non_null(cn);
	assert_int_equal(mic_vop_cdev_num_vq(cn), 2);

	/* Removal of a device the card does not drive needs no ack. */
	assert_int_equal(mic_vop_host_remove_device(f->vh, dn, 100), 0);
	assert_null(mic_vop_host_find(f->vh, VIRTIO_ID_NET, 0));
	assert_int_equal(mic_vop_card_scan(f->vc), 4);
	assert_true(mic_vop_cdev_removed(cn));
	assert_null(mic_vop_card_find(f->vc, VIRTIO_ID_NET, 0));
	/* Same size again: the slot is reused; the card sees a new device. */
	assert_int_equal(mic_vop_host_add_device(f->vh, &net, &dn), 0);
	assert_int_equal(mic_vop_card_scan(f->vc), 5);
	assert_non_null(mic_vop_card_find(f->vc, VIRTIO_ID_NET, 0));

	/* Bad templates. */
	struct mic_vop_dev_template bad = con;
	bad.vq_num[1] = 100;
	assert_int_equal(mic_vop_host_add_device(f->vh, &bad, &dc), -EINVAL);
	bad = con;
	bad.num_vq = 5;
	assert_int_equal(mic_vop_host_add_device(f->vh, &bad, &dc), -EINVAL);
	bad = con;
	bad.config_len = 250;
	assert_int_equal(mic_vop_host_add_device(f->vh, &bad, &dc), -EINVAL);
}

static void page_fills_up(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = { .type = VIRTIO_ID_CONSOLE, .num_vq = 1,
					  .vq_num = { 1 }, .features = MIC_VOP_TRANSPORT_FEATURES };
	struct mic_vop_host_dev *d;
	int n = 0, r;
	while ((r = mic_vop_host_add_device(f->vh, &t, &d)) == 0)
		n++;
	assert_int_equal(r, -ENOSPC);
	assert_true(n > 50);
	assert_int_equal(mic_vop_card_scan(f->vc), n);
}

static void parser_rejects(void **state)
{
	(void)state;
	uint8_t page[MIC_DP_SIZE];
	struct mic_dp_dev info;
	const char *why = NULL;
	size_t off;
	memset(page, 0, sizeof(page));
	struct mic_device_desc *d = (void *)(page + 16);
	d->type = 3;
	d->num_vq = 5;
	off = 16;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), -1);
	assert_non_null(why);
	d->num_vq = 1;
	d->feature_len = 200; /* block > 256 bytes */
	off = 16;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), -1);
	d->feature_len = 8;
	struct mic_vqconfig *vq = (void *)(page + 24);
	vq->num = 100;
	off = 16;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), -1);
	vq->num = 64;
	vq->address = 4096 * 7;
	off = 16;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), 1);
	assert_int_equal(off, 16 + mic_dp_total_size(1, 8, 0));
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), 0);
	/* A block crossing the end of the page. */
	memmove(page + MIC_DP_SIZE - 40, page + 16, 8 + 24);
	off = MIC_DP_SIZE - 40;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), -1);
	off = 17;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), -1);
	off = MIC_DP_SIZE;
	assert_int_equal(mic_dp_next(page, sizeof(page), &off, &info, &why), 0);
}

static unsigned cfg_events;
static void on_cfg(void *ctx, struct mic_vop_cdev *d, unsigned ev)
{
	(void)d;
	*(unsigned *)ctx |= ev;
}

static void config_change_and_remove(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ~0ull, 0, &x);
	fx_drain_irqs(f);
	uint8_t cfg[4] = { 132, 0, 43, 0 };
	/* Nobody answers: times out. */
	assert_int_equal(mic_vop_host_dev_config_change(x.hd, cfg, 4, 5), -ETIMEDOUT);
	assert_int_equal(mic_irq_ack(&f->c, MIC_DB_CONFIG), 1);
	cfg_events = 0;
	assert_true(mic_vop_card_config_irq(f->vc, on_cfg, &cfg_events) >= 1);
	assert_int_equal(cfg_events, MIC_VOP_CFG_CHANGED);
	uint8_t got[4];
	assert_int_equal(mic_vop_cdev_read_config(x.cd, 0, got, 4), 0);
	assert_memory_equal(got, cfg, 4);
	assert_int_equal(mic_vop_host_dev_config_wait(x.hd, 100), 0);
	/* Non-blocking form. */
	cfg[0] = 7;
	assert_int_equal(mic_vop_host_dev_config_change(x.hd, cfg, 4, 0), 0);
	cfg_events = 0;
	mic_vop_card_config_irq(f->vc, on_cfg, &cfg_events);
	assert_int_equal(cfg_events, MIC_VOP_CFG_CHANGED);
	assert_int_equal(mic_vop_host_dev_config_wait(x.hd, 100), 0);
	assert_int_equal(mic_vop_host_dev_config_change(x.hd, cfg, 13, 0), -EINVAL);

	/* The card drives it, so removal asks; nobody acks in this thread. */
	assert_int_equal(mic_vop_host_remove_device(f->vh, x.hd, 5), -ETIMEDOUT);
	cfg_events = 0;
	mic_vop_card_config_irq(f->vc, on_cfg, &cfg_events);
	assert_true(cfg_events & MIC_VOP_CFG_REMOVED);
	assert_true(mic_vop_cdev_removed(x.cd));
}

/* The host changes the config again just after the card's driver read the
 * previous change (a console resized twice in a row): the second change
 * must reach the driver at its doorbell, not be taken as acknowledged. */
struct cfg_racer {
	struct mic_vop_host_dev *hd;
	uint8_t seen[4];
	int calls;
};

static void on_cfg_race(void *ctx, struct mic_vop_cdev *d, unsigned ev)
{
	struct cfg_racer *r = ctx;
	(void)ev;
	assert_int_equal(mic_vop_cdev_read_config(d, 0, r->seen, 4), 0);
	if (r->calls++ == 0) {
		uint8_t second[4] = { 120, 0, 40, 0 };
		assert_int_equal(mic_vop_host_dev_config_change(r->hd, second, 4, 0), 0);
	}
}

static void config_change_during_read(void **state)
{
	struct fx *f = *state;
	struct mic_vop_dev_template t = fx_console_tmpl();
	struct fx_dev x;
	fx_bring_up(f, &t, ~0ull, 0, &x);
	fx_drain_irqs(f);
	uint8_t first[4] = { 100, 0, 30, 0 }, second[4] = { 120, 0, 40, 0 };
	assert_int_equal(mic_vop_host_dev_config_change(x.hd, first, 4, 0), 0);
	struct cfg_racer r = { .hd = x.hd };
	assert_int_equal(mic_irq_ack(&f->c, MIC_DB_CONFIG), 1);
	mic_vop_card_config_irq(f->vc, on_cfg_race, &r);
	assert_memory_equal(r.seen, first, 4);
	assert_int_equal(mic_irq_ack(&f->c, MIC_DB_CONFIG), 1); /* the second change's */
	mic_vop_card_config_irq(f->vc, on_cfg_race, &r);
	assert_int_equal(r.calls, 2);
	assert_memory_equal(r.seen, second, 4);
	assert_int_equal(mic_vop_host_dev_config_wait(x.hd, 100), 0);
}

static void card_open_needs_page(void **state)
{
	struct fx *f = *state;
	struct mic_vop_card *c;
	mic_spad_write(f->h, MIC_SPAD_DP_HI, 0);
	assert_int_equal(mic_vop_card_open(&f->c, NULL, &c), -ENODEV);
	mic_vop_host_publish(f->vh);
	assert_int_equal(mic_vop_card_open(&f->c, NULL, &c), 0);
	mic_vop_card_close(c);
}

/* A card holds its pool's memfd: it may punch the pool out or fill it with
 * garbage.  A reset must rebuild the page and rings from the host's own
 * copy alone, byte for byte, config space included. */
static void reset_rebuilds_destroyed_pool(void **state)
{
	struct fx *f = *state;
	uint8_t *dp = mic_vop_host_dp(f->vh);
	struct mic_vop_dev_template t = fx_console_tmpl();
	uint8_t ccfg[12] = { 80, 0, 25, 0, 1, 0, 0, 0, 0, 0, 0, 0 };
	t.config = ccfg;
	struct fx_dev x;
	fx_bring_up(f, &t, ~0ull, 0, &x);
	struct mic_vop_dev_template gone = fx_console_tmpl(), net = fx_console_tmpl();
	gone.num_vq = 1;
	struct mic_vop_host_dev *g, *n;
	assert_int_equal(mic_vop_host_add_device(f->vh, &gone, &g), 0);
	assert_int_equal(mic_vop_host_remove_device(f->vh, g, 0), 0);
	uint8_t mac[6] = { 2, 0, 0x6d, 0x69, 0x63, 1 };
	net.type = VIRTIO_ID_NET;
	net.config_len = sizeof(mac);
	net.config = mac;
	assert_int_equal(mic_vop_host_add_device(f->vh, &net, &n), 0);
	size_t noff = mic_vop_host_dev_offset(n), nsz = mic_dp_total_size(2, 8, sizeof(mac));
	uint8_t net_fresh[256];
	memcpy(net_fresh, dp + noff, nsz);
	uint8_t size[4] = { 132, 0, 43, 0 }; /* the host's config moves on */
	assert_int_equal(mic_vop_host_dev_config_change(x.hd, size, 4, 0), 0);
	struct vring *vr = mic_vop_vq_vring(x.q[1]);
	size_t ring_len = mic_vring_size(vr->num);
	memset(vr->desc, 0x11, ring_len); /* the card's own use of the ring */

	mic_vop_host_reset(f->vh);
	static uint8_t pristine[MIC_DP_SIZE], zero[8192];
	memcpy(pristine, dp, MIC_DP_SIZE);
	assert_memory_equal(dp + noff, net_fresh, nsz);
	assert_memory_equal((uint8_t *)vr->desc, zero, ring_len);

	assert_int_equal(fallocate(f->h->hostmem.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				   (off_t)f->h->hostmem.size), 0);
	assert_int_equal(rd(dp, 4), 0);
	memset((uint8_t *)f->h->hostmem.va + FX_POOL_OFF, 0xa5, FX_POOL_SIZE);
	mic_vop_host_dev_poll(x.hd);
	assert_true(mic_vop_host_dev_broken(x.hd, NULL));

	mic_vop_host_reset(f->vh);
	assert_memory_equal(dp, pristine, MIC_DP_SIZE);
	assert_memory_equal((uint8_t *)vr->desc, zero, ring_len);
	assert_false(mic_vop_host_dev_broken(x.hd, NULL));
	assert_false(mic_vop_host_dev_ready(x.hd));
	assert_int_equal(mic_spad_read(&f->c, MIC_SPAD_DP_LO), (uint32_t)mic_vop_host_dp_card_addr(f->vh));

	/* What a booting card OS sees: the same devices, the host's config,
	 * the removed block skipped, nothing after the last block. */
	struct mic_vop_card *c;
	assert_int_equal(mic_vop_card_open(&f->c, NULL, &c), 0);
	assert_int_equal(mic_vop_card_scan(c), 2); /* the removed block is not counted */
	struct mic_vop_cdev *cd = mic_vop_card_find(c, VIRTIO_ID_CONSOLE, 0);
	struct mic_vop_cdev *nd = mic_vop_card_find(c, VIRTIO_ID_NET, 0);
	assert_non_null(cd);
	assert_non_null(nd);
	uint8_t got[12];
	memcpy(ccfg, size, sizeof(size));
	assert_int_equal(mic_vop_cdev_read_config(cd, 0, got, 12), 0);
	assert_memory_equal(got, ccfg, 12);
	assert_int_equal(mic_vop_cdev_read_config(nd, 0, got, 6), 0);
	assert_memory_equal(got, mac, 6);
	struct mic_vop_vq *q[2];
	assert_int_equal(mic_vop_cdev_negotiate(cd, ~0ull, NULL), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(cd, 0, 0, &q[0]), 0);
	assert_int_equal(mic_vop_cdev_setup_vq(cd, 1, 0, &q[1]), 0);
	assert_int_equal(mic_vop_cdev_driver_ok(cd), 0);
	assert_true(mic_vop_host_dev_poll(x.hd) & MIC_VOP_EV_READY);
	mic_vop_card_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(abi_offsets),
		cmocka_unit_test_setup_teardown(page_bytes_after_add, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(add_find_parse_remove, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(page_fills_up, fx_setup, fx_teardown),
		cmocka_unit_test(parser_rejects),
		cmocka_unit_test_setup_teardown(config_change_and_remove, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(config_change_during_read, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(card_open_needs_page, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(reset_rebuilds_destroyed_pool, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
