/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio transport (card/vop.c) and the probe and release every
 * card virtio driver shares; drivers register themselves with
 * COS_VIRTIO_DRIVER, so that the transport knows none by name.  Design:
 * docs/architecture.md 3.7.
 */
#ifndef MIC_CARD_VOP_H
#define MIC_CARD_VOP_H

#include <stdint.h>

#include "card/os.h"

struct mic_vop_cdev;
struct mic_vop_cma;
struct mic_vop_vq;
struct cos_vdev_mem;

/* A virtio device of the device page, as a device on the card bus. */
struct cos_vdev {
	struct mbus_device mdev;
	struct cos *os;
	struct mic_vop_cdev *cdev;
	struct mic_vop_cma *cma;
	int registered;
	/* set by the bound driver: the host changed the config space */
	void (*config_changed)(struct cos_vdev *vd);
	/* the device's doorbell (line_fd < 0 until cos_vdev_ready) */
	unsigned line;
	int line_fd;
	/* card memory the driver took with cos_vdev_alloc: the host may write
	 * it until it acknowledges the reset, so only cos_vdev_release frees it */
	struct cos_vdev_mem *mem;
	unsigned nmem, capmem;
};

/* Every virtqueue keeps its used ring in card memory, as the later MIC
 * driver did: the host's writes of used entries cross the link, the card's
 * frequent reads of them stay local. */
#define COS_VQ_FLAGS MIC_VOP_VQ_USED_IN_CARDMEM

struct cos_virtio_driver {
	const char *name;
	uint32_t virtio_id; /* VIRTIO_ID_* */
	int (*probe)(struct cos_vdev *vd);
	void (*remove)(struct cos_vdev *vd);
};

#define COS_VIRTIO_DRIVER(var)                                                          \
	static const struct cos_virtio_driver *const var##_entry                          \
		__attribute__((used, section("cos_virtio_drivers"))) = &var

/* Registers every driver of the table on the bus, then scans the device
 * page and follows config changes. */
int cos_vop_start(struct cos *c);
/* Removes the devices (newest first) and the drivers. */
void cos_vop_stop(struct cos *c);

/*
 * The probe and release every virtio driver shares, in this order:
 *   cos_vdev_setup   negotiate (the transport's features are added) and map
 *                    queues 0..nvq-1;
 *   cos_vdev_alloc   buffers in card memory, as many as the driver needs;
 *   cos_vdev_ready   take the doorbell, DRIVER_OK, watch the doorbell;
 *   cos_vdev_release (at remove, or when any step of probe failed).
 * Each returns 0 or a negative errno.
 */
int cos_vdev_setup(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		   struct mic_vop_vq **vqs, unsigned nvq);
/* size bytes of card memory: the card address in *addr and this side's
 * mapping, or NULL (out of memory). */
void *cos_vdev_alloc(struct cos_vdev *vd, uint64_t size, uint64_t *addr);
int cos_vdev_ready(struct cos_vdev *vd, cos_fd_fn on_doorbell, void *ctx);
/* Stops listening to the doorbell and hands the device back to the host.
 * Once the host acknowledges, it no longer touches the buffers, whatever
 * was in flight, and they are freed (0); without an acknowledgement they
 * are left allocated, since a late host write would corrupt whatever the
 * memory held next (-ETIMEDOUT). */
int cos_vdev_release(struct cos_vdev *vd);
/* A device the host flagged NEEDS_RESET, brought back without a reboot:
 * reset (once the host acknowledges, nothing of the old queues is in use),
 * negotiate and map the queues again as cos_vdev_setup, DRIVER_OK on the
 * same doorbell.  The driver's buffers stay allocated; what was in flight
 * is the driver's to send again. */
int cos_vdev_recover(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		     struct mic_vop_vq **vqs, unsigned nvq);

#endif
