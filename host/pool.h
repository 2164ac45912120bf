/* SPDX-License-Identifier: MIT */
/*
 * The card's host memory pool (the only host memory the card reaches, and
 * the only host memory the DMA engine copies to or from): who owns which
 * bytes.  Each user takes its region from this table and nothing else, so a
 * new user cannot quietly overlap an old one.
 */
#ifndef MIC_HOST_POOL_H
#define MIC_HOST_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "hw/mic_hw.h"

enum host_pool_region {
	HOST_POOL_VOP,   /* device page + vrings (vop/host allocates inside it) */
	HOST_POOL_DMA,   /* host DMA channel rings, HOST_POOL_DMA_RING_SPAN each */
	HOST_POOL_STAGE, /* image staging for the DMA download: as much as there is */
	HOST_POOL_NET,   /* net backend's receive and transmit buffers */
	HOST_POOL_BLOCK, /* block backend's bounce buffer */
	HOST_POOL__COUNT
};

#define HOST_POOL_DMA_RING_SPAN (64ull << 10) /* per channel */

struct host_pool_span {
	uint64_t off, size;
};

static inline struct host_pool_span host_pool_span(enum host_pool_region r)
{
	static const struct host_pool_span layout[HOST_POOL__COUNT] = {
		[HOST_POOL_VOP] = { 0, 8ull << 20 },
		[HOST_POOL_DMA] = { 8ull << 20, 8ull << 20 },
		[HOST_POOL_STAGE] = { 16ull << 20, 32ull << 20 },
		[HOST_POOL_NET] = { 48ull << 20, 4ull << 20 },
		[HOST_POOL_BLOCK] = { 52ull << 20, 4ull << 20 },
	};
	return layout[r];
}

/* Bytes of region r that the pool of view v really has (a pool may be
 * smaller than the table: 16 MiB at least, see hostmem_mb). */
static inline uint64_t host_pool_avail(const struct mic_hw_view *v, enum host_pool_region r)
{
	struct host_pool_span s = host_pool_span(r);
	if (v->hostmem.size <= s.off)
		return 0;
	return v->hostmem.size - s.off < s.size ? v->hostmem.size - s.off : s.size;
}

/* Host mapping of region r, or NULL unless the pool holds all of it: a
 * backend then uses heap memory, which only the CPU copies. */
static inline void *host_pool_va(const struct mic_hw_view *v, enum host_pool_region r)
{
	struct host_pool_span s = host_pool_span(r);
	return host_pool_avail(v, r) == s.size ? (uint8_t *)v->hostmem.va + s.off : NULL;
}

#endif
