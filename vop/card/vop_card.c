/* SPDX-License-Identifier: MIT */
/* Card side of virtio over PCIe (vop_card.h): the device page, feature
 * negotiation, resets and split virtqueues.  ABI and handshakes:
 * docs/device-page.md. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vop/dp.h"
#include "vop/shm.h"
#include "vop_card.h"

#define MAX_DEVS (MIC_DP_SIZE / 32)

#define CARD_TRANSPORT MIC_VOP_CARD_TRANSPORT_FEATURES

struct vq_state {
	void *token;
	uint16_t ndesc;        /* ring descriptors the buffer holds */
	uint32_t in_len;       /* writable bytes: bound of the host's used len */
	uint64_t ind_addr;     /* indirect table in card memory, or 0 */
	uint32_t ind_size;
};

struct mic_vop_vq {
	struct mic_vop_cdev *d;
	unsigned idx;
	uint16_t num;
	struct vring vr;
	uint64_t used_addr;    /* card-memory used ring, or 0 */
	uint16_t free_head, num_free;
	uint16_t avail_idx;    /* card-private copy of what it published */
	uint16_t kicked_avail; /* avail_idx at the last kick_prepare */
	uint16_t last_used;
	bool cb_disabled, broken;
	/* The free list lives here, not in the shared descriptor table: the
	 * host may scribble on descriptors, and must not corrupt our list. */
	uint16_t next[MIC_MAX_VRING_ENTRIES];
	struct vq_state st[MIC_MAX_VRING_ENTRIES];
};

struct mic_vop_cdev {
	struct mic_vop_card *c;
	unsigned index;
	struct mic_dp_dev info; /* snapshot of the block when first seen */
	bool removed;
	uint64_t features;
	unsigned h2c_db;
	int c2h_db;
	struct mic_vop_vq *vq[MIC_MAX_VRINGS];
};

struct mic_vop_card {
	struct mic_hw_view *v;
	struct mic_vop_cma *cma;
	uint8_t *dp;
	unsigned ndev;
	struct mic_vop_cdev *dev[MAX_DEVS];
};

static uint8_t *blk(const struct mic_vop_cdev *d)
{
	return d->c->dp + d->info.off;
}
static struct mic_device_desc *ddesc(const struct mic_vop_cdev *d)
{
	return (void *)blk(d);
}
static struct mic_device_ctrl *dctrl(const struct mic_vop_cdev *d)
{
	return (void *)(blk(d) + mic_dp_ctrl_off(d->info.num_vq, d->info.feature_len,
						d->info.config_len));
}
static struct mic_vqconfig *dvq(const struct mic_vop_cdev *d, unsigned i)
{
	return (void *)(blk(d) + mic_dp_vq_off(i));
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* --- device page --- */

int mic_vop_card_open(struct mic_hw_view *v, struct mic_vop_cma *cma, struct mic_vop_card **out)
{
	uint64_t a = mic_spad_read(v, MIC_SPAD_DP_LO) |
		     (uint64_t)mic_spad_read(v, MIC_SPAD_DP_HI) << 32;
	uint8_t *dp = mic_sysmem(v, a, MIC_DP_SIZE);
	if (!dp || shm_ld32(dp) != MIC_DP_MAGIC)
		return -ENODEV;
	struct mic_vop_card *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->v = v;
	c->cma = cma;
	c->dp = dp;
	*out = c;
	return 0;
}

/* keep_mem: the host has not let go of the queue, so its card memory (the
 * used ring it writes, indirect tables it may still walk) stays allocated:
 * a late host write would corrupt whatever the memory held next. */
static void vq_free(struct mic_vop_vq *q, bool keep_mem)
{
	if (!q)
		return;
	struct mic_vop_cma *cma = keep_mem ? NULL : q->d->c->cma;
	for (unsigned i = 0; i < q->num && cma; i++)
		if (q->st[i].token && q->st[i].ind_addr)
			mic_vop_cma_free(cma, q->st[i].ind_addr, q->st[i].ind_size);
	if (q->used_addr && cma)
		mic_vop_cma_free(cma, q->used_addr, mic_vring_used_size(q->num));
	free(q);
}

static void dev_free_vqs(struct mic_vop_cdev *d, bool keep_mem)
{
	for (unsigned i = 0; i < MIC_MAX_VRINGS; i++) {
		vq_free(d->vq[i], keep_mem);
		d->vq[i] = NULL;
	}
}

void mic_vop_card_close(struct mic_vop_card *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->ndev; i++) {
		dev_free_vqs(c->dev[i], false); /* the card's memory goes with it */
		free(c->dev[i]);
	}
	free(c);
}

