/* SPDX-License-Identifier: MIT */
/* The MIC virtual bus: matching, probe/remove order, interrupt plumbing. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mbus.h"

_Static_assert(MIC_NUM_IRQ_LINES <= 32, "irq_claimed holds one bit per line");

/* --- interrupts over the view's line pipes --- */

static int view_request_irq(struct mbus_device *dev, unsigned line)
{
	if (line >= MIC_NUM_IRQ_LINES || !dev->mmio || dev->mmio->irq_fd[line] < 0)
		return -EINVAL;
	if (dev->irq_claimed & 1u << line)
		return -EBUSY;
	dev->irq_claimed |= 1u << line;
	return dev->mmio->irq_fd[line];
}

static void view_free_irq(struct mbus_device *dev, unsigned line)
{
	if (line < MIC_NUM_IRQ_LINES)
		dev->irq_claimed &= ~(1u << line);
}

static uint64_t view_ack_irq(struct mbus_device *dev, unsigned line)
{
	return dev->mmio ? mic_irq_ack(dev->mmio, line) : 0;
}

const struct mbus_hw_ops mbus_view_hw_ops = {
	.request_irq = view_request_irq,
	.free_irq = view_free_irq,
	.ack_irq = view_ack_irq,
};

int mbus_request_irq(struct mbus_device *dev, unsigned line)
{
	return dev->ops->request_irq(dev, line);
}

void mbus_free_irq(struct mbus_device *dev, unsigned line)
{
	dev->ops->free_irq(dev, line);
}

uint64_t mbus_ack_irq(struct mbus_device *dev, unsigned line)
{
	return dev->ops->ack_irq(dev, line);
}

/* --- the bus --- */

int mbus_init(struct mbus *bus, const char *name)
{
	memset(bus, 0, sizeof(*bus));
	snprintf(bus->name, sizeof(bus->name), "%s", name ? name : "mbus");
	return -pthread_mutex_init(&bus->lock, NULL);
}

void mbus_device_init(struct mbus_device *dev, uint32_t id, const char *name,
		      struct mic_hw_view *view)
{
	memset(dev, 0, sizeof(*dev));
	dev->id = id;
	snprintf(dev->name, sizeof(dev->name), "%s", name ? name : "");
	dev->ops = &mbus_view_hw_ops;
	dev->mmio = view;
}

static bool matches(const struct mbus_driver *drv, const struct mbus_device *dev)
{
	for (const uint32_t *id = drv->id_table; id && *id != MBUS_DEV_ANY; id++)
		if (*id == dev->id)
			return true;
	return false;
}

static void try_probe(struct mbus *bus, struct mbus_device *dev, struct mbus_driver *drv)
{
	if (dev->driver || !matches(drv, dev))
		return;
	dev->driver = drv;
	if (drv->probe && drv->probe(dev) != 0) {
		dev->driver = NULL;
		dev->priv = NULL;
		return;
	}
	dev->probe_seq = ++bus->probe_seq;
}

static void do_remove(struct mbus_device *dev)
{
	struct mbus_driver *drv = dev->driver;
	if (!drv)
		return;
	if (drv->remove)
		drv->remove(dev);
	/* A driver that forgot its interrupts leaves the lines free for the next. */
	for (unsigned l = 0; l < MIC_NUM_IRQ_LINES; l++)
		if (dev->irq_claimed & 1u << l)
			dev->ops->free_irq(dev, l);
	dev->driver = NULL;
	dev->priv = NULL;
}

/* Removes the bound devices (of driver `only`, or all), latest probe first. */
static void remove_reverse(struct mbus *bus, const struct mbus_driver *only)
{
	for (;;) {
		struct mbus_device *last = NULL;
		for (struct mbus_device *d = bus->devices; d; d = d->next)
			if (d->driver && (!only || d->driver == only) &&
			    (!last || d->probe_seq > last->probe_seq))
				last = d;
		if (!last)
			return;
		do_remove(last);
	}
}

int mbus_device_register(struct mbus *bus, struct mbus_device *dev)
{
	if (!dev->ops || dev->id == MBUS_DEV_ANY)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	struct mbus_device **pp = &bus->devices;
	while (*pp) {
		if (*pp == dev) {
			pthread_mutex_unlock(&bus->lock);
			return -EEXIST;
		}
		pp = &(*pp)->next;
	}
	dev->bus = bus;
	dev->driver = NULL;
	dev->next = NULL;
	*pp = dev;
	for (struct mbus_driver *drv = bus->drivers; drv && !dev->driver; drv = drv->next)
		try_probe(bus, dev, drv);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

void mbus_device_unregister(struct mbus_device *dev)
{
	struct mbus *bus = dev->bus;
	if (!bus)
		return;
	pthread_mutex_lock(&bus->lock);
	do_remove(dev);
	for (struct mbus_device **pp = &bus->devices; *pp; pp = &(*pp)->next) {
		if (*pp == dev) {
			*pp = dev->next;
			break;
		}
	}
	dev->bus = NULL;
	dev->next = NULL;
	pthread_mutex_unlock(&bus->lock);
}

int mbus_driver_register(struct mbus *bus, struct mbus_driver *drv)
{
	pthread_mutex_lock(&bus->lock);
	struct mbus_driver **pp = &bus->drivers;
	while (*pp) {
		if (*pp == drv) {
			pthread_mutex_unlock(&bus->lock);
			return -EEXIST;
		}
		pp = &(*pp)->next;
	}
	drv->bus = bus;
	drv->next = NULL;
	*pp = drv;
	for (struct mbus_device *d = bus->devices; d; d = d->next)
		try_probe(bus, d, drv);
	pthread_mutex_unlock(&bus->lock);
	return 0;
}

void mbus_driver_unregister(struct mbus_driver *drv)
{
	struct mbus *bus = drv->bus;
	if (!bus)
		return;
	pthread_mutex_lock(&bus->lock);
	remove_reverse(bus, drv);
	for (struct mbus_driver **pp = &bus->drivers; *pp; pp = &(*pp)->next) {
		if (*pp == drv) {
			*pp = drv->next;
			break;
		}
	}
	drv->bus = NULL;
	drv->next = NULL;
	/* Devices left unbound may match a driver registered later on. */
	for (struct mbus_device *d = bus->devices; d; d = d->next)
		for (struct mbus_driver *o = bus->drivers; o && !d->driver; o = o->next)
			try_probe(bus, d, o);
	pthread_mutex_unlock(&bus->lock);
}

void mbus_destroy(struct mbus *bus)
{
	pthread_mutex_lock(&bus->lock);
	remove_reverse(bus, NULL);
	for (struct mbus_device *d = bus->devices, *n; d; d = n) {
		n = d->next;
		d->bus = NULL;
		d->next = NULL;
	}
	for (struct mbus_driver *d = bus->drivers, *n; d; d = n) {
		n = d->next;
		d->bus = NULL;
		d->next = NULL;
	}
	bus->devices = NULL;
	bus->drivers = NULL;
	pthread_mutex_unlock(&bus->lock);
	pthread_mutex_destroy(&bus->lock);
}
