/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vop/dp.h"
#include "vop/shm.h"
#include "vop_host.h"

#define MAX_DEVS (MIC_DP_SIZE / 32) /* smallest block: desc + 1 vq + ctrl */
#define PAGE     4096u

struct hvq {
	uint16_t num;
	uint64_t pool_off;          /* ring offset in hostmem */
	size_t pool_pages;
	uint8_t *ring;              /* desc + avail in the pool */
	uint8_t *pool_used;         /* used ring in the pool */
	uint8_t *used;              /* where the host writes used entries */
	uint16_t last_avail;        /* next avail entry to take (host-private) */
	uint16_t used_idx;          /* host's copy: never read back from the ring */
	uint16_t signalled_used;
	bool signalled_valid;
	bool notify_disabled;
	bool has_cur;               /* copy_desc keeps a chain across calls */
	struct mic_vop_chain cur;
};

struct mic_vop_host_dev {
	struct mic_vop_host *h;
	bool live;
	size_t off;                 /* block offset in the page */
	/* The host's copy of what it wrote: authoritative. */
	int8_t type;
	uint8_t num_vq, feature_len, config_len;
	uint64_t host_features;
	unsigned c2h_db;
	uint8_t config[UINT8_MAX];  /* config space as the host last wrote it */
	struct hvq vq[MIC_MAX_VRINGS];
	/* Latched from the card at DRIVER_OK, after validation. */
	bool ready;
	uint64_t features;
	int h2c_db;
	uint32_t max_chain;
	mic_vop_copy_fn copy;
	void *copy_ctx;
	bool broken;
	char reason[MIC_VOP_REASON_MAX];
};

struct mic_vop_host {
	struct mic_hw_view *v;
	uint64_t pool_off, pool_size;
	uint8_t *dp;
	size_t npages;
	uint8_t *page_used;         /* one byte per 4 KiB page of the pool */
	size_t end;                 /* first free byte of the device list */
	unsigned ndev;
	struct mic_vop_host_dev *dev[MAX_DEVS];
};

/* --- helpers --- */

static uint8_t *blk(const struct mic_vop_host_dev *d)
{
	return d->h->dp + d->off;
}
static struct mic_device_desc *ddesc(const struct mic_vop_host_dev *d)
{
	return (void *)blk(d);
}
static struct mic_vqconfig *dvq(const struct mic_vop_host_dev *d, unsigned i)
{
	return (void *)(blk(d) + mic_dp_vq_off(i));
}
static struct mic_device_ctrl *dctrl(const struct mic_vop_host_dev *d)
{
	return (void *)(blk(d) + mic_dp_ctrl_off(d->num_vq, d->feature_len, d->config_len));
}
static uint8_t *dconfig(const struct mic_vop_host_dev *d)
{
	return blk(d) + mic_dp_config_off(d->num_vq, d->feature_len);
}

static uint64_t sys_addr(uint64_t pool_off)
{
	return MIC_SYSMEM_BASE + pool_off;
}

