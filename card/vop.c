/* SPDX-License-Identifier: MIT */
/*
 * The card's virtio-over-PCIe transport: finds the device page through the
 * SMPT window, puts each virtio device on the card's MIC bus (where the
 * matching virtio driver probes it), and follows the host's config changes
 * (new devices, removed devices) on the config doorbell.
 */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "card/card.h"
#include "vop/card/vop_card.h"

#define CARD_VOP_MAX 16
#define CARD_CMA_SIZE (64ull << 20)

struct card_vop {
	struct mic_vop_cma *cma;
	struct mic_vop_card *vc;
	struct card_vdev *dev[CARD_VOP_MAX];
	int ndev;
};

static const char *type_name(int8_t t)
{
	switch (t) {
	case VIRTIO_ID_NET: return "virtio-net";
	case VIRTIO_ID_BLOCK: return "virtio-block";
	case VIRTIO_ID_CONSOLE: return "virtio-console";
	default: return "virtio";
	}
}

static void add_new_devices(struct card_os *c)
{
	struct card_vop *v = c->vop;
	unsigned n = mic_vop_card_num_devs(v->vc);
	for (unsigned i = 0; i < n; i++) {
		struct mic_vop_cdev *d = mic_vop_card_dev(v->vc, i);
		int known = 0;
		for (int k = 0; k < v->ndev; k++)
			known |= v->dev[k]->cdev == d;
		if (known || mic_vop_cdev_removed(d) || v->ndev == CARD_VOP_MAX)
			continue;
		struct card_vdev *vd = calloc(1, sizeof(*vd));
		if (!vd)
			return;
		vd->os = c;
		vd->cdev = d;
		vd->cma = v->cma;
		int8_t type = mic_vop_cdev_type(d);
		mbus_device_init(&vd->mdev, MBUS_DEV_VIRTIO_BASE + (uint32_t)type, type_name(type),
				 &c->hw);
		v->dev[v->ndev++] = vd;
		cardlog(&c->log, "vop: found %s with %u queues", type_name(type),
			mic_vop_cdev_num_vq(d));
		if (mbus_device_register(&c->bus, &vd->mdev) == 0)
			vd->registered = 1;
	}
}

static void remove_device(struct card_os *c, struct card_vdev *vd)
{
	struct card_vop *v = c->vop;
	if (vd->registered)
		mbus_device_unregister(&vd->mdev);
	for (int k = 0; k < v->ndev; k++) {
		if (v->dev[k] != vd)
			continue;
		v->dev[k] = v->dev[--v->ndev];
		break;
	}
	free(vd);
}

static void on_config_change(void *ctx, struct mic_vop_cdev *d, unsigned events)
{
	struct card_os *c = ctx;
	struct card_vop *v = c->vop;
	for (int k = 0; k < v->ndev; k++) {
		struct card_vdev *vd = v->dev[k];
		if (vd->cdev != d)
			continue;
		if (events & MIC_VOP_CFG_REMOVED) {
			cardlog(&c->log, "vop: host removed %s", vd->mdev.name);
			remove_device(c, vd);
		} else if (events & MIC_VOP_CFG_CHANGED) {
			cardlog(&c->log, "vop: %s config changed", vd->mdev.name);
			if (vd->registered && vd->config_changed)
				vd->config_changed(vd);
		}
		return;
	}
}

static void on_config_irq(struct card_os *c, void *ctx, uint32_t events)
{
	(void)ctx;
	(void)events;
	mic_irq_ack(&c->hw, MIC_DB_CONFIG);
	if (mic_vop_card_config_irq(c->vop->vc, on_config_change, c) < 0)
		cardlog(&c->log, "vop: device page scan failed");
	add_new_devices(c);
}

int card_vop_start(struct card_os *c)
{
	struct card_vop *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->vop = v;
	uint64_t heap = c->bp.heap_addr, size = CARD_CMA_SIZE;
	int rc = mic_vop_cma_create(&c->hw, heap, size, &v->cma);
	if (!rc)
		rc = mic_vop_card_open(&c->hw, v->cma, &v->vc);
	if (!rc)
		rc = mic_vop_card_scan(v->vc);
	if (rc < 0) {
		cardlog(&c->log, "vop: no usable device page (%s)", strerror(-rc));
		return rc;
	}
	add_new_devices(c);
	return card_watch(c, c->hw.irq_fd[MIC_DB_CONFIG], EPOLLIN, on_config_irq, NULL);
}

void card_vop_stop(struct card_os *c)
{
	struct card_vop *v = c->vop;
	if (!v)
		return;
	/* Newest first, like the bus removes drivers. */
	while (v->ndev)
		remove_device(c, v->dev[v->ndev - 1]);
	card_unwatch(c, c->hw.irq_fd[MIC_DB_CONFIG]);
	if (v->vc)
		mic_vop_card_close(v->vc);
	if (v->cma)
		mic_vop_cma_destroy(v->cma);
	free(v);
	c->vop = NULL;
}

void card_virtio_driver(struct mbus_driver *drv, struct card_os *os, const char *name,
			const uint32_t *ids, int (*probe)(struct mbus_device *dev),
			void (*remove)(struct mbus_device *dev))
{
	memset(drv, 0, sizeof(*drv));
	drv->name = name;
	drv->id_table = ids;
	drv->probe = probe;
	drv->remove = remove;
	drv->data = os;
}

int card_vdev_release(struct card_vdev *vd, unsigned line, int line_fd)
{
	if (line_fd >= 0)
		card_unwatch(vd->os, line_fd);
	mbus_free_irq(&vd->mdev, line);
	int rc = mic_vop_cdev_reset(vd->cdev, 1000);
	if (rc)
		cardlog(&vd->os->log, "%s: host did not acknowledge the reset", vd->mdev.name);
	return rc;
}
