/* SPDX-License-Identifier: MIT */
/*
 * The device page and each device's control block (see vop_host.h): the
 * host's pool of 4 KiB pages for the page and the vrings, the blocks it
 * writes from its own copy, and the checks of what the card may and may
 * not change there.  The queues themselves are vop_ring.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vop_host_int.h"

void vop_mark_broken(struct mic_vop_host_dev *d, const char *fmt, ...)
{
	if (d->broken)
		return; /* keep the first reason: later ones are consequences */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
	va_end(ap);
	d->broken = true;
	/* Tells a cooperative driver why its device stopped (virtio 1.x). */
	struct mic_device_desc *dd = ddesc(d);
	shm_or8(&dd->status, VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* --- pool --- */

static int pool_alloc(struct mic_vop_host *h, size_t pages, uint64_t *off)
{
	for (size_t i = 0; i + pages <= h->npages; i++) {
		size_t j = 0;
		while (j < pages && !h->page_used[i + j])
			j++;
		if (j == pages) {
			memset(h->page_used + i, 1, pages);
			*off = h->pool_off + (i * PAGE);
			memset((uint8_t *)h->v->hostmem.va + *off, 0, pages * PAGE);
			return 0;
		}
		i += j;
	}
	return -ENOSPC;
}

static void pool_free(struct mic_vop_host *h, uint64_t off, size_t pages)
{
	memset(h->page_used + (off - h->pool_off) / PAGE, 0, pages);
}

/* --- per card --- */

static void write_header(struct mic_vop_host *h)
{
	memset(h->dp, 0, MIC_DP_FIRST_DEV);
	struct mic_dp_hdr *hdr = (void *)h->dp;
	hdr->c2h_shutdown_db = -1;
	hdr->h2c_shutdown_db = -1;
	hdr->h2c_config_db = MIC_DB_CONFIG;
	shm_st32(&hdr->magic, MIC_DP_MAGIC);
}

static void write_block(struct mic_vop_host_dev *d);
static void reset_state(struct mic_vop_host_dev *d);

int mic_vop_host_create(struct mic_hw_view *v, uint64_t pool_off, uint64_t pool_size,
			struct mic_vop_host **out)
{
	if (!v || v->side != MIC_SIDE_HOST || pool_off % PAGE || pool_size < 2 * PAGE ||
	    pool_off > v->hostmem.size || pool_size > v->hostmem.size - pool_off)
		return -EINVAL;
	struct mic_vop_host *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->v = v;
	h->pool_off = pool_off;
	h->pool_size = pool_size;
	h->npages = pool_size / PAGE;
	h->page_used = calloc(h->npages, 1);
	if (!h->page_used) {
		free(h);
		return -ENOMEM;
	}
	h->page_used[0] = 1;
	h->dp = (uint8_t *)v->hostmem.va + pool_off;
	memset(h->dp, 0, MIC_DP_SIZE);
	h->end = MIC_DP_FIRST_DEV;
	write_header(h);
	mic_vop_host_publish(h);
	*out = h;
	return 0;
}

void mic_vop_host_destroy(struct mic_vop_host *h)
{
	if (!h)
		return;
	for (unsigned i = 0; i < h->ndev; i++)
		free(h->dev[i]);
	free(h->page_used);
	free(h);
}

void mic_vop_host_publish(struct mic_vop_host *h)
{
	uint32_t e = MIC_SMPT_ENTRY(MIC_HOSTMEM_BUS_BASE);
	if (mic_mmio_read32(h->v, MIC_SMPT(0)) != e)
		mic_mmio_write32(h->v, MIC_SMPT(0), e);
	uint64_t a = mic_vop_host_dp_card_addr(h);
	mic_spad_write(h->v, MIC_SPAD_DP_LO, (uint32_t)a);
	mic_spad_write(h->v, MIC_SPAD_DP_HI, (uint32_t)(a >> 32));
}

void mic_vop_host_reset(struct mic_vop_host *h)
{
	write_header(h);
	for (unsigned i = 0; i < h->ndev; i++) {
		struct mic_vop_host_dev *d = h->dev[i];
		if (d->live) {
			reset_state(d);
		} else {
			/* The card's scan must still be able to step over it. */
			write_block(d);
			shm_st8(&ddesc(d)->type, (uint8_t)MIC_DP_TYPE_REMOVED);
		}
	}
	/* A type-0 byte right after the last block ends the card's list. */
	memset(h->dp + h->end, 0, MIC_DP_SIZE - h->end);
	mic_vop_host_publish(h);
}

uint64_t mic_vop_host_dp_card_addr(const struct mic_vop_host *h)
{
	return sys_addr(h->pool_off);
}

void *mic_vop_host_dp(const struct mic_vop_host *h)
{
	return h->dp;
}

void mic_vop_host_notify_config(struct mic_vop_host *h)
{
	mic_doorbell_ring(h->v, MIC_DB_CONFIG);
}

static void vq_layout(struct mic_vop_host_dev *d, unsigned i)
{
	struct hvq *q = &d->vq[i];
	q->ring = (uint8_t *)d->h->v->hostmem.va + q->pool_off;
	q->pool_used = q->ring + mic_vring_used_off(q->num);
	q->used = q->pool_used;
}

/* Puts the host-owned fields of the block back to their pristine state. */
static void write_block(struct mic_vop_host_dev *d)
{
	uint8_t *b = blk(d);
	size_t sz = mic_dp_total_size(d->num_vq, d->feature_len, d->config_len);
	/* type stays as it is until the caller publishes it */
	memset(b + 1, 0, sz - 1);
	struct mic_device_desc *dd = ddesc(d);
	dd->num_vq = d->num_vq;
	dd->feature_len = d->feature_len;
	dd->config_len = d->config_len;
	for (unsigned i = 0; i < d->num_vq; i++) {
		struct mic_vqconfig *vc = dvq(d, i);
		vc->address = sys_addr(d->vq[i].pool_off);
		vc->used_address = sys_addr(d->vq[i].pool_off + mic_vring_used_off(d->vq[i].num));
		vc->num = d->vq[i].num;
	}
	shm_features_put(b + mic_dp_host_feat_off(d->num_vq), d->feature_len, d->host_features);
	memcpy(dconfig(d), d->config, d->config_len);
	struct mic_device_ctrl *c = dctrl(d);
	c->c2h_vdev_db = (int8_t)d->c2h_db;
	c->h2c_vdev_db = -1;
}

static bool template_ok(const struct mic_vop_dev_template *t)
{
	if (!t || t->type <= 0 || t->num_vq == 0 || t->num_vq > MIC_MAX_VRINGS)
		return false;
	for (unsigned i = 0; i < t->num_vq; i++)
		if (!mic_dp_vq_num_ok(t->vq_num[i]))
			return false;
	return mic_dp_total_size(t->num_vq, MIC_VOP_FEATURE_LEN, t->config_len) <=
	       MIC_MAX_DESC_BLK_SIZE;
}

int mic_vop_host_add_device(struct mic_vop_host *h, const struct mic_vop_dev_template *t,
			    struct mic_vop_host_dev **out)
{
	if (!template_ok(t))
		return -EINVAL;
	size_t sz = mic_dp_total_size(t->num_vq, MIC_VOP_FEATURE_LEN, t->config_len);
	struct mic_vop_host_dev *slot = NULL;
	bool appended = false;
	/* Reuse a removed block of the same size (card reboots re-add devices),
	 * else append. */
	for (unsigned i = 0; i < h->ndev && !slot; i++) {
		struct mic_vop_host_dev *o = h->dev[i];
		if (!o->live && mic_dp_total_size(o->num_vq, o->feature_len, o->config_len) == sz)
			slot = o;
	}
	if (!slot) {
		if (h->ndev == MAX_DEVS || sz > MIC_DP_SIZE - h->end)
			return -ENOSPC;
		slot = calloc(1, sizeof(*slot));
		if (!slot)
			return -ENOMEM;
		slot->off = h->end;
		h->end += sz;
		h->dev[h->ndev++] = slot;
		appended = true;
	}
	struct mic_vop_host_dev *d = slot;
	size_t off = d->off;
	memset(d, 0, sizeof(*d));
	d->h = h;
	d->off = off;
	d->type = t->type;
	d->num_vq = t->num_vq;
	d->feature_len = MIC_VOP_FEATURE_LEN;
	d->config_len = t->config_len;
	uint64_t transport_mask = ((1ull << (VIRTIO_TRANSPORT_F_END - VIRTIO_TRANSPORT_F_START)) - 1)
				  << VIRTIO_TRANSPORT_F_START;
	d->host_features = (t->features & ~transport_mask) |
			   (t->features & MIC_VOP_TRANSPORT_FEATURES);
	d->max_chain = MIC_VOP_DEF_MAX_CHAIN;
	d->h2c_db = -1;
	unsigned idx = 0;
	for (unsigned i = 0; i < h->ndev && h->dev[i] != d; i++)
		idx++;
	d->c2h_db = MIC_DB_C2H_VDEV0 + idx % (MIC_NUM_DOORBELLS - MIC_DB_C2H_VDEV0);
	for (unsigned i = 0; i < d->num_vq; i++) {
		struct hvq *q = &d->vq[i];
		q->num = t->vq_num[i];
		q->pool_pages = (mic_vring_size(q->num) + PAGE - 1) / PAGE;
		if (pool_alloc(h, q->pool_pages, &q->pool_off)) {
			for (unsigned j = 0; j < i; j++)
				pool_free(h, d->vq[j].pool_off, d->vq[j].pool_pages);
			if (appended) { /* a type-0 hole would end the card's list */
				h->end -= sz;
				h->dev[--h->ndev] = NULL;
				free(d);
			}
			return -ENOSPC; /* a reused slot stays removed */
		}
		vq_layout(d, i);
	}
	if (t->config)
		memcpy(d->config, t->config, t->config_len);
	write_block(d);
	d->live = true;
	/* The card may scan at any time: the block must be complete before it
	 * can see a type that is not END/REMOVED. */
	atomic_thread_fence(memory_order_release);
	shm_st8(&ddesc(d)->type, (uint8_t)d->type);
	*out = d;
	return 0;
}

struct mic_vop_host_dev *mic_vop_host_find(struct mic_vop_host *h, int8_t type, unsigned nth)
{
	for (unsigned i = 0; i < h->ndev; i++)
		if (h->dev[i]->live && h->dev[i]->type == type && nth-- == 0)
			return h->dev[i];
	return NULL;
}

static int wait_guest_ack(struct mic_vop_host_dev *d, int timeout_ms)
{
	struct mic_device_ctrl *c = dctrl(d);
	for (int waited = 0;; waited++) {
		if (shm_ld8(&c->guest_ack)) {
			shm_st8(&c->config_change, 0);
			shm_st8(&c->guest_ack, 0);
			return 0;
		}
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		sleep_ms(1);
	}
}

int mic_vop_host_remove_device(struct mic_vop_host *h, struct mic_vop_host_dev *d,
			       int timeout_ms)
{
	if (!d || !d->live || d->h != h)
		return -EINVAL;
	struct mic_device_ctrl *c = dctrl(d);
	shm_st8(&c->guest_ack, 0);
	int r = 0;
	if (shm_ld64(&c->vdev)) { /* only a card that drives it can ack */
		atomic_thread_fence(memory_order_release);
		shm_st8(&c->config_change, MIC_VIRTIO_PARAM_DEV_REMOVE);
		mic_doorbell_ring(h->v, MIC_DB_CONFIG);
		r = wait_guest_ack(d, timeout_ms);
	}
	shm_st8(&ddesc(d)->type, (uint8_t)MIC_DP_TYPE_REMOVED);
	for (unsigned i = 0; i < d->num_vq; i++)
		pool_free(h, d->vq[i].pool_off, d->vq[i].pool_pages);
	d->live = false;
	return r;
}

/* --- per device --- */

int8_t mic_vop_host_dev_type(const struct mic_vop_host_dev *d)
{
	return d->type;
}

unsigned mic_vop_host_dev_c2h_db(const struct mic_vop_host_dev *d)
{
	return d->c2h_db;
}

size_t mic_vop_host_dev_offset(const struct mic_vop_host_dev *d)
{
	return d->off;
}

void mic_vop_host_dev_set_copy(struct mic_vop_host_dev *d, mic_vop_copy_fn fn, void *ctx)
{
	d->copy = fn;
	d->copy_ctx = ctx;
}

void mic_vop_host_dev_set_reset_hook(struct mic_vop_host_dev *d, void (*fn)(void *ctx), void *ctx)
{
	d->before_reset = fn;
	d->reset_ctx = ctx;
}

int mic_vop_host_dev_set_features(struct mic_vop_host_dev *d, uint64_t features)
{
	if (!d->live)
		return -EINVAL;
	uint64_t transport_mask = ((1ull << (VIRTIO_TRANSPORT_F_END - VIRTIO_TRANSPORT_F_START)) - 1)
				  << VIRTIO_TRANSPORT_F_START;
	d->host_features = (features & ~transport_mask) | (features & MIC_VOP_TRANSPORT_FEATURES);
	shm_features_put(blk(d) + mic_dp_host_feat_off(d->num_vq), d->feature_len, d->host_features);
	return 0;
}

void mic_vop_host_dev_set_max_chain(struct mic_vop_host_dev *d, uint32_t bytes)
{
	d->max_chain = bytes;
}

bool mic_vop_host_dev_broken(const struct mic_vop_host_dev *d, const char **reason)
{
	if (reason)
		*reason = d->broken ? d->reason : NULL;
	return d->broken;
}

uint64_t mic_vop_host_dev_features(const struct mic_vop_host_dev *d)
{
	return d->features;
}

/* The card may scribble on fields it does not own; the host never uses
 * them, but a card that does so has a driver that cannot be trusted with
 * the device any more. */
static bool check_tamper(struct mic_vop_host_dev *d)
{
	struct mic_device_desc *dd = ddesc(d);
	if ((int8_t)shm_ld8(&dd->type) != d->type)
		vop_mark_broken(d, "device page: type changed by card");
	else if (shm_ld8(&dd->num_vq) != d->num_vq || shm_ld8(&dd->feature_len) != d->feature_len ||
		 shm_ld8(&dd->config_len) != d->config_len)
		vop_mark_broken(d, "device page: descriptor counts changed by card");
	else
		for (unsigned i = 0; i < d->num_vq; i++) {
			struct mic_vqconfig *vc = dvq(d, i);
			if (shm_ld16(&vc->num) != d->vq[i].num ||
			    shm_ld64(&vc->address) != sys_addr(d->vq[i].pool_off)) {
				vop_mark_broken(d, "device page: vring %u num/address changed by card", i);
				break;
			}
		}
	return !d->broken;
}

static void latch_used_moves(struct mic_vop_host_dev *d)
{
	struct mic_device_ctrl *c = dctrl(d);
	if (!shm_ld8(&c->used_address_updated))
		return;
	for (unsigned i = 0; i < d->num_vq; i++) {
		struct hvq *q = &d->vq[i];
		uint64_t ua = shm_ld64(&dvq(d, i)->used_address);
		if (ua == sys_addr(q->pool_off + mic_vring_used_off(q->num)))
			continue;
		/* Only card memory: letting the card aim host writes anywhere in
		 * the host pool would let it corrupt other rings or the page. */
		uint8_t *p = ua % 4 ? NULL : mic_cardmem(d->h->v, ua, mic_vring_used_size(q->num));
		if (!p) {
			vop_mark_broken(d, "vring %u: used ring moved outside card memory (0x%llx)", i,
				    (unsigned long long)ua);
			return;
		}
		q->used = p;
	}
	shm_st8(&c->used_address_updated, 0);
}

static void try_latch(struct mic_vop_host_dev *d)
{
	if (d->ready || d->broken)
		return;
	uint8_t st = shm_ld8(&ddesc(d)->status);
	if (!(st & VIRTIO_CONFIG_S_DRIVER_OK) || (st & VIRTIO_CONFIG_S_FAILED))
		return;
	/* The card wrote features, doorbell and used address before DRIVER_OK. */
	atomic_thread_fence(memory_order_acquire);
	uint64_t gf = shm_features_get(blk(d) + mic_dp_guest_feat_off(d->num_vq, d->feature_len),
				       d->feature_len);
	if (gf & ~d->host_features) {
		vop_mark_broken(d, "card acknowledged features not offered (0x%llx)",
			    (unsigned long long)(gf & ~d->host_features));
		return;
	}
	if (!(gf & (1ull << VIRTIO_F_VERSION_1))) {
		vop_mark_broken(d, "card did not accept VIRTIO_F_VERSION_1");
		return;
	}
	int8_t db = (int8_t)shm_ld8(&dctrl(d)->h2c_vdev_db);
	if (db < -1 || db >= MIC_NUM_DOORBELLS) {
		vop_mark_broken(d, "bad h2c doorbell %d", db);
		return;
	}
	latch_used_moves(d);
	if (d->broken)
		return;
	d->features = gf;
	d->h2c_db = db;
	d->ready = true;
}

static void reset_state(struct mic_vop_host_dev *d)
{
	/* Whoever else reads or writes the rings lets go of them first. */
	if (d->before_reset)
		d->before_reset(d->reset_ctx);
	for (unsigned i = 0; i < d->num_vq; i++) {
		struct hvq *q = &d->vq[i];
		memset(q->ring, 0, q->pool_pages * PAGE);
		q->used = q->pool_used;
		q->last_avail = q->used_idx = q->signalled_used = 0;
		q->signalled_valid = q->notify_disabled = false;
	}
	d->ready = false;
	d->features = 0;
	d->h2c_db = -1;
	d->broken = false;
	d->reason[0] = 0;
	/* From the host's copy only, config space included: whatever the card
	 * left in the block (or the pool) may be garbage. */
	write_block(d);
	shm_st8(&ddesc(d)->type, (uint8_t)d->type);
}

void mic_vop_host_dev_reset(struct mic_vop_host_dev *d)
{
	if (d->live)
		reset_state(d);
}

int mic_vop_host_dev_poll(struct mic_vop_host_dev *d)
{
	int ev = 0;
	if (!d->live)
		return 0;
	struct mic_device_ctrl *c = dctrl(d);
	/* A reset request clears "broken": that is how a card recovers. */
	if (shm_ld8(&c->vdev_reset) && !shm_ld8(&c->host_ack)) {
		reset_state(d);
		shm_st8(&c->host_ack, 1);
		ev |= MIC_VOP_EV_RESET;
	}
	if (check_tamper(d)) {
		bool was = d->ready;
		try_latch(d);
		if (!was && d->ready)
			ev |= MIC_VOP_EV_READY;
	}
	if (d->broken)
		ev |= MIC_VOP_EV_BROKEN;
	return ev;
}

bool mic_vop_host_dev_ready(const struct mic_vop_host_dev *d)
{
	return d->ready && !d->broken;
}

int mic_vop_host_dev_config_change(struct mic_vop_host_dev *d, const void *cfg, size_t len,
				   int timeout_ms)
{
	if (!d->live || len > d->config_len)
		return -EINVAL;
	struct mic_device_ctrl *c = dctrl(d);
	memcpy(d->config, cfg, len);
	memcpy(dconfig(d), cfg, len);
	/* The bytes before the cleared acknowledgement: a card that
	 * acknowledged the previous change before reading must see them. */
	atomic_thread_fence(memory_order_release);
	shm_st8(&c->guest_ack, 0);
	/* The card reads the config bytes once it sees config_change. */
	atomic_thread_fence(memory_order_release);
	shm_st8(&c->config_change, MIC_VIRTIO_PARAM_CONFIG_CHANGED);
	mic_doorbell_ring(d->h->v, MIC_DB_CONFIG);
	if (timeout_ms == 0)
		return 0;
	return wait_guest_ack(d, timeout_ms);
}

int mic_vop_host_dev_config_wait(struct mic_vop_host_dev *d, int timeout_ms)
{
	if (!d->live)
		return -EINVAL;
	return wait_guest_ack(d, timeout_ms);
}

void vop_dev_latch(struct mic_vop_host_dev *d)
{
	if (check_tamper(d))
		try_latch(d);
}

int mic_vop_host_dev_vring(const struct mic_vop_host_dev *d, unsigned i,
			   struct mic_vop_vring_info *out)
{
	if (!d->live || i >= d->num_vq)
		return -EINVAL;
	const struct hvq *q = &d->vq[i];
	out->num = q->num;
	out->desc = q->ring;
	out->avail = q->ring + mic_vring_avail_off(q->num);
	out->used = q->used;
	out->pool_off = q->pool_off;
	out->pool_bytes = q->pool_pages * PAGE;
	return 0;
}

void mic_vop_host_dev_fail(struct mic_vop_host_dev *d, const char *reason)
{
	if (d->live)
		vop_mark_broken(d, "%s", reason);
}

int mic_vop_host_dev_interrupt(struct mic_vop_host_dev *d)
{
	if (!mic_vop_host_dev_ready(d) || d->h2c_db < 0)
		return 0;
	mic_doorbell_ring(d->h->v, (unsigned)d->h2c_db);
	return 1;
}
