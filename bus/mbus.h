/* SPDX-License-Identifier: MIT */
/*
 * The MIC virtual bus: a small driver model for the devices that do not show
 * up on PCI (the DMA controller, the virtio transport), used alike by micd
 * and the card OS; all state lives in struct mbus.  Matching, probe and
 * removal order, locking: docs/dma.md, "The MIC virtual bus".
 */
#ifndef MIC_MBUS_H
#define MIC_MBUS_H

#include <pthread.h>
#include <stdint.h>

#include "hw/mic_hw.h"

enum mbus_dev_id {
	MBUS_DEV_ANY = 0, /* terminates id tables; never a device's id */
	MBUS_DEV_DMA = 1, /* the X100 DMA controller, one per side */
	MBUS_DEV_VOP = 2, /* virtio over PCIe transport */
	MBUS_DEV_VIRTIO_BASE = 0x100, /* + VIRTIO_ID_*: a virtio device of the device page */
};

struct mbus_device;

/* Interrupts reach a driver as a pollable file descriptor that it watches
 * in the loop it already has (the card's virtio drivers in the card OS's
 * event loop), so the bus runs no handler threads. */
struct mbus_hw_ops {
	/* Claims interrupt line `line` and returns a file descriptor that
	 * polls readable while the line is pending (ack with ack_irq).
	 * -EBUSY if claimed, -EINVAL for a bad line. */
	int (*request_irq)(struct mbus_device *dev, unsigned line);
	/* Releases the line. */
	void (*free_irq)(struct mbus_device *dev, unsigned line);
	/* Consumes pending interrupts, returns how many. */
	uint64_t (*ack_irq)(struct mbus_device *dev, unsigned line);
};

/* The ops implemented over a struct mic_hw_view's interrupt line pipes. */
extern const struct mbus_hw_ops mbus_view_hw_ops;

struct mbus_driver;
struct mbus;

struct mbus_device {
	/* Filled by whoever creates the device. */
	uint32_t id;
	char name[32];
	const struct mbus_hw_ops *ops;
	struct mic_hw_view *mmio;
	/* Owned by the bound driver. */
	void *priv;
	/* Owned by the bus. */
	struct mbus *bus;
	struct mbus_driver *driver;
	struct mbus_device *next;
	uint32_t irq_claimed; /* bit n: line n claimed */
	unsigned probe_seq;
};

struct mbus_driver {
	const char *name;
	const uint32_t *id_table; /* terminated by MBUS_DEV_ANY */
	int (*probe)(struct mbus_device *dev);
	void (*remove)(struct mbus_device *dev);
	void *data; /* for the driver's owner */
	/* Owned by the bus. */
	struct mbus *bus;
	struct mbus_driver *next;
};

struct mbus {
	char name[32];
	pthread_mutex_t lock;
	struct mbus_device *devices; /* registration order */
	struct mbus_driver *drivers; /* registration order */
	unsigned probe_seq;
};

int mbus_init(struct mbus *bus, const char *name);
/* Removes every bound device (reverse probe order) and forgets all. */
void mbus_destroy(struct mbus *bus);

/* Adds a device and probes it against the registered drivers. */
int mbus_device_register(struct mbus *bus, struct mbus_device *dev);
void mbus_device_unregister(struct mbus_device *dev);
int mbus_driver_register(struct mbus *bus, struct mbus_driver *drv);
void mbus_driver_unregister(struct mbus_driver *drv);

/* Initializes a device over a view with mbus_view_hw_ops. */
void mbus_device_init(struct mbus_device *dev, uint32_t id, const char *name,
		      struct mic_hw_view *view);

/* Convenience wrappers around dev->ops. */
int mbus_request_irq(struct mbus_device *dev, unsigned line);
void mbus_free_irq(struct mbus_device *dev, unsigned line);
uint64_t mbus_ack_irq(struct mbus_device *dev, unsigned line);

#endif