static struct mic_vop_cdev *dev_at(struct mic_vop_card *c, size_t off)
{
	for (unsigned i = 0; i < c->ndev; i++)
		if (!c->dev[i]->removed && c->dev[i]->info.off == off)
			return c->dev[i];
	return NULL;
}

int mic_vop_card_scan(struct mic_vop_card *c)
{
	size_t off = MIC_DP_FIRST_DEV;
	struct mic_dp_dev info;
	int r;
	while ((r = mic_dp_next(c->dp, MIC_DP_SIZE, &off, &info, NULL)) == 1) {
		struct mic_vop_cdev *d = dev_at(c, info.off);
		if (d && (info.type != d->info.type || info.size != d->info.size))
			d->removed = true; /* gone, or replaced by another device */
		else if (d)
			continue;
		if (info.type == MIC_DP_TYPE_REMOVED || c->ndev == MAX_DEVS)
			continue;
		d = calloc(1, sizeof(*d));
		if (!d)
			return -ENOMEM;
		d->c = c;
		d->info = info;
		d->index = c->ndev;
		d->h2c_db = MIC_DB_VDEV0 + d->index % (MIC_NUM_DOORBELLS - MIC_DB_VDEV0);
		int8_t db = (int8_t)shm_ld8(&dctrl(d)->c2h_vdev_db);
		d->c2h_db = db >= 0 && db < MIC_NUM_DOORBELLS ? db : -1;
		c->dev[c->ndev++] = d;
	}
	return r < 0 ? -EPROTO : (int)c->ndev;
}

unsigned mic_vop_card_num_devs(const struct mic_vop_card *c)
{
	return c->ndev;
}

struct mic_vop_cdev *mic_vop_card_dev(const struct mic_vop_card *c, unsigned i)
{
	return i < c->ndev ? c->dev[i] : NULL;
}

struct mic_vop_cdev *mic_vop_card_find(const struct mic_vop_card *c, int8_t type, unsigned nth)
{
	for (unsigned i = 0; i < c->ndev; i++)
		if (!c->dev[i]->removed && c->dev[i]->info.type == type && nth-- == 0)
			return c->dev[i];
	return NULL;
}

int mic_vop_card_config_irq(struct mic_vop_card *c, mic_vop_cfg_cb cb, void *ctx)
{
	for (unsigned i = 0; i < c->ndev; i++) {
		struct mic_vop_cdev *d = c->dev[i];
		if (d->removed)
			continue;
		struct mic_device_ctrl *ctl = dctrl(d);
		uint8_t cc = shm_ld8(&ctl->config_change);
		if (!cc || shm_ld8(&ctl->guest_ack))
			continue;
		/* The host wrote the new config bytes before config_change. */
		atomic_thread_fence(memory_order_acquire);
		unsigned ev = 0;
		if (cc & MIC_VIRTIO_PARAM_DEV_REMOVE) {
			ev |= MIC_VOP_CFG_REMOVED;
			d->removed = true;
		}
		if (cc & MIC_VIRTIO_PARAM_CONFIG_CHANGED)
			ev |= MIC_VOP_CFG_CHANGED;
		if (cb)
			cb(ctx, d, ev);
		shm_st8(&ctl->guest_ack, 1);
	}
	return mic_vop_card_scan(c);
}

/* --- per device --- */

int8_t mic_vop_cdev_type(const struct mic_vop_cdev *d)
{
	return d->info.type;
}

unsigned mic_vop_cdev_num_vq(const struct mic_vop_cdev *d)
{
	return d->info.num_vq;
}

bool mic_vop_cdev_removed(const struct mic_vop_cdev *d)
{
	return d->removed;
}

uint64_t mic_vop_cdev_host_features(const struct mic_vop_cdev *d)
{
	return shm_features_get(blk(d) + mic_dp_host_feat_off(d->info.num_vq), d->info.feature_len);
}

int mic_vop_cdev_read_config(const struct mic_vop_cdev *d, size_t off, void *buf, size_t len)
{
	if (off > d->info.config_len || len > d->info.config_len - off)
		return -EINVAL;
	const uint8_t *p = blk(d) + mic_dp_config_off(d->info.num_vq, d->info.feature_len) + off;
	for (size_t i = 0; i < len; i++)
		((uint8_t *)buf)[i] = shm_ld8(p + i);
	return 0;
}

static void status_or(struct mic_vop_cdev *d, uint8_t bits)
{
	shm_st8(&ddesc(d)->status, shm_ld8(&ddesc(d)->status) | bits);
}

