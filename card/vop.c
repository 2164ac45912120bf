/* SPDX-License-Identifier: MIT */
/* The card's virtio-over-PCIe transport and the drivers' shared probe and
 * release (card/vop.h).  Design: docs/architecture.md 3.7. */
#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "card/vop.h"
#include "vop/card/vop_card.h"

#define CARD_VOP_MAX 16
#define CARD_CMA_SIZE (64ull << 20)

/* The driver table COS_VIRTIO_DRIVER fills (the linker names its ends). */
extern const struct cos_virtio_driver *const __start_cos_virtio_drivers[];
extern const struct cos_virtio_driver *const __stop_cos_virtio_drivers[];
#define CARD_VOP_MAXDRV 8

struct cos_vop {
	struct mic_vop_cma *cma;
	struct mic_vop_card *vc;
	struct cos_vdev *dev[CARD_VOP_MAX];
	int ndev;
	struct mbus_driver drv[CARD_VOP_MAXDRV];
	uint32_t ids[CARD_VOP_MAXDRV][2];
	int ndrv;
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

static int drv_probe(struct mbus_device *dev)
{
	const struct cos_virtio_driver *d = dev->driver->data;
	return d->probe((struct cos_vdev *)dev);
}

static void drv_remove(struct mbus_device *dev)
{
	const struct cos_virtio_driver *d = dev->driver->data;
	d->remove((struct cos_vdev *)dev);
}

static void register_drivers(struct cos *c, struct cos_vop *v)
{
	for (const struct cos_virtio_driver *const *p = __start_cos_virtio_drivers;
	     p < __stop_cos_virtio_drivers && v->ndrv < CARD_VOP_MAXDRV; p++) {
		struct mbus_driver *drv = &v->drv[v->ndrv];
		uint32_t *ids = v->ids[v->ndrv++];
		ids[0] = MBUS_DEV_VIRTIO_BASE + (*p)->virtio_id;
		ids[1] = MBUS_DEV_ANY;
		*drv = (struct mbus_driver){ .name = (*p)->name, .id_table = ids,
					     .probe = drv_probe, .remove = drv_remove,
					     .data = (void *)*p };
		mbus_driver_register(&c->bus, drv);
	}
}

static void add_new_devices(struct cos *c)
{
	struct cos_vop *v = c->vop;
	unsigned n = mic_vop_card_num_devs(v->vc);
	for (unsigned i = 0; i < n; i++) {
		struct mic_vop_cdev *d = mic_vop_card_dev(v->vc, i);
		int known = 0;
		for (int k = 0; k < v->ndev; k++)
			known |= v->dev[k]->cdev == d;
		if (known || mic_vop_cdev_removed(d) || v->ndev == CARD_VOP_MAX)
			continue;
		struct cos_vdev *vd = calloc(1, sizeof(*vd));
		if (!vd)
			return;
		vd->os = c;
		vd->cdev = d;
		vd->line_fd = -1;
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

static void remove_device(struct cos *c, struct cos_vdev *vd)
{
	struct cos_vop *v = c->vop;
	if (vd->registered)
		mbus_device_unregister(&vd->mdev);
	for (int k = 0; k < v->ndev; k++) {
		if (v->dev[k] != vd)
			continue;
		v->dev[k] = v->dev[--v->ndev];
		break;
	}
	free(vd->mem);
	free(vd);
}

static void on_config_change(void *ctx, struct mic_vop_cdev *d, unsigned events)
{
	struct cos *c = ctx;
	struct cos_vop *v = c->vop;
	for (int k = 0; k < v->ndev; k++) {
		struct cos_vdev *vd = v->dev[k];
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

static void on_config_irq(void *ctx, uint32_t events)
{
	struct cos *c = ctx;
	(void)events;
	mic_irq_ack(&c->hw, MIC_DB_CONFIG);
	if (mic_vop_card_config_irq(c->vop->vc, on_config_change, c) < 0)
		cardlog(&c->log, "vop: device page scan failed");
	add_new_devices(c);
}

int cos_vop_start(struct cos *c)
{
	struct cos_vop *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	c->vop = v;
	register_drivers(c, v);
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
	return cos_watch(c->loop, c->hw.irq_fd[MIC_DB_CONFIG], EPOLLIN, on_config_irq, c);
}

void cos_vop_stop(struct cos *c)
{
	struct cos_vop *v = c->vop;
	if (!v)
		return;
	/* Newest first, like the bus removes drivers. */
	while (v->ndev)
		remove_device(c, v->dev[v->ndev - 1]);
	for (int i = v->ndrv - 1; i >= 0; i--)
		mbus_driver_unregister(&v->drv[i]);
	/* With every device gone, what is still allocated is what a driver
	 * leaked or a host never let go of.  Said only then, so that a clean
	 * shutdown's log ends as it always did; the tests look for the line. */
	uint64_t in_use = v->cma ? CARD_CMA_SIZE - mic_vop_cma_avail(v->cma) : 0;
	if (in_use)
		cardlog(&c->log, "cma: %llu bytes in use after the devices went",
			(unsigned long long)in_use);
	cos_unwatch(c->loop, c->hw.irq_fd[MIC_DB_CONFIG]);
	if (v->vc)
		mic_vop_card_close(v->vc);
	if (v->cma)
		mic_vop_cma_destroy(v->cma);
	free(v);
	c->vop = NULL;
}

/* How long a driver waits for the host to acknowledge a device reset: a
 * vhost-user device's host first stops its backend and lets the requests
 * it runs finish (up to 1 s for each, docs/architecture.md 3.21). */
#define COS_RESET_WAIT_MS 3000

struct cos_vdev_mem {
	uint64_t addr, size;
};

int cos_vdev_setup(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		   struct mic_vop_vq **vqs, unsigned nvq)
{
	int rc = mic_vop_cdev_negotiate(vd->cdev, MIC_VOP_CARD_TRANSPORT_FEATURES | features,
					negotiated);
	for (unsigned i = 0; !rc && i < nvq; i++)
		rc = mic_vop_cdev_setup_vq(vd->cdev, i, COS_VQ_FLAGS, &vqs[i]);
	return rc;
}

void *cos_vdev_alloc(struct cos_vdev *vd, uint64_t size, uint64_t *addr)
{
	if (vd->nmem == vd->capmem) {
		unsigned cap = vd->capmem ? 2 * vd->capmem : 64;
		struct cos_vdev_mem *m = realloc(vd->mem, cap * sizeof(*m));
		if (!m)
			return NULL;
		vd->mem = m;
		vd->capmem = cap;
	}
	if (mic_vop_cma_alloc(vd->cma, size, addr))
		return NULL;
	vd->mem[vd->nmem++] = (struct cos_vdev_mem){ *addr, size };
	return mic_vop_cma_ptr(vd->cma, *addr, size);
}

int cos_vdev_ready(struct cos_vdev *vd, cos_fd_fn on_doorbell, void *ctx)
{
	vd->line = mic_vop_cdev_h2c_db(vd->cdev);
	int fd = mbus_request_irq(&vd->mdev, vd->line);
	if (fd < 0)
		return fd;
	vd->line_fd = fd;
	int rc = mic_vop_cdev_driver_ok(vd->cdev);
	if (!rc)
		rc = cos_watch(vd->os->loop, fd, EPOLLIN, on_doorbell, ctx);
	return rc;
}

int cos_vdev_release(struct cos_vdev *vd)
{
	if (vd->line_fd >= 0) {
		cos_unwatch(vd->os->loop, vd->line_fd); /* no-op unless watched */
		mbus_free_irq(&vd->mdev, vd->line);
		vd->line_fd = -1;
	}
	int rc = mic_vop_cdev_reset(vd->cdev, COS_RESET_WAIT_MS);
	if (rc) {
		cardlog(&vd->os->log, "%s: host did not acknowledge the reset: %u buffer(s) left to it",
			vd->mdev.name, vd->nmem);
	} else {
		for (unsigned i = 0; i < vd->nmem; i++)
			mic_vop_cma_free(vd->cma, vd->mem[i].addr, vd->mem[i].size);
	}
	vd->nmem = 0;
	return rc;
}

int cos_vdev_recover(struct cos_vdev *vd, uint64_t features, uint64_t *negotiated,
		     struct mic_vop_vq **vqs, unsigned nvq)
{
	int rc = mic_vop_cdev_reset(vd->cdev, COS_RESET_WAIT_MS);
	if (!rc)
		rc = cos_vdev_setup(vd, features, negotiated, vqs, nvq);
	if (!rc) {
		mic_vop_cdev_set_h2c_db(vd->cdev, vd->line);
		rc = mic_vop_cdev_driver_ok(vd->cdev);
	}
	return rc;
}
