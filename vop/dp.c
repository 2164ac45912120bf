/* SPDX-License-Identifier: MIT */
#include "dp.h"
#include "shm.h"

static int bad(const char **why, const char *msg)
{
	if (why)
		*why = msg;
	return -1;
}

int mic_dp_next(const void *page, size_t page_size, size_t *off, struct mic_dp_dev *d,
		const char **why)
{
	const uint8_t *p = page;
	size_t o = *off;
	if ((uintptr_t)page % 8)
		return bad(why, "misaligned device page");
	if (page_size > MIC_DP_SIZE)
		page_size = MIC_DP_SIZE;
	if (o % 8 || o < MIC_DP_FIRST_DEV)
		return bad(why, "misaligned device block");
	/* A tail too short for a descriptor cannot hold a device: end of list. */
	if (o >= page_size || page_size - o < sizeof(struct mic_device_desc))
		return 0;
	const struct mic_device_desc *desc = (const void *)(p + o);
	int8_t type = (int8_t)shm_ld8(&desc->type);
	if (type == MIC_DP_TYPE_END)
		return 0;
	/* The host writes a block completely before its type: read the rest
	 * only after seeing the type. */
	atomic_thread_fence(memory_order_acquire);
	d->off = o;
	d->type = type;
	d->num_vq = shm_ld8(&desc->num_vq);
	d->feature_len = shm_ld8(&desc->feature_len);
	d->config_len = shm_ld8(&desc->config_len);
	if (d->num_vq > MIC_MAX_VRINGS)
		return bad(why, "too many vrings");
	d->size = mic_dp_total_size(d->num_vq, d->feature_len, d->config_len);
	if (d->size > MIC_MAX_DESC_BLK_SIZE)
		return bad(why, "device block larger than MIC_MAX_DESC_BLK_SIZE");
	if (d->size > page_size - o)
		return bad(why, "device block crosses the end of the page");
	for (unsigned i = 0; i < MIC_MAX_VRINGS; i++) {
		d->vq_num[i] = 0;
		d->vq_address[i] = 0;
	}
	for (unsigned i = 0; i < d->num_vq; i++) {
		const struct mic_vqconfig *vq = (const void *)(p + o + mic_dp_vq_off(i));
		d->vq_num[i] = shm_ld16(&vq->num);
		d->vq_address[i] = shm_ld64(&vq->address);
		/* A removed block only needs to be skippable. */
		if (type != MIC_DP_TYPE_REMOVED && !mic_dp_vq_num_ok(d->vq_num[i]))
			return bad(why, "bad vring size");
		if (type != MIC_DP_TYPE_REMOVED && d->vq_address[i] % MIC_VIRTIO_RING_ALIGN)
			return bad(why, "misaligned vring");
	}
	if (type < MIC_DP_TYPE_REMOVED)
		return bad(why, "bad device type");
	*off = o + d->size;
	return 1;
}
