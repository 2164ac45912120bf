/* SPDX-License-Identifier: MIT */
/*
 * Accessors for memory shared with the other side of the link (device page,
 * vrings).  Every load and store of a field the other side may touch
 * concurrently goes through these, as relaxed atomics: that stops the
 * compiler from tearing, caching or re-reading them (a re-read is a TOCTOU
 * hole on the host), and costs nothing on x86.  Ordering is NOT implied:
 * the callers place the fences the virtio spec asks for, and only those.
 */
#ifndef MIC_VOP_SHM_H
#define MIC_VOP_SHM_H

#include <stdatomic.h>
#include <stdint.h>

static inline uint8_t shm_ld8(const void *p)
{
	return atomic_load_explicit((_Atomic uint8_t *)p, memory_order_relaxed);
}
static inline uint16_t shm_ld16(const void *p)
{
	return atomic_load_explicit((_Atomic uint16_t *)p, memory_order_relaxed);
}
static inline uint32_t shm_ld32(const void *p)
{
	return atomic_load_explicit((_Atomic uint32_t *)p, memory_order_relaxed);
}
static inline uint64_t shm_ld64(const void *p)
{
	return atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed);
}
static inline void shm_st8(void *p, uint8_t v)
{
	atomic_store_explicit((_Atomic uint8_t *)p, v, memory_order_relaxed);
}
static inline void shm_st16(void *p, uint16_t v)
{
	atomic_store_explicit((_Atomic uint16_t *)p, v, memory_order_relaxed);
}
static inline void shm_st32(void *p, uint32_t v)
{
	atomic_store_explicit((_Atomic uint32_t *)p, v, memory_order_relaxed);
}
static inline void shm_st64(void *p, uint64_t v)
{
	atomic_store_explicit((_Atomic uint64_t *)p, v, memory_order_relaxed);
}
/* Sets bits without losing a concurrent store of the other side's. */
static inline void shm_or8(void *p, uint8_t v)
{
	atomic_fetch_or_explicit((_Atomic uint8_t *)p, v, memory_order_relaxed);
}

/* Feature bitmaps in the device page: bit n is bit n%8 of byte n/8. */
static inline uint64_t shm_features_get(const uint8_t *bm, unsigned len)
{
	uint64_t f = 0;
	for (unsigned i = 0; i < len && i < 8; i++)
		f |= (uint64_t)shm_ld8(bm + i) << (8 * i);
	return f;
}
static inline void shm_features_put(uint8_t *bm, unsigned len, uint64_t f)
{
	for (unsigned i = 0; i < len; i++)
		shm_st8(bm + i, i < 8 ? (uint8_t)(f >> (8 * i)) : 0);
}

#endif