int mic_vop_cdev_negotiate(struct mic_vop_cdev *d, uint64_t driver_features,
			   uint64_t *negotiated)
{
	if (d->removed)
		return -ENODEV;
	status_or(d, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	uint64_t tmask = ((1ull << (VIRTIO_TRANSPORT_F_END - VIRTIO_TRANSPORT_F_START)) - 1)
			 << VIRTIO_TRANSPORT_F_START;
	uint64_t f = mic_vop_cdev_host_features(d) & driver_features & (~tmask | CARD_TRANSPORT);
	if (!(f & (1ull << VIRTIO_F_VERSION_1))) {
		status_or(d, VIRTIO_CONFIG_S_FAILED);
		return -ENOTSUP;
	}
	shm_features_put(blk(d) + mic_dp_guest_feat_off(d->info.num_vq, d->info.feature_len),
			 d->info.feature_len, f);
	status_or(d, VIRTIO_CONFIG_S_FEATURES_OK);
	d->features = f;
	if (negotiated)
		*negotiated = f;
	return 0;
}

static bool has(const struct mic_vop_cdev *d, unsigned bit)
{
	return d->features & (1ull << bit);
}

int mic_vop_cdev_setup_vq(struct mic_vop_cdev *d, unsigned idx, unsigned flags,
			  struct mic_vop_vq **out)
{
	if (d->removed)
		return -ENODEV;
	if (idx >= d->info.num_vq || d->vq[idx] || !d->features)
		return -EINVAL;
	if (d->c2h_db < 0)
		return -EPROTO;
	unsigned num = d->info.vq_num[idx];
	uint8_t *p = mic_sysmem(d->c->v, d->info.vq_address[idx], mic_vring_size(num));
	if (!p)
		return -EPROTO;
	struct mic_vop_vq *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->d = d;
	q->idx = idx;
	q->num = (uint16_t)num;
	q->vr.num = num;
	q->vr.desc = (void *)p;
	q->vr.avail = (void *)(p + mic_vring_avail_off(num));
	q->vr.used = (void *)(p + mic_vring_used_off(num));
	if ((flags & MIC_VOP_VQ_USED_IN_CARDMEM) && d->c->cma) {
		uint64_t ua;
		if (mic_vop_cma_alloc(d->c->cma, mic_vring_used_size(num), &ua) == 0) {
			void *u = mic_vop_cma_ptr(d->c->cma, ua, mic_vring_used_size(num));
			memset(u, 0, mic_vring_used_size(num));
			q->vr.used = u;
			q->used_addr = ua;
		}
	}
	for (unsigned i = 0; i < num; i++)
		q->next[i] = (uint16_t)(i + 1);
	q->num_free = q->num;
	shm_st16(&q->vr.avail->flags, 0);
	shm_st16(&q->vr.avail->idx, 0);
	shm_st16(&q->vr.avail->ring[num], 0); /* used_event */
	d->vq[idx] = q;
	*out = q;
	return 0;
}

void mic_vop_cdev_set_h2c_db(struct mic_vop_cdev *d, unsigned db)
{
	if (db < MIC_NUM_DOORBELLS)
		d->h2c_db = db;
}

unsigned mic_vop_cdev_h2c_db(const struct mic_vop_cdev *d)
{
	return d->h2c_db;
}

int mic_vop_cdev_driver_ok(struct mic_vop_cdev *d)
{
	if (d->removed)
		return -ENODEV;
	struct mic_device_ctrl *ctl = dctrl(d);
	shm_st8(&ctl->h2c_vdev_db, (uint8_t)d->h2c_db);
	bool moved = false;
	for (unsigned i = 0; i < d->info.num_vq; i++)
		if (d->vq[i] && d->vq[i]->used_addr) {
			shm_st64(&dvq(d, i)->used_address, d->vq[i]->used_addr);
			moved = true;
		}
	if (moved)
		shm_st8(&ctl->used_address_updated, 1);
	shm_st64(&ctl->vdev, (uint64_t)(uintptr_t)d);
	/* The host latches everything above when it sees DRIVER_OK. */
	atomic_thread_fence(memory_order_release);
	status_or(d, VIRTIO_CONFIG_S_DRIVER_OK);
	return 0;
}

bool mic_vop_cdev_needs_reset(const struct mic_vop_cdev *d)
{
	return !d->removed && (shm_ld8(&ddesc(d)->status) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

void mic_vop_cdev_reset_start(struct mic_vop_cdev *d)
{
	struct mic_device_ctrl *ctl = dctrl(d);
	shm_st8(&ctl->host_ack, 0);
	shm_st8(&ctl->vdev_reset, 1);
	if (d->c2h_db >= 0)
		mic_doorbell_ring(d->c->v, (unsigned)d->c2h_db);
}

int mic_vop_cdev_reset_wait(struct mic_vop_cdev *d, int timeout_ms)
{
	struct mic_device_ctrl *ctl = dctrl(d);
	int r = -ETIMEDOUT;
	for (int waited = 0;; waited++) {
		if (shm_ld8(&ctl->host_ack)) {
			r = 0;
			break;
		}
		if (waited >= timeout_ms)
			break;
		sleep_ms(1);
	}
	shm_st8(&ctl->vdev_reset, 0);
	dev_free_vqs(d, r != 0);
	d->features = 0;
	return r;
}

int mic_vop_cdev_reset(struct mic_vop_cdev *d, int timeout_ms)
{
	mic_vop_cdev_reset_start(d);
	return mic_vop_cdev_reset_wait(d, timeout_ms);
}

/* --- virtqueues --- */

static uint16_t *used_event(struct mic_vop_vq *q)
{
	return &q->vr.avail->ring[q->num];
}
static uint16_t *avail_event(struct mic_vop_vq *q)
{
	return (uint16_t *)&q->vr.used->ring[q->num];
}

static void desc_set(struct vring_desc *dsc, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	shm_st64(&dsc->addr, addr);
	shm_st32(&dsc->len, len);
	shm_st16(&dsc->flags, flags);
	shm_st16(&dsc->next, next);
}

int mic_vop_vq_add_sgs(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned out,
		       unsigned in, void *token)
{
	if (q->broken || q->d->removed)
		return -EIO;
	unsigned total = out + in;
	if (!total || !token || !sg || total > MIC_MAX_VRING_ENTRIES * 2u)
		return -EINVAL;
	struct mic_vop_cma *cma = q->d->c->cma;
	uint64_t ind = 0;
	uint32_t ind_size = 0;
	if (total > 1 && has(q->d, VIRTIO_RING_F_INDIRECT_DESC) && cma) {
		ind_size = total * (uint32_t)sizeof(struct vring_desc);
		if (mic_vop_cma_alloc(cma, ind_size, &ind))
			ind = 0;
	}
	unsigned need = ind ? 1 : total;
	if (need > q->num_free) {
		if (ind)
			mic_vop_cma_free(cma, ind, ind_size);
		return -ENOSPC;
	}
	uint32_t in_len = 0;
	for (unsigned k = out; k < total; k++)
		in_len += sg[k].len;
	uint16_t head = q->free_head;
	if (ind) {
		struct vring_desc *t = mic_vop_cma_ptr(cma, ind, ind_size);
		for (unsigned k = 0; k < total; k++)
			desc_set(&t[k], sg[k].addr, sg[k].len,
				 (uint16_t)((k >= out ? VRING_DESC_F_WRITE : 0) |
					    (k + 1 < total ? VRING_DESC_F_NEXT : 0)),
				 (uint16_t)(k + 1 < total ? k + 1 : 0));
		desc_set(&q->vr.desc[head], ind, ind_size, VRING_DESC_F_INDIRECT, 0);
		q->free_head = q->next[head];
	} else {
		uint16_t i = head;
		for (unsigned k = 0; k < total; k++) {
			bool more = k + 1 < total;
			desc_set(&q->vr.desc[i], sg[k].addr, sg[k].len,
				 (uint16_t)((k >= out ? VRING_DESC_F_WRITE : 0) |
					    (more ? VRING_DESC_F_NEXT : 0)),
				 more ? q->next[i] : 0);
			i = q->next[i];
		}
		q->free_head = i;
	}
	q->num_free = (uint16_t)(q->num_free - need);
	q->st[head] = (struct vq_state){ token, (uint16_t)need, in_len, ind, ind_size };
	shm_st16(&q->vr.avail->ring[q->avail_idx % q->num], head);
	/* virtio: descriptors and the ring entry before avail->idx. */
	atomic_thread_fence(memory_order_release);
	shm_st16(&q->vr.avail->idx, ++q->avail_idx);
	return 0;
}

int mic_vop_vq_add_outbuf(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned n,
			  void *token)
{
	return mic_vop_vq_add_sgs(q, sg, n, 0, token);
}

int mic_vop_vq_add_inbuf(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned n,
			 void *token)
{
	return mic_vop_vq_add_sgs(q, sg, 0, n, token);
}

bool mic_vop_vq_kick_prepare(struct mic_vop_vq *q)
{
	if (q->broken)
		return false;
	/* virtio: avail->idx must be visible before reading avail_event /
	 * used->flags, or the host may sleep on a buffer we did not announce. */
	atomic_thread_fence(memory_order_seq_cst);
	uint16_t old = q->kicked_avail, nw = q->avail_idx;
	q->kicked_avail = nw;
	if (has(q->d, VIRTIO_RING_F_EVENT_IDX))
		return vring_need_event(shm_ld16(avail_event(q)), nw, old);
	return !(shm_ld16(&q->vr.used->flags) & VRING_USED_F_NO_NOTIFY);
}

void mic_vop_vq_notify(struct mic_vop_vq *q)
{
	mic_doorbell_ring(q->d->c->v, (unsigned)q->d->c2h_db);
}

bool mic_vop_vq_kick(struct mic_vop_vq *q)
{
	if (!mic_vop_vq_kick_prepare(q))
		return false;
	mic_vop_vq_notify(q);
	return true;
}

void *mic_vop_vq_get_buf(struct mic_vop_vq *q, uint32_t *len)
{
	if (q->broken || q->last_used == shm_ld16(&q->vr.used->idx))
		return NULL;
	/* virtio: read used entries only after used->idx. */
	atomic_thread_fence(memory_order_acquire);
	vring_used_elem_t *e = &q->vr.used->ring[q->last_used % q->num];
	uint32_t id = shm_ld32(&e->id), l = shm_ld32(&e->len);
	if (id >= q->num || !q->st[id].token) {
		q->broken = true;
		return NULL;
	}
	struct vq_state *s = &q->st[id];
	void *token = s->token;
	if (len)
		*len = l > s->in_len ? s->in_len : l;
	uint16_t last = (uint16_t)id;
	for (unsigned k = 1; k < s->ndesc; k++)
		last = q->next[last];
	q->next[last] = q->free_head;
	q->free_head = (uint16_t)id;
	q->num_free = (uint16_t)(q->num_free + s->ndesc);
	if (s->ind_addr)
		mic_vop_cma_free(q->d->c->cma, s->ind_addr, s->ind_size);
	*s = (struct vq_state){ 0 };
	q->last_used++;
	if (has(q->d, VIRTIO_RING_F_EVENT_IDX)) {
		if (q->cb_disabled) {
			/* Keep the event index far ahead so polling never
			 * catches up with it. */
			shm_st16(used_event(q), (uint16_t)(q->last_used + 0x8000));
		} else {
			shm_st16(used_event(q), q->last_used);
			/* virtio: used_event visible before the next used->idx
			 * read, or an interrupt in between could be lost. */
			atomic_thread_fence(memory_order_seq_cst);
		}
	}
	return token;
}

void mic_vop_vq_disable_cb(struct mic_vop_vq *q)
{
	q->cb_disabled = true;
	if (has(q->d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(used_event(q), (uint16_t)(q->last_used + 0x8000));
	else
		shm_st16(&q->vr.avail->flags, VRING_AVAIL_F_NO_INTERRUPT);
}

bool mic_vop_vq_enable_cb(struct mic_vop_vq *q)
{
	q->cb_disabled = false;
	if (has(q->d, VIRTIO_RING_F_EVENT_IDX))
		shm_st16(used_event(q), q->last_used);
	else
		shm_st16(&q->vr.avail->flags, 0);
	/* virtio: publish the re-enable before re-checking used->idx. */
	atomic_thread_fence(memory_order_seq_cst);
	return shm_ld16(&q->vr.used->idx) == q->last_used;
}

unsigned mic_vop_vq_num_free(const struct mic_vop_vq *q)
{
	return q->num_free;
}

unsigned mic_vop_vq_size(const struct mic_vop_vq *q)
{
	return q->num;
}

bool mic_vop_vq_broken(const struct mic_vop_vq *q)
{
	return q->broken;
}

struct vring *mic_vop_vq_vring(struct mic_vop_vq *q)
{
	return &q->vr;
}

unsigned mic_vop_vq_drain(struct mic_vop_vq *q, mic_vop_used_fn fn, void *ctx)
{
	unsigned n = 0;
	void *tok;
	uint32_t len;
	do {
		mic_vop_vq_disable_cb(q);
		while ((tok = mic_vop_vq_get_buf(q, &len))) {
			fn(ctx, tok, len);
			n++;
		}
	} while (!mic_vop_vq_enable_cb(q));
	return n;
}
