/* SPDX-License-Identifier: MIT */
/*
 * Test fixture: an unpowered simulated card with its DMA engine running,
 * the host view, and a card-side view built in-process as the card
 * firmware would map it (tests/hw/test_hw_view.c does the same).
 */
#ifndef MIC_TEST_DMA_FIXTURE_H
#define MIC_TEST_DMA_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dma/mic_dma.h"
#include "hw/mic_hw.h"
#include "hw/sim_internal.h" /* kick fds of the card channels, sim_dma_reset */

struct fx {
	struct mic_hw *hw;
	struct mic_hw_view *h;
	struct mic_hw_view c;
	uint8_t *card;  /* aperture */
	uint8_t *pool;  /* host memory pool */
	uint64_t rng;
};

#define FX_APERTURE (256ull << 20)
#define FX_HOSTMEM  (160ull << 20)

static inline struct mic_hw_view fx_card_view(struct mic_hw *hw)
{
	struct mic_hw_view c;
	mic_hw_card_view(hw, &c);
	return c;
}

static inline int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct mic_hw_config cfg = { .name = "micdma", .index = 0, .device_id = 0x2250,
				     .aperture_size = FX_APERTURE, .hostmem_size = FX_HOSTMEM,
				     .bootstrap = "/bin/false" };
	if (!f || mic_hw_create(&cfg, &f->hw))
		return -1;
	f->h = mic_hw_host_view(f->hw);
	f->c = fx_card_view(f->hw);
	f->card = f->h->aperture.va;
	f->pool = f->h->hostmem.va;
	f->rng = 0x9e3779b97f4a7c15ull;
	const char *seed = getenv("MIC_TEST_SEED");
	if (seed)
		f->rng ^= strtoull(seed, NULL, 0);
	if (mic_dma_host_init(f->h))
		return -1;
	*state = f;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx *f = *state;
	mic_hw_destroy(f->hw);
	free(f);
	return 0;
}

static inline uint64_t fx_rand(struct fx *f)
{
	/* xorshift64*: reproducible, fast enough to fill 64 MiB */
	f->rng ^= f->rng >> 12;
	f->rng ^= f->rng << 25;
	f->rng ^= f->rng >> 27;
	return f->rng * 0x2545f4914f6cdd1dull;
}

static inline void fx_fill(struct fx *f, void *p, size_t len)
{
	uint8_t *b = p;
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t r = fx_rand(f);
		memcpy(b + i, &r, 8);
	}
	uint64_t r = fx_rand(f);
	memcpy(b + i, &r, len - i);
}

/* Pointer of a card address in the host view (card memory or pool). */
static inline uint8_t *fx_ptr(struct fx *f, uint64_t addr, uint64_t len)
{
	return mic_card_addr(f->h, addr, len);
}

#endif
