/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio transport (card/vop.c): scans the device page, puts its
 * devices on the card bus and binds them to the virtio drivers, which
 * register themselves with COS_VIRTIO_DRIVER (a linker-section table, as
 * kvmtool's device init lists): the transport knows no driver by name.
 */
#ifndef MIC_CARD_VOP_H
#define MIC_CARD_VOP_H

#include <stdint.h>

#include "card/os.h"

struct mic_vop_cdev;
struct mic_vop_cma;

/* A virtio device of the device page, as a device on the card bus. */
struct cos_vdev {
	struct mbus_device mdev;
	struct cos *os;
	struct mic_vop_cdev *cdev;
	struct mic_vop_cma *cma;
	int registered;
	/* set by the bound driver: the host changed the config space */
	void (*config_changed)(struct cos_vdev *vd);
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

/* The common end of a virtio driver's remove: stop listening to the
 * device's doorbell (line, watched as line_fd) and hand the device back to
 * the host, waiting for its acknowledgement.  0 once acknowledged: only
 * then may the driver reuse what the host could still write. */
int cos_vdev_release(struct cos_vdev *vd, unsigned line, int line_fd);

#endif
