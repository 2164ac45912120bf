/* SPDX-License-Identifier: MIT */
/*
 * Private to vop/host/: the state the device page side (vop_devpage.c) and
 * the ring side (vop_ring.c) share.  Backends see only vop_host.h.
 */
#ifndef MIC_VOP_HOST_INT_H
#define MIC_VOP_HOST_INT_H

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
	void (*before_reset)(void *ctx); /* mic_vop_host_dev_set_reset_hook */
	void *reset_ctx;
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

/* Where the host's own fields of a device live in the page. */
static inline uint8_t *blk(const struct mic_vop_host_dev *d)
{
	return d->h->dp + d->off;
}
static inline struct mic_device_desc *ddesc(const struct mic_vop_host_dev *d)
{
	return (void *)blk(d);
}
static inline struct mic_vqconfig *dvq(const struct mic_vop_host_dev *d, unsigned i)
{
	return (void *)(blk(d) + mic_dp_vq_off(i));
}
static inline struct mic_device_ctrl *dctrl(const struct mic_vop_host_dev *d)
{
	return (void *)(blk(d) + mic_dp_ctrl_off(d->num_vq, d->feature_len, d->config_len));
}
static inline uint8_t *dconfig(const struct mic_vop_host_dev *d)
{
	return blk(d) + mic_dp_config_off(d->num_vq, d->feature_len);
}

static inline uint64_t sys_addr(uint64_t pool_off)
{
	return MIC_SYSMEM_BASE + pool_off;
}

static inline bool vop_has_feature(const struct mic_vop_host_dev *d, unsigned bit)
{
	return d->features & (1ull << bit);
}

/* Marks the device broken with the first reason and tells the card's
 * driver (NEEDS_RESET); later reasons are consequences and are dropped. */
void vop_mark_broken(struct mic_vop_host_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Before DRIVER_OK is latched: checks the device page fields the card must
 * not change and latches DRIVER_OK if the card set it.  Once the device is
 * ready, the page is checked by mic_vop_host_dev_poll alone, once per
 * wake-up, never by the queue operations. */
void vop_dev_latch(struct mic_vop_host_dev *d);

#endif
