/* SPDX-License-Identifier: MIT */
/* virtio-block driver of the card: being written. */
#include <string.h>
#include <linux/virtio_ids.h>

#include "card/card.h"

void virtio_block_driver_init(struct mbus_driver *drv, struct card_os *os)
{
	static const uint32_t ids[] = { MBUS_DEV_VIRTIO_BASE + VIRTIO_ID_BLOCK, MBUS_DEV_ANY };
	memset(drv, 0, sizeof(*drv));
	drv->name = "virtio-block";
	drv->id_table = ids;
	drv->data = os;
}
