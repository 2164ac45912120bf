/* SPDX-License-Identifier: MIT */
/* The card-memory allocator of vop_card.h: first fit over a sorted array of
 * free extents, coalesced on free; virtio buffers are few and long-lived.
 * Where its memory serves: docs/device-page.md, "Where everything lives". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vop_card.h"

struct extent {
	uint64_t addr, size;
};

struct mic_vop_cma {
	const struct mic_hw_view *v;
	uint64_t base, size, avail;
	struct extent *free;
	size_t n, cap;
};

static uint64_t round_up(uint64_t x)
{
	return (x + MIC_VOP_CMA_ALIGN - 1) & ~(uint64_t)(MIC_VOP_CMA_ALIGN - 1);
}

int mic_vop_cma_create(const struct mic_hw_view *v, uint64_t base, uint64_t size,
		       struct mic_vop_cma **out)
{
	uint64_t b = round_up(base);
	if (b < base || size < b - base)
		return -EINVAL;
	size = (size - (b - base)) & ~(uint64_t)(MIC_VOP_CMA_ALIGN - 1);
	if (!size || !mic_cardmem(v, b, size))
		return -EINVAL;
	struct mic_vop_cma *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->cap = 16;
	a->free = malloc(a->cap * sizeof(*a->free));
	if (!a->free) {
		free(a);
		return -ENOMEM;
	}
	a->v = v;
	a->base = b;
	a->size = a->avail = size;
	a->free[0] = (struct extent){ b, size };
	a->n = 1;
	*out = a;
	return 0;
}

void mic_vop_cma_destroy(struct mic_vop_cma *a)
{
	if (a) {
		free(a->free);
		free(a);
	}
}

int mic_vop_cma_alloc(struct mic_vop_cma *a, uint64_t size, uint64_t *addr)
{
	if (!size || size > a->size)
		return -ENOMEM;
	size = round_up(size);
	for (size_t i = 0; i < a->n; i++) {
		struct extent *e = &a->free[i];
		if (e->size < size)
			continue;
		*addr = e->addr;
		e->addr += size;
		e->size -= size;
		if (!e->size) {
			memmove(e, e + 1, (a->n - i - 1) * sizeof(*e));
			a->n--;
		}
		a->avail -= size;
		return 0;
	}
	return -ENOMEM;
}

void mic_vop_cma_free(struct mic_vop_cma *a, uint64_t addr, uint64_t size)
{
	size = round_up(size);
	if (!size || addr < a->base || addr - a->base > a->size || size > a->size - (addr - a->base))
		return;
	size_t i = 0;
	while (i < a->n && a->free[i].addr < addr)
		i++;
	bool join_prev = i > 0 && a->free[i - 1].addr + a->free[i - 1].size == addr;
	bool join_next = i < a->n && addr + size == a->free[i].addr;
	a->avail += size;
	if (join_prev && join_next) {
		a->free[i - 1].size += size + a->free[i].size;
		memmove(&a->free[i], &a->free[i + 1], (a->n - i - 1) * sizeof(*a->free));
		a->n--;
	} else if (join_prev) {
		a->free[i - 1].size += size;
	} else if (join_next) {
		a->free[i].addr = addr;
		a->free[i].size += size;
	} else {
		if (a->n == a->cap) {
			struct extent *f = realloc(a->free, 2 * a->cap * sizeof(*f));
			if (!f) {
				a->avail -= size; /* leak it rather than corrupt the list */
				return;
			}
			a->free = f;
			a->cap *= 2;
		}
		memmove(&a->free[i + 1], &a->free[i], (a->n - i) * sizeof(*a->free));
		a->free[i] = (struct extent){ addr, size };
		a->n++;
	}
}

void *mic_vop_cma_ptr(const struct mic_vop_cma *a, uint64_t addr, uint64_t len)
{
	return mic_cardmem(a->v, addr, len);
}

uint64_t mic_vop_cma_avail(const struct mic_vop_cma *a)
{
	return a->avail;
}