static void mark_broken(struct mic_vop_host_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void mark_broken(struct mic_vop_host_dev *d, const char *fmt, ...)
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
		mark_broken(d, "device page: type changed by card");
	else if (shm_ld8(&dd->num_vq) != d->num_vq || shm_ld8(&dd->feature_len) != d->feature_len ||
		 shm_ld8(&dd->config_len) != d->config_len)
		mark_broken(d, "device page: descriptor counts changed by card");
	else
		for (unsigned i = 0; i < d->num_vq; i++) {
			struct mic_vqconfig *vc = dvq(d, i);
			if (shm_ld16(&vc->num) != d->vq[i].num ||
			    shm_ld64(&vc->address) != sys_addr(d->vq[i].pool_off)) {
				mark_broken(d, "device page: vring %u num/address changed by card", i);
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
			mark_broken(d, "vring %u: used ring moved outside card memory (0x%llx)", i,
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
		mark_broken(d, "card acknowledged features not offered (0x%llx)",
			    (unsigned long long)(gf & ~d->host_features));
		return;
	}
	if (!(gf & (1ull << VIRTIO_F_VERSION_1))) {
		mark_broken(d, "card did not accept VIRTIO_F_VERSION_1");
		return;
	}
	int8_t db = (int8_t)shm_ld8(&dctrl(d)->h2c_vdev_db);
	if (db < -1 || db >= MIC_NUM_DOORBELLS) {
		mark_broken(d, "bad h2c doorbell %d", db);
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
	for (unsigned i = 0; i < d->num_vq; i++) {
		struct hvq *q = &d->vq[i];
		memset(q->ring, 0, q->pool_pages * PAGE);
		q->used = q->pool_used;
		q->last_avail = q->used_idx = q->signalled_used = 0;
		q->signalled_valid = q->notify_disabled = q->has_cur = false;
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

/* --- chain walker --- */

struct walk {
	const struct mic_hw_view *v;
	struct mic_vop_chain *c;
	uint32_t max_chain;
	uint64_t total;
	char *why;
};

static int wfail(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int wfail(struct walk *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->why, MIC_VOP_REASON_MAX, fmt, ap);
	va_end(ap);
	return -EIO;
}

static int add_seg(struct walk *w, uint64_t addr, uint32_t len, bool write)
{
	struct mic_vop_chain *c = w->c;
	if (!write && c->nseg > c->nread)
		return wfail(w, "readable descriptor after a writable one");
	w->total += len;
	if (w->total > w->max_chain)
		return wfail(w, "chain longer than %u bytes", w->max_chain);
	if (len == 0)
		return 0; /* nothing to copy, nothing to validate */
	void *p = mic_cardmem(w->v, addr, len);
	if (!p)
		return wfail(w, "buffer 0x%llx+%u outside card memory", (unsigned long long)addr,
			     len);
	if (c->nseg == MIC_VOP_MAX_SEGS)
		return wfail(w, "more than %u segments", MIC_VOP_MAX_SEGS);
	c->seg[c->nseg] = (struct mic_vop_seg){ addr, len, write, p };
	c->nseg++;
	if (write)
		c->write_len += len;
	else {
		c->nread++;
		c->read_len += len;
	}
	return 0;
}

static int walk_indirect(struct walk *w, uint64_t addr, uint32_t len)
{
	if (len == 0 || len % sizeof(struct vring_desc) ||
	    len / sizeof(struct vring_desc) > MIC_VOP_MAX_INDIRECT)
		return wfail(w, "bad indirect table length %u", len);
	const struct vring_desc *t = mic_cardmem(w->v, addr, len);
	if (!t || addr % 8)
		return wfail(w, "indirect table 0x%llx+%u outside card memory",
			     (unsigned long long)addr, len);
	unsigned n = len / sizeof(struct vring_desc);
	unsigned i = 0;
	for (unsigned hops = 0;; hops++) {
		if (hops == n)
			return wfail(w, "loop in indirect table");
		uint64_t a = shm_ld64(&t[i].addr);
		uint32_t l = shm_ld32(&t[i].len);
		uint16_t f = shm_ld16(&t[i].flags);
		uint16_t nx = shm_ld16(&t[i].next);
		if (f & VRING_DESC_F_INDIRECT)
			return wfail(w, "nested indirect descriptor");
		int r = add_seg(w, a, l, f & VRING_DESC_F_WRITE);
		if (r)
			return r;
		if (!(f & VRING_DESC_F_NEXT))
			return 0;
		if (nx >= n)
			return wfail(w, "indirect next %u out of table of %u", nx, n);
		i = nx;
	}
}

int mic_vop_host_walk(const struct mic_hw_view *v, unsigned num, const void *desc_p,
		      const void *avail_p, uint16_t *last_avail, bool indirect_ok,
		      uint32_t max_chain, struct mic_vop_chain *c, char *why)
{
	const struct vring_desc *desc = desc_p;
	const struct vring_avail *avail = avail_p;
	struct walk w = { v, c, max_chain, 0, why };
	uint16_t aidx = shm_ld16(&avail->idx);
	uint16_t pending = (uint16_t)(aidx - *last_avail);
	if (pending == 0)
		return 0;
	if (pending > num)
		return wfail(&w, "avail idx %u jumped %u entries past %u (ring of %u)", aidx,
			     pending, *last_avail, num);
	/* virtio: read the avail ring and descriptors only after avail->idx. */
	atomic_thread_fence(memory_order_acquire);
	uint16_t head = shm_ld16(&avail->ring[*last_avail % num]);
	if (head >= num)
		return wfail(&w, "avail head %u out of ring of %u", head, num);
	memset(c, 0, offsetof(struct mic_vop_chain, seg));
	c->head = head;
	unsigned i = head;
	for (unsigned hops = 0;; hops++) {
		if (hops == num)
			return wfail(&w, "descriptor loop from head %u", head);
		uint64_t a = shm_ld64(&desc[i].addr);
		uint32_t l = shm_ld32(&desc[i].len);
		uint16_t f = shm_ld16(&desc[i].flags);
		uint16_t nx = shm_ld16(&desc[i].next);
		int r;
		if (f & VRING_DESC_F_INDIRECT) {
			if (!indirect_ok)
				return wfail(&w, "indirect descriptor without INDIRECT_DESC");
			if (f & VRING_DESC_F_NEXT)
				return wfail(&w, "indirect descriptor with NEXT");
			return (r = walk_indirect(&w, a, l)) ? r : (++*last_avail, 1);
		}
		if ((r = add_seg(&w, a, l, f & VRING_DESC_F_WRITE)))
			return r;
		if (!(f & VRING_DESC_F_NEXT))
			break;
		if (nx >= num)
			return wfail(&w, "next %u out of ring of %u", nx, num);
		i = nx;
	}
	++*last_avail;
	return 1;
}

static struct vring_avail *q_avail(struct hvq *q)
{
	return (void *)(q->ring + mic_vring_avail_off(q->num));
}
static struct vring_used *q_used(struct hvq *q)
{
	return (void *)q->used;
}
/* used_event lives after the avail ring, avail_event after the used ring. */
static uint16_t *q_used_event(struct hvq *q)
{
	return &q_avail(q)->ring[q->num];
}
static uint16_t *q_avail_event(struct hvq *q)
{
	return (uint16_t *)&q_used(q)->ring[q->num];
}

static bool has_feature(const struct mic_vop_host_dev *d, unsigned bit)
{
	return d->features & (1ull << bit);
}

static int vq_check(struct mic_vop_host_dev *d, unsigned vq)
{
	if (!d->live || vq >= d->num_vq)
		return -EINVAL;
	if (d->broken || !check_tamper(d))
		return -EIO;
	try_latch(d);
	if (d->broken)
		return -EIO;
	return d->ready ? 0 : -ENODEV;
}

/* Tells the card which avail index should ring the doorbell next. */
static void arm_notify(struct mic_vop_host_dev *d, struct hvq *q)
{
	if (has_feature(d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(q_avail_event(q), q->last_avail);
	else
		shm_st16(&q_used(q)->flags, 0);
}

int mic_vop_host_vq_get(struct mic_vop_host_dev *d, unsigned vq, struct mic_vop_chain *c)
{
	int r = vq_check(d, vq);
	if (r)
		return r;
	struct hvq *q = &d->vq[vq];
	bool indirect = has_feature(d, VIRTIO_RING_F_INDIRECT_DESC);
	for (int tries = 0; tries < 2; tries++) {
		r = mic_vop_host_walk(d->h->v, q->num, q->ring, q_avail(q), &q->last_avail, indirect,
				      d->max_chain, c, d->reason);
		if (r < 0) {
			char why[MIC_VOP_REASON_MAX];
			memcpy(why, d->reason, sizeof(why));
			d->reason[0] = 0;
			mark_broken(d, "vring %u: %s", vq, why);
			return -EIO;
		}
		if (r > 0) {
			c->vq = (uint16_t)vq;
			return 1;
		}
		if (q->notify_disabled || tries)
			return 0;
		arm_notify(d, q);
		/* virtio: publish the event index before re-checking avail->idx,
		 * or a buffer added meanwhile would go unnoticed. */
		atomic_thread_fence(memory_order_seq_cst);
	}
	return 0;
}

void mic_vop_host_vq_disable_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return;
	struct hvq *q = &d->vq[vq];
	q->notify_disabled = true;
	/* With EVENT_IDX the card only kicks when it passes avail_event, which
	 * stays where it is: nothing to write. */
	if (!has_feature(d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(&q_used(q)->flags, VRING_USED_F_NO_NOTIFY);
}

bool mic_vop_host_vq_enable_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return false;
	struct hvq *q = &d->vq[vq];
	q->notify_disabled = false;
	arm_notify(d, q);
	/* virtio: the event index must be visible before avail->idx is read. */
	atomic_thread_fence(memory_order_seq_cst);
	return shm_ld16(&q_avail(q)->idx) != q->last_avail;
}

static ssize_t do_copy(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
		       const struct iovec *iov, int iovcnt, bool push)
{
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	unsigned first = push ? c->nread : 0, last = push ? c->nseg : c->nread;
	uint32_t done = push ? c->write_done : c->read_done;
	/* Find the segment and offset the cursor points into. */
	unsigned s = first;
	uint32_t soff = done;
	while (s < last && soff >= c->seg[s].len)
		soff -= c->seg[s++].len;
	size_t total = 0;
	int vi = 0;
	size_t voff = 0;
	while (s < last && vi < iovcnt) {
		if (voff == iov[vi].iov_len) {
			vi++;
			voff = 0;
			continue;
		}
		struct mic_vop_seg *sg = &c->seg[s];
		size_t n = sg->len - soff;
		if (n > iov[vi].iov_len - voff)
			n = iov[vi].iov_len - voff;
		uint8_t *cp = (uint8_t *)sg->ptr + soff;
		uint8_t *hp = (uint8_t *)iov[vi].iov_base + voff;
		int r = 1;
		if (d->copy)
			r = d->copy(d->copy_ctx, push ? MIC_VOP_HOST_TO_CARD : MIC_VOP_CARD_TO_HOST,
				    sg->addr + soff, cp, hp, n);
		if (r < 0)
			return r;
		if (r > 0) {
			if (push)
				memcpy(cp, hp, n);
			else
				memcpy(hp, cp, n);
		}
		total += n;
		soff += (uint32_t)n;
		voff += n;
		if (soff == sg->len) {
			s++;
			soff = 0;
		}
	}
	if (push)
		c->write_done += (uint32_t)total;
	else
		c->read_done += (uint32_t)total;
	return (ssize_t)total;
}

ssize_t mic_vop_host_chain_pull(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt)
{
	if (d->broken)
		return -EIO;
	return do_copy(d, c, iov, iovcnt, false);
}

ssize_t mic_vop_host_chain_push(struct mic_vop_host_dev *d, struct mic_vop_chain *c,
				const struct iovec *iov, int iovcnt)
{
	if (d->broken)
		return -EIO;
	return do_copy(d, c, iov, iovcnt, true);
}

int mic_vop_host_vq_put(struct mic_vop_host_dev *d, const struct mic_vop_chain *c)
{
	int r = vq_check(d, c->vq);
	if (r)
		return r;
	struct hvq *q = &d->vq[c->vq];
	struct vring_used *u = q_used(q);
	vring_used_elem_t *e = &u->ring[q->used_idx % q->num];
	shm_st32(&e->id, c->head);
	shm_st32(&e->len, c->write_done);
	/* virtio: the used element must be visible before used->idx. */
	atomic_thread_fence(memory_order_release);
	shm_st16(&u->idx, ++q->used_idx);
	return 0;
}

int mic_vop_host_vq_notify(struct mic_vop_host_dev *d, unsigned vq)
{
	if (vq_check(d, vq))
		return 0;
	struct hvq *q = &d->vq[vq];
	if (q->signalled_valid && q->signalled_used == q->used_idx)
		return 0;
	/* virtio: used->idx must be visible before reading used_event/flags,
	 * or the card may go to sleep just as we decide not to wake it. */
	atomic_thread_fence(memory_order_seq_cst);
	bool need;
	if (has_feature(d, VIRTIO_RING_F_EVENT_IDX)) {
		uint16_t ue = shm_ld16(q_used_event(q));
		need = !q->signalled_valid || vring_need_event(ue, q->used_idx, q->signalled_used);
	} else {
		need = !(shm_ld16(&q_avail(q)->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	}
	q->signalled_used = q->used_idx;
	q->signalled_valid = true;
	if (!need || d->h2c_db < 0)
		return 0;
	mic_doorbell_ring(d->h->v, (unsigned)d->h2c_db);
	return 1;
}

int mic_vop_host_copy_desc(struct mic_vop_host_dev *d, struct mic_vop_copy_desc *cd)
{
	cd->out_len = 0;
	int r = vq_check(d, cd->vr_idx);
	if (r)
		return r;
	struct hvq *q = &d->vq[cd->vr_idx];
	if (!q->has_cur) {
		r = mic_vop_host_vq_get(d, cd->vr_idx, &q->cur);
		if (r < 0)
			return r;
		if (r == 0)
			return -EAGAIN;
		q->has_cur = true;
	}
	ssize_t n;
	if (q->cur.read_done < q->cur.read_len)
		n = mic_vop_host_chain_pull(d, &q->cur, cd->iov, cd->iovcnt);
	else
		n = mic_vop_host_chain_push(d, &q->cur, cd->iov, cd->iovcnt);
	if (n < 0)
		return (int)n;
	cd->out_len = (uint32_t)n;
	if (cd->update_used) {
		q->has_cur = false;
		if ((r = mic_vop_host_vq_put(d, &q->cur)))
			return r;
		mic_vop_host_vq_notify(d, cd->vr_idx);
	}
	return 0;
}
