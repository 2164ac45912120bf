/* SPDX-License-Identifier: MIT */
/*
 * Card side of virtio over PCIe: finds the host's device page, negotiates
 * features and drives split virtqueues with an API modelled on Linux's
 * virtqueue_*, plus a small allocator of card memory for buffers, indirect
 * tables and used rings.  What it validates and its threading:
 * docs/device-page.md, "Trust model and the host's checks".
 */
#ifndef MIC_VOP_CARD_H
#define MIC_VOP_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "hw/mic_hw.h"
#include "mic/devpage.h"

/* Transport features the card library implements; pass them (plus the
 * device features the driver knows) to mic_vop_cdev_negotiate. */
#define MIC_VOP_CARD_TRANSPORT_FEATURES                                               \
	((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |       \
	 (1ull << VIRTIO_RING_F_EVENT_IDX))

/* --- card-memory allocator --- */

#define MIC_VOP_CMA_ALIGN 64 /* the DMA engine's granule */

struct mic_vop_cma;

/* Manages card memory [base, base + size) (e.g. from MIC_CARD_HEAP_ADDR). */
int mic_vop_cma_create(const struct mic_hw_view *v, uint64_t base, uint64_t size,
		       struct mic_vop_cma **out);
void mic_vop_cma_destroy(struct mic_vop_cma *a);
/* 64-byte aligned allocation; returns 0 and the card address, or -ENOMEM. */
int mic_vop_cma_alloc(struct mic_vop_cma *a, uint64_t size, uint64_t *addr);
/* size must be the size given to alloc. */
void mic_vop_cma_free(struct mic_vop_cma *a, uint64_t addr, uint64_t size);
/* This side's mapping of [addr, addr + len), or NULL. */
void *mic_vop_cma_ptr(const struct mic_vop_cma *a, uint64_t addr, uint64_t len);
uint64_t mic_vop_cma_avail(const struct mic_vop_cma *a);

/* --- device page --- */

struct mic_vop_card;
struct mic_vop_cdev;
struct mic_vop_vq;

/* Reads the page address from MIC_SPAD_DP_LO/HI, maps it through the SMPT
 * window and checks its magic.  cma (may be NULL) backs indirect tables and
 * card-memory used rings.  -ENODEV: no page (yet). */
int mic_vop_card_open(struct mic_hw_view *v, struct mic_vop_cma *cma, struct mic_vop_card **out);
void mic_vop_card_close(struct mic_vop_card *c);
/* Walks the page: learns new devices, forgets removed ones.  Returns the
 * number of devices known, or -EPROTO if the page is malformed (devices
 * found before the bad block are kept). */
int mic_vop_card_scan(struct mic_vop_card *c);
unsigned mic_vop_card_num_devs(const struct mic_vop_card *c);
struct mic_vop_cdev *mic_vop_card_dev(const struct mic_vop_card *c, unsigned i);
struct mic_vop_cdev *mic_vop_card_find(const struct mic_vop_card *c, int8_t type, unsigned nth);

/* Events per device, returned by mic_vop_card_config_irq through cb. */
#define MIC_VOP_CFG_CHANGED 0x1 /* new config-space bytes */
#define MIC_VOP_CFG_REMOVED 0x2 /* host removed the device: stop using it */
typedef void (*mic_vop_cfg_cb)(void *ctx, struct mic_vop_cdev *d, unsigned events);
/* Call when MIC_DB_CONFIG fires (after mic_irq_ack): acknowledges the
 * host's config changes and removals (cb is told first), then scans for
 * new devices.  Returns like mic_vop_card_scan. */
int mic_vop_card_config_irq(struct mic_vop_card *c, mic_vop_cfg_cb cb, void *ctx);

/* --- per device --- */

int8_t mic_vop_cdev_type(const struct mic_vop_cdev *d);
unsigned mic_vop_cdev_num_vq(const struct mic_vop_cdev *d);
bool mic_vop_cdev_removed(const struct mic_vop_cdev *d);
uint64_t mic_vop_cdev_host_features(const struct mic_vop_cdev *d);
/* Copies config-space bytes [off, off + len). */
int mic_vop_cdev_read_config(const struct mic_vop_cdev *d, size_t off, void *buf, size_t len);
/*
 * ACKNOWLEDGE | DRIVER, then writes host_features & driver_features &
 * (supported transport features) as guest features and sets FEATURES_OK.
 * VIRTIO_F_VERSION_1 is required: without it the device is FAILED and
 * -ENOTSUP returned.  *negotiated (may be NULL) gets the result.
 */
int mic_vop_cdev_negotiate(struct mic_vop_cdev *d, uint64_t driver_features,
			   uint64_t *negotiated);

#define MIC_VOP_VQ_USED_IN_CARDMEM 0x1 /* move the used ring to card memory */
/* Maps vring idx (after negotiate).  With MIC_VOP_VQ_USED_IN_CARDMEM the
 * used ring is allocated from the cma and announced at driver_ok. */
int mic_vop_cdev_setup_vq(struct mic_vop_cdev *d, unsigned idx, unsigned flags,
			  struct mic_vop_vq **out);
/* Doorbell the host rings for this device (default MIC_DB_VDEV0 + device
 * index, shared round-robin); set before driver_ok to choose another. */
void mic_vop_cdev_set_h2c_db(struct mic_vop_cdev *d, unsigned db);
unsigned mic_vop_cdev_h2c_db(const struct mic_vop_cdev *d);
/* Publishes doorbell, used-ring moves and the vdev cookie, then DRIVER_OK. */
int mic_vop_cdev_driver_ok(struct mic_vop_cdev *d);
/* Asks the host to reset the device (vdev_reset, waits up to timeout_ms
 * for host_ack) and forgets all queue state; negotiate again afterwards.
 * The host must run mic_vop_host_dev_poll meanwhile.  -ETIMEDOUT: the host
 * did not acknowledge, and the card memory of the queues (used rings,
 * indirect tables) is left allocated, since the host may still write it. */
int mic_vop_cdev_reset(struct mic_vop_cdev *d, int timeout_ms);
/* The host set NEEDS_RESET in the device's status: the device stopped
 * (its backend failed, or the host found the driver at fault) until the
 * driver resets it. */
bool mic_vop_cdev_needs_reset(const struct mic_vop_cdev *d);
/* Starts a reset request without waiting; mic_vop_cdev_reset_wait ends it. */
void mic_vop_cdev_reset_start(struct mic_vop_cdev *d);
int mic_vop_cdev_reset_wait(struct mic_vop_cdev *d, int timeout_ms);

/* --- virtqueues (Linux-like) --- */

struct mic_vop_sg {
	uint64_t addr; /* card physical address */
	uint32_t len;
};

/* Adds a buffer: out device-readable then in device-writable elements.
 * Uses one indirect descriptor when INDIRECT_DESC was negotiated, the
 * buffer has more than one element and the cma has room.  token (not
 * NULL) comes back from get_buf.  -ENOSPC: ring full; -EIO: broken. */
int mic_vop_vq_add_sgs(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned out,
		       unsigned in, void *token);
int mic_vop_vq_add_outbuf(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned n,
			  void *token);
int mic_vop_vq_add_inbuf(struct mic_vop_vq *q, const struct mic_vop_sg *sg, unsigned n,
			 void *token);
/* Whether the host wants a doorbell for what was added since the last
 * kick (EVENT_IDX avail_event, or VRING_USED_F_NO_NOTIFY). */
bool mic_vop_vq_kick_prepare(struct mic_vop_vq *q);
void mic_vop_vq_notify(struct mic_vop_vq *q);
/* kick_prepare + notify; returns true if the doorbell was rung. */
bool mic_vop_vq_kick(struct mic_vop_vq *q);
/* Next used buffer's token and the bytes the host wrote, or NULL. */
void *mic_vop_vq_get_buf(struct mic_vop_vq *q, uint32_t *len);
void mic_vop_vq_disable_cb(struct mic_vop_vq *q);
/* Re-enables host interrupts; returns false if used buffers are already
 * pending (process them, as with Linux's virtqueue_enable_cb). */
bool mic_vop_vq_enable_cb(struct mic_vop_vq *q);
/* Takes every used buffer, calling fn(ctx, token, len) for each, and
 * re-enables callbacks without missing one the host returns meanwhile
 * (disable, get all, enable and recheck).  Returns how many. */
typedef void (*mic_vop_used_fn)(void *ctx, void *token, uint32_t len);
unsigned mic_vop_vq_drain(struct mic_vop_vq *q, mic_vop_used_fn fn, void *ctx);
unsigned mic_vop_vq_num_free(const struct mic_vop_vq *q);
unsigned mic_vop_vq_size(const struct mic_vop_vq *q);
bool mic_vop_vq_broken(const struct mic_vop_vq *q);

/* Raw ring, for tests that play a hostile card. */
struct vring *mic_vop_vq_vring(struct mic_vop_vq *q);

#endif
