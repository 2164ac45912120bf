/* SPDX-License-Identifier: MIT */
/* The DMA driver's binding to the MIC virtual bus. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "mic_dma.h"

struct mic_dma_device {
	pthread_mutex_t lock;
	struct mic_dma_chan *chan[MIC_DMA_NUM_CHAN];
};

static const uint32_t dma_ids[] = { MBUS_DEV_DMA, MBUS_DEV_ANY };

static int dma_probe(struct mbus_device *dev)
{
	if (!dev->mmio)
		return -EINVAL;
	struct mic_dma_device *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	dev->priv = d;
	return 0;
}

static void dma_remove(struct mbus_device *dev)
{
	struct mic_dma_device *d = dev->priv;
	/* Users should have released their channels; stop the rest. */
	for (unsigned ch = 0; ch < MIC_DMA_NUM_CHAN; ch++)
		mic_dma_chan_close(d->chan[ch]);
	pthread_mutex_destroy(&d->lock);
	free(d);
	dev->priv = NULL;
}

void mic_dma_driver_init(struct mbus_driver *drv)
{
	drv->name = "mic_x100_dma";
	drv->id_table = dma_ids;
	drv->probe = dma_probe;
	drv->remove = dma_remove;
}

static struct mic_dma_device *bound(struct mbus_device *dev)
{
	return dev->driver && dev->driver->probe == dma_probe ? dev->priv : NULL;
}

int mic_dma_request_chan(struct mbus_device *dev, unsigned ch, uint64_t mem_addr, void *mem,
			 unsigned ring_entries, struct mic_dma_chan **out)
{
	struct mic_dma_device *d = bound(dev);
	if (!d)
		return -ENODEV;
	if (ch >= MIC_DMA_NUM_CHAN)
		return -EPERM;
	pthread_mutex_lock(&d->lock);
	int rc = -EBUSY;
	if (!d->chan[ch]) {
		rc = mic_dma_chan_open(dev->mmio, ch, mem_addr, mem, ring_entries, &d->chan[ch]);
		if (rc == 0)
			*out = d->chan[ch];
	}
	pthread_mutex_unlock(&d->lock);
	return rc;
}

void mic_dma_release_chan(struct mbus_device *dev, struct mic_dma_chan *c)
{
	struct mic_dma_device *d = bound(dev);
	if (!d || !c)
		return;
	pthread_mutex_lock(&d->lock);
	unsigned ch = mic_dma_chan_id(c);
	if (d->chan[ch] == c) {
		d->chan[ch] = NULL;
		mic_dma_chan_close(c);
	}
	pthread_mutex_unlock(&d->lock);
}
