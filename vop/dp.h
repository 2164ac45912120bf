/* SPDX-License-Identifier: MIT */
/*
 * Validating walk over the device blocks of a device page, shared by the
 * host (inspection, fuzzing) and the card (discovery).  The page may be
 * shared memory the other side is writing: every field is read once, and
 * the returned struct is the snapshot the caller must use from then on.
 */
#ifndef MIC_VOP_DP_H
#define MIC_VOP_DP_H

#include <stddef.h>
#include <stdint.h>

#include "mic/devpage.h"

struct mic_dp_dev {
	size_t off;            /* offset of the block in the page */
	size_t size;           /* whole block, control block included */
	int8_t type;           /* virtio id, or MIC_DP_TYPE_REMOVED */
	uint8_t num_vq;
	uint8_t feature_len;
	uint8_t config_len;
	uint16_t vq_num[MIC_MAX_VRINGS];
	uint64_t vq_address[MIC_MAX_VRINGS];
};

/*
 * Reads the block at *off.  Returns 1 and fills *d (advancing *off past the
 * block), 0 at the end of the list (type 0 or no room for another block),
 * -1 if the block is malformed; then *why (if not NULL) says why.
 * Start with *off = MIC_DP_FIRST_DEV.
 */
int mic_dp_next(const void *page, size_t page_size, size_t *off, struct mic_dp_dev *d,
		const char **why);

/* Whether a ring size is acceptable: a power of two, 1..MIC_MAX_VRING_ENTRIES. */
static inline int mic_dp_vq_num_ok(unsigned num)
{
	return num && num <= MIC_MAX_VRING_ENTRIES && (num & (num - 1)) == 0;
}

#endif
